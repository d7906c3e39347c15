// Small app-wide behaviours. htmx is configured here and in base.html's <meta name="htmx-config">;
// page-specific code lives next to its template.
//
// The Content-Security-Policy allows no inline script (no on* attributes, no hx-on, no eval), so the few
// inline behaviours the templates need are declared with data attributes and handled here by delegation:
//   data-remove-closest="<selector>"  a click removes the closest matching ancestor (Cancel / Close of
//                                     an htmx-loaded form or alert); the link's own navigation is skipped
//   data-autosubmit                   a change of this field submits its form (tenant switcher)
//   data-confirm="<question>"         a form asks before it submits
//   data-reset-on-success             a form is cleared after its htmx request succeeded
//   data-submit-on-enter              Enter in this textarea submits its form (Shift+Enter: new line)
document.addEventListener("DOMContentLoaded", function () {
  if (window.htmx) {
    htmx.config.historyCacheSize = 0; // always refetch on back/forward so state is never stale
  }
});

document.addEventListener("click", function (event) {
  var trigger = event.target.closest && event.target.closest("[data-remove-closest]");
  if (!trigger) return;
  var container = trigger.closest(trigger.getAttribute("data-remove-closest"));
  if (!container) return;
  event.preventDefault();
  container.remove();
});

document.addEventListener("keydown", function (event) {
  var field = event.target;
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  if (!(field.matches && field.matches("[data-submit-on-enter]")) || !field.form) return;
  event.preventDefault();
  field.form.requestSubmit();
});

document.addEventListener("change", function (event) {
  var field = event.target;
  if (field.matches && field.matches("[data-autosubmit]") && field.form) field.form.submit();
});

document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

document.addEventListener("htmx:afterRequest", function (event) {
  var form = event.target.closest && event.target.closest("form[data-reset-on-success]");
  if (form && event.detail.successful) form.reset();
});

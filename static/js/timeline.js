// Timeline windows: a badge loads the timeline into #modal-root with htmx; show it as a Bootstrap modal,
// and empty #modal-root when it closes so the real-time poller inside it stops.
(function () {
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "modal-root" || !window.bootstrap) return;
    var el = target.querySelector("#timeline-modal");
    if (!el) return;
    el.addEventListener("hidden.bs.modal", function () { target.innerHTML = ""; }, { once: true });
    bootstrap.Modal.getOrCreateInstance(el).show();
  });
})();

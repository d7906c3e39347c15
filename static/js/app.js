// Small app-wide behaviours. htmx is configured here; page-specific code lives next to its template.
document.addEventListener("DOMContentLoaded", function () {
  if (window.htmx) {
    htmx.config.historyCacheSize = 0; // always refetch on back/forward so state is never stale
  }
});

// Message viewer: in-conversation search with highlighting and next / previous navigation.
//
// Safe for any text the user types: matching is plain case-insensitive substring search (no regular
// expression is built from the query), and highlights are made by splitting text nodes and wrapping
// the match in <mark> elements created with the DOM API (never innerHTML). Linear in the size of the
// conversation, so thousands of messages search without freezing the page.
(function () {
  "use strict";
  if (window.ccViewer) {
    window.ccViewer.initAll(document);
    return;
  }

  // Lower-case one UTF-16 unit at a time so the lowered string keeps every index of the original.
  function fold(text) {
    var out = "";
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      var low = ch.toLowerCase();
      out += low.length === 1 ? low : ch;
    }
    return out;
  }

  function Viewer(root) {
    this.root = root;
    this.input = root.querySelector("[data-viewer-search]");
    this.counter = root.querySelector("[data-viewer-count]");
    this.list = root.querySelector("[data-viewer-messages]");
    this.texts = Array.prototype.slice.call(root.querySelectorAll(".msg-text"));
    this.originals = this.texts.map(function (el) { return el.textContent; });
    this.folded = null; // computed on first search
    this.marks = [];
    this.current = -1;
    this.timer = null;
    this.bind();
  }

  Viewer.prototype.bind = function () {
    var self = this;
    if (!this.input) return;
    this.input.addEventListener("input", function () {
      clearTimeout(self.timer);
      self.timer = setTimeout(function () { self.search(self.input.value); }, 120);
    });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        clearTimeout(self.timer);
        if (self.lastQuery !== self.input.value) self.search(self.input.value);
        var back = event.key === "ArrowUp" || (event.key === "Enter" && event.shiftKey);
        self.move(back ? -1 : 1);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation(); // keep an enclosing modal open: Escape clears the search first
        clearTimeout(self.timer);
        self.input.value = "";
        self.search("");
      }
    });
    var next = this.root.querySelector("[data-viewer-next]");
    var prev = this.root.querySelector("[data-viewer-prev]");
    if (next) next.addEventListener("click", function () { self.ensure(); self.move(1); });
    if (prev) prev.addEventListener("click", function () { self.ensure(); self.move(-1); });
  };

  Viewer.prototype.ensure = function () {
    if (this.lastQuery !== this.input.value) this.search(this.input.value);
  };

  Viewer.prototype.clear = function () {
    for (var i = 0; i < this.texts.length; i++) {
      if (this.texts[i].childNodes.length !== 1 || this.texts[i].firstChild.nodeType !== 3) {
        this.texts[i].textContent = this.originals[i];
      }
    }
    this.marks = [];
    this.current = -1;
  };

  Viewer.prototype.search = function (query) {
    this.lastQuery = query;
    this.clear();
    var needle = fold(query);
    if (!needle.trim()) {
      this.render();
      return;
    }
    if (this.folded === null) this.folded = this.originals.map(fold);
    for (var i = 0; i < this.texts.length; i++) {
      var hay = this.folded[i];
      var at = hay.indexOf(needle);
      if (at === -1) continue;
      var text = this.originals[i];
      var fragment = document.createDocumentFragment();
      var from = 0;
      while (at !== -1) {
        if (at > from) fragment.appendChild(document.createTextNode(text.slice(from, at)));
        var mark = document.createElement("mark");
        mark.className = "cc-match";
        mark.textContent = text.slice(at, at + needle.length);
        fragment.appendChild(mark);
        this.marks.push(mark);
        from = at + needle.length;
        at = hay.indexOf(needle, from);
      }
      if (from < text.length) fragment.appendChild(document.createTextNode(text.slice(from)));
      this.texts[i].textContent = "";
      this.texts[i].appendChild(fragment);
    }
    if (this.marks.length) this.current = 0;
    this.render(true);
  };

  Viewer.prototype.move = function (step) {
    if (!this.marks.length) {
      this.render();
      return;
    }
    this.current = (this.current + step + this.marks.length) % this.marks.length;
    this.render(true);
  };

  Viewer.prototype.render = function (scroll) {
    var previous = this.root.querySelector("mark.cc-current");
    if (previous) previous.classList.remove("cc-current");
    if (!this.counter) return;
    if (!this.lastQuery || !this.lastQuery.trim()) {
      this.counter.textContent = "";
      return;
    }
    if (!this.marks.length) {
      this.counter.textContent = "No matches";
      return;
    }
    var mark = this.marks[this.current];
    mark.classList.add("cc-current");
    this.counter.textContent = this.current + 1 + " of " + this.marks.length;
    if (scroll) mark.scrollIntoView({ block: "center", inline: "nearest" });
  };

  function initAll(scope) {
    var roots = (scope || document).querySelectorAll("[data-viewer]");
    for (var i = 0; i < roots.length; i++) {
      if (!roots[i].ccViewer) roots[i].ccViewer = new Viewer(roots[i]);
    }
    var modals = (scope || document).querySelectorAll("[data-cc-modal]");
    for (var j = 0; j < modals.length; j++) {
      var modal = modals[j];
      if (modal.ccShown || !window.bootstrap) continue;
      modal.ccShown = true;
      window.bootstrap.Modal.getOrCreateInstance(modal).show();
      modal.addEventListener("hidden.bs.modal", function (event) { event.target.remove(); });
    }
  }

  window.ccViewer = { initAll: initAll, fold: fold };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { initAll(document); });
  } else {
    initAll(document);
  }
  document.addEventListener("htmx:afterSettle", function () { initAll(document); });
})();

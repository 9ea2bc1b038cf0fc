// riskwire review UI: keyboard shortcuts and bar widths. No dependencies, no network.
(function () {
  "use strict";
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function press(key) {
    var btn = document.querySelector('button[data-key="' + key + '"]');
    if (!btn || btn.disabled) return false;
    if (btn.form && btn.form.requestSubmit) { btn.form.requestSubmit(btn); } else { btn.click(); }
    return true;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape" && typing(document.activeElement)) { document.activeElement.blur(); return; }
    if (typing(ev.target)) return;
    var key = ev.key;
    if (key === "/") {
      var f = document.querySelector(".filters select, .filters input");
      if (f) { f.focus(); ev.preventDefault(); }
      return;
    }
    if (key === "?") {
      var keys = document.querySelector(".keys");
      if (keys) { keys.setAttribute("tabindex", "-1"); keys.focus(); }
      return;
    }
    if (["n", "f", "a", "l", "e"].indexOf(key) >= 0) {
      if (press(key)) ev.preventDefault();
    }
  });
  document.querySelectorAll(".fill[data-w]").forEach(function (el) {
    var w = parseInt(el.getAttribute("data-w"), 10);
    if (!isNaN(w)) el.style.width = Math.max(0, Math.min(100, w)) + "%";
  });
})();

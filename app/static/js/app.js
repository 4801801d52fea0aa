// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Confirm dangerous actions: <form data-confirm="...">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  // A keyboard-wedge scanner types a barcode into the focused field and ends it with Enter. In a scan
  // field (data-scanner) Enter moves to the next field of the same form instead of submitting it; only
  // a scan field that is the form's last field submits, as a search box would.
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Enter" || !field.hasAttribute || !field.hasAttribute("data-scanner") || !field.form) { return; }
    var fields = Array.prototype.filter.call(field.form.elements, function (el) {
      return !el.disabled && el.type !== "hidden" && el.tabIndex >= 0 && el.getClientRects().length > 0;
    });
    var next = fields[fields.indexOf(field) + 1];
    if (!next || next.type === "submit") { return; }
    event.preventDefault();
    next.focus();
  });
  // Start with the cursor in the page's first scan field.
  window.addEventListener("load", function () {
    var scan = document.querySelector("[data-scanner]");
    if (scan && !document.querySelector("[autofocus]")) { scan.focus(); }
  });
})();

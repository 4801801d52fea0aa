// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Confirm dangerous actions: <form data-confirm="...">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  // A barcode scanner types into the focused field and ends with Enter: keep the scanner field focused.
  window.addEventListener("load", function () {
    var scan = document.querySelector("[data-scanner]");
    if (scan && !document.querySelector("[autofocus]")) { scan.focus(); }
  });
})();

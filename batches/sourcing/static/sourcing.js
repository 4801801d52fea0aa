// A keyboard-wedge scanner ends each barcode with Enter: move to the next field instead of submitting the form.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Enter" || !field.hasAttribute || !field.hasAttribute("data-scanner") || !field.form) { return; }
    event.preventDefault();
    var inputs = Array.prototype.filter.call(field.form.elements, function (el) {
      return !el.disabled && el.type !== "hidden" && el.tabIndex >= 0;
    });
    var next = inputs[inputs.indexOf(field) + 1];
    if (next) { next.focus(); }
  });
})();

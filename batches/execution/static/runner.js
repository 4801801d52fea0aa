// Step runner: colour typed numbers by their limits and show calculations live. The server checks
// everything again; this only helps the operator see a problem while typing.
(function () {
  "use strict";
  // The same reading as the server (app/numbers.py): the site's decimal separator, the other character
  // only in full thousands groups; anything ambiguous ("1,500") gets no colour here and a message on save.
  var POINT = document.documentElement.getAttribute("data-decimal") === "," ? "," : ".";
  var GROUP = POINT === "." ? "," : ".";
  var P = POINT === "." ? "\\." : ",", G = GROUP === "." ? "\\." : ",";
  function plainMantissa(t) {
    if (t.indexOf(GROUP) >= 0) {
      var cut = t.indexOf(POINT), integer = cut < 0 ? t : t.slice(0, cut), groups = integer.split(GROUP);
      if (groups.length === 2 && cut < 0 && groups[1].length === 3 && /^\d{1,3}$/.test(groups[0])) { return null; }
      if (!new RegExp("^\\d{1,3}(?:" + G + "\\d{3})+(?:" + P + "\\d+)?$").test(t)) { return null; }
      t = t.split(GROUP).join("");
    }
    if (!new RegExp("^(?:\\d+(?:" + P + "\\d*)?|" + P + "\\d+)$").test(t)) { return null; }
    return t.replace(POINT, ".");
  }
  function parseNumber(text) {
    var raw = (text || "").trim();
    if (!raw) { return null; }
    var m = raw.match(/^([+-]?)([\d.,]+)(?:\s*[eE]\s*([+-]?\d+)|\s*[xX×*]\s*10\s*\^\s*([+-]?\d+))?$/);
    var mantissa = m ? plainMantissa(m[2]) : null;
    if (mantissa === null) { return null; }
    var v = parseFloat(m[1] + mantissa + "e" + (m[3] || m[4] || "0"));
    return isFinite(v) ? v : null;
  }
  function limitClass(v, el) {
    function num(name) { var a = el.getAttribute("data-" + name); return a === null || a === "" ? null : parseFloat(a); }
    var hl = num("hard-low"), hh = num("hard-high"), al = num("alert-low"), ah = num("alert-high");
    if (hl === null && hh === null && al === null && ah === null) { return null; }
    if ((hl !== null && v < hl) || (hh !== null && v > hh)) { return "out-limits"; }
    if ((al !== null && v < al) || (ah !== null && v > ah)) { return "alert-limits"; }
    return "in-limits";
  }
  // A tiny arithmetic evaluator: numbers, names, + - * / ( ), unary minus; the same language as the recipe.
  function evaluate(expr, values) {
    var tokens = expr.match(/\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|[-+*\/()]/g) || [], i = 0;
    function peek() { return tokens[i]; }
    function next() { return tokens[i++]; }
    function primary() {
      var t = next();
      if (t === "(") { var v = sum(); next(); return v; }
      if (t === "-") { return -primary(); }
      if (/^[A-Za-z_]/.test(t)) { if (values[t] === undefined || values[t] === null) { throw new Error("missing"); } return values[t]; }
      return parseFloat(t);
    }
    function product() { var v = primary(); while (peek() === "*" || peek() === "/") { v = next() === "*" ? v * primary() : v / primary(); } return v; }
    function sum() { var v = product(); while (peek() === "+" || peek() === "-") { v = next() === "+" ? v + product() : v - product(); } return v; }
    try { var r = sum(); return isFinite(r) ? r : null; } catch (e) { return null; }
  }
  function format(v) {
    if (Math.abs(v) >= 1e5) { var e = Math.floor(Math.log10(Math.abs(v))); return (v / Math.pow(10, e)).toFixed(2) + " x 10^" + e; }
    return String(Math.round(v * 1000) / 1000);
  }
  function refresh() {
    var values = {};
    var known = document.getElementById("known-values");
    if (known) { try { values = JSON.parse(known.textContent); } catch (e) { values = {}; } }
    document.querySelectorAll("input[data-number]").forEach(function (el) {
      var v = parseNumber(el.value);
      el.classList.remove("in-limits", "alert-limits", "out-limits");
      if (v !== null) { values[el.name] = v; var c = limitClass(v, el); if (c) { el.classList.add(c); } }
    });
    document.querySelectorAll("[data-expression]").forEach(function (el) {
      var v = evaluate(el.getAttribute("data-expression"), values);
      el.classList.remove("in-limits", "alert-limits", "out-limits");
      el.textContent = v === null ? "" : format(v) + " " + (el.getAttribute("data-unit") || "");
      if (v !== null) { var c = limitClass(v, el); if (c) { el.classList.add(c); } }
    });
  }
  document.addEventListener("input", refresh);
  window.addEventListener("load", refresh);
})();

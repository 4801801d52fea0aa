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
    // the words say what the colour says, for colour-blind operators
    if (hl !== null && v < hl) { return ["out-limits", "below the hard limit: out of limits"]; }
    if (hh !== null && v > hh) { return ["out-limits", "above the hard limit: out of limits"]; }
    if (al !== null && v < al) { return ["alert-limits", "below the alert limit"]; }
    if (ah !== null && v > ah) { return ["alert-limits", "above the alert limit"]; }
    return ["in-limits", "in limits"];
  }
  function show(el, key, result) {
    el.classList.remove("in-limits", "alert-limits", "out-limits");
    var word = document.querySelector('[data-word-for="' + key + '"]');
    if (result) { el.classList.add(result[0]); }
    if (word) {
      word.textContent = result ? result[1] : "";
      word.className = "limit-word" + (result ? " " + result[0] : "");
    }
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
    if (Math.abs(v) >= 1e5) { var e = Math.floor(Math.log10(Math.abs(v))); return (v / Math.pow(10, e)).toFixed(2).replace(/\.?0+$/, "") + " x 10^" + e; }
    return String(Math.round(v * 1000) / 1000);
  }
  function refresh() {
    var values = {};
    var known = document.getElementById("known-values");
    if (known) { try { values = JSON.parse(known.textContent); } catch (e) { values = {}; } }
    document.querySelectorAll("input[data-number]").forEach(function (el) {
      var v = parseNumber(el.value);
      if (v !== null) { values[el.name] = v; }
      show(el, el.name, v === null ? null : limitClass(v, el));
    });
    document.querySelectorAll("[data-expression]").forEach(function (el) {
      var v = evaluate(el.getAttribute("data-expression"), values);
      el.textContent = v === null ? "" : format(v) + " " + (el.getAttribute("data-unit") || "");
      var word = el.nextElementSibling;
      show(el, word ? word.getAttribute("data-word-for") : "", v === null ? null : limitClass(v, el));
    });
  }
  document.addEventListener("input", refresh);
  window.addEventListener("load", refresh);
})();

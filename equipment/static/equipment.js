// Live equipment list: reload the page periodically (progressive enhancement; the page works without it).
(function () {
  "use strict";
  var marker = document.querySelector("[data-live-refresh]");
  if (!marker) { return; }
  var seconds = parseInt(marker.getAttribute("data-live-refresh"), 10) || 30;
  window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
})();

/* djmw dashboard: refresh live parts in place (the overview, a bulk count still running),
   and ask before a delete.
   No row text ever reaches this script: it only moves HTML the server escaped. */
(function () {
  "use strict";

  function live(box) {
    var url = box.getAttribute("data-refresh-url");
    var seconds = Number(box.getAttribute("data-refresh-seconds")) || 5;
    var done = false;
    function later() { if (!done) { window.setTimeout(tick, seconds * 1000); } }
    function tick() {
      if (document.hidden) { later(); return; }
      window.fetch(url, { credentials: "same-origin", headers: { "X-Djmw-Fragment": "1" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          // A part that will not change again (a bulk count that came) says so.
          done = response.headers.get("X-Djmw-Refresh") === "stop";
          return response.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          box.classList.remove("offline");
          box.setAttribute("data-refreshed", String(Date.now()));
        })
        .catch(function () { box.classList.add("offline"); })
        .then(later);
    }
    later();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(live);
  });

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();

// jitad portal: live countdowns and local times. No framework; htmx does the polling.
(function () {
  function pad(n) { return String(n).padStart(2, "0"); }
  function fmt(seconds) {
    if (seconds <= 0) return "expiring";
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
    return (h ? h + "h " : "") + pad(m) + "m " + pad(s) + "s";
  }
  function tick() {
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = (Date.parse(el.dataset.expires) - Date.now()) / 1000;
      el.textContent = fmt(left);
    });
  }
  // The one timestamp shape of every page and message (jitad/humantime.py), in the reader's zone:
  // 2026-12-05 15:30 CET. The server's text (its configured zone) stays in the tooltip.
  var stamp = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                                   minute: "2-digit", hourCycle: "h23", timeZoneName: "short" });
  function localText(d) {
    var p = {};
    stamp.formatToParts(d).forEach(function (part) { p[part.type] = part.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + (p.timeZoneName ? " " + p.timeZoneName : "");
  }
  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d) && !el.hasAttribute("data-shown")) {
        el.title = el.textContent;
        el.textContent = localText(d);
        el.setAttribute("data-shown", "");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(); tick(); setInterval(tick, 1000); });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); tick(); });
  // A page that reloads itself when a state changes (a break-glass checkout) must not throw away what
  // someone is typing into it: its poll ([data-pause-while-typing]) pauses once a form on the page has
  // unsent input; sending the form loads the page afresh.
  var typing = false;
  document.addEventListener("input", function (e) { if (e.target && e.target.form) typing = true; });
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (typing && e.target && e.target.hasAttribute && e.target.hasAttribute("data-pause-while-typing")) e.preventDefault();
  });
})();

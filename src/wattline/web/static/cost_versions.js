/* Cost-version manager: list the versions, add one (admins), follow the job it starts. */
(function () {
  "use strict";

  var URL = "/api/power-analytics/cost-versions";

  var W = window.Wattline, status = W.status, api = W.api;

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    return td;
  }

  function scopeText(v) {
    if (v.scope === "global") return "global";
    return v.scope + (v.scope_name ? " " + v.scope_name : " #" + v.scope_id);
  }

  function load() {
    return api(URL).then(function (data) {
      var tbody = document.getElementById("versions-body");
      tbody.textContent = "";
      data.versions.slice().reverse().forEach(function (v) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-testid", "version-row");
        tr.setAttribute("data-id", v.id);
        [v.effective_from.replace("T", " ").replace("Z", ""), v.cost_per_kwh, v.currency, scopeText(v), v.notes,
          v.created_by].forEach(function (t) { tr.appendChild(cell(t)); });
        tbody.appendChild(tr);
      });
      status("status", data.versions.length ? data.versions.length + (data.versions.length === 1 ? " version" : " versions") + ", newest effective first" : "No cost version yet: figures are unpriced.");
    }).catch(function (e) { status("status", "Could not load the versions: " + e.message, true); });
  }

  // "2025-11-05T12:00" in an IANA zone -> an ISO instant with that zone's offset
  function withOffset(local, tz) {
    var guess = new Date(local + "Z");
    if (isNaN(guess)) return null;
    var parts = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(guess);
    var p = {};
    parts.forEach(function (x) { p[x.type] = x.value; });
    var asLocal = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    var offsetMin = Math.round((asLocal - guess.getTime()) / 60000);
    var sign = offsetMin >= 0 ? "+" : "-";
    var a = Math.abs(offsetMin);
    var hh = String(Math.floor(a / 60)).padStart(2, "0"), mm = String(a % 60).padStart(2, "0");
    return (local.length === 16 ? local + ":00" : local) + sign + hh + ":" + mm;
  }

  function follow(jobUrl) {
    status("job-status", "Checking what the version covers…");
    var tries = 0;
    (function poll() {
      api(jobUrl).then(function (job) {
        var p = job.progress || job.result || {};
        var text = "Job " + job.status + (p && Object.keys(p).length ? ": " + JSON.stringify(p) : "");
        status("job-status", text, job.status === "failed");
        if ((job.status === "queued" || job.status === "running") && tries++ < 600) setTimeout(poll, 500);
      }).catch(function (e) { status("job-status", "Could not follow the job: " + e.message, true); });
    })();
  }

  function submit(ev) {
    ev.preventDefault();
    var f = ev.target;
    var tz = f.timezone.value.trim() || "UTC";
    var effective;
    try { effective = withOffset(f.effective_from.value, tz); } catch (e) { effective = null; }
    if (!f.cost_per_kwh.value.trim() || !effective) {
      status("add-status", "A rate and a valid effective time (in a valid time zone) are needed.", true);
      return;
    }
    var body = { cost_per_kwh: f.cost_per_kwh.value.trim(), effective_from: effective };
    if (f.currency.value.trim()) body.currency = f.currency.value.trim().toUpperCase();
    if (f.classroom.value.trim()) body.classroom = f.classroom.value.trim();
    if (f.notes.value.trim()) body.notes = f.notes.value.trim();
    status("add-status", "Adding…");
    api(URL, { method: "POST", body: JSON.stringify(body),
      headers: { Accept: "application/json", "Content-Type": "application/json" } }).then(function (v) {
      status("add-status", (v.created ? "Added" : "Already stored") + ": " + v.cost_per_kwh + " " + v.currency +
        "/kWh from " + v.effective_from + ".");
      var jobUrl = v.job && (typeof v.job === "string" ? v.job : v.job.url);
      if (jobUrl) follow(jobUrl);
      return load();
    }).catch(function (e) { status("add-status", "Not added: " + e.message, true); });
  }

  var form = document.getElementById("add-version");
  if (form) form.addEventListener("submit", submit);
  load();
})();

/* Wattline campus pages: the classrooms list and a classroom's day (cards, timeline, devices),
   filled from the campus analytics API with the session cookie. */
(function () {
  "use strict";

  var body = document.body;
  var API = "/api/power-analytics/";

  var W = window.Wattline, el = W.el, setStatus = W.setStatus, api = W.api, fmt = W.fmt;

  function field(obj, path) {
    return path.split(".").reduce(function (o, k) { return o === null || o === undefined ? o : o[k]; }, obj);
  }

  // "2025-11-05T10:00:00+05:30" -> "2025-11-05 10:00:00": the classroom's wall clock, as Plotly draws it
  function wall(iso) { return iso.slice(0, 19).replace("T", " "); }

  // ------------------------------------------------------------------ classrooms

  function classroomsPage() {
    var tbody = document.getElementById("classrooms-body");
    api(API + "classrooms").then(function (data) {
      tbody.replaceChildren();
      data.classrooms.forEach(function (c) {
        tbody.appendChild(el("tr", { "data-testid": "classroom-row", "data-classroom": c.name }, [
          el("td", {}, [el("a", { href: "/classrooms/" + encodeURIComponent(c.name), text: c.name })]),
          el("td", { "data-label": "Time zone", text: c.timezone }),
          el("td", { "class": "num", "data-label": "Devices", text: String(c.devices) })
        ]));
      });
      setStatus(data.classrooms.length ? data.classrooms.length + " classrooms" : "No classrooms yet.");
    }).catch(function (e) { setStatus("Could not load the classrooms: " + e.message, true); });
  }

  // ------------------------------------------------------------------ one classroom

  function fillCards(s) {
    document.querySelectorAll(".card-value[data-field]").forEach(function (node) {
      var v = field(s, node.dataset.field);
      node.dataset.value = v === null || v === undefined ? "" : String(v);
      var scale = +(node.dataset.scale || 1);
      node.textContent = fmt(v === null || v === undefined ? v : v / scale, +node.dataset.digits);
    });
    document.querySelector("[data-testid=card-currency]").textContent = s.currency;
    var q = s.quality;
    var badge = document.querySelector("[data-testid=estimated-badge]");
    badge.hidden = !q.estimated;
    var est = document.querySelector("[data-testid=estimated-kwh]");
    est.textContent = q.estimated_kwh ? "of which estimated: " + fmt(q.estimated_kwh, 3) + " kWh" +
      (q.flags.length ? " (" + q.flags.join(", ").replace(/_/g, " ") + ")" : "") : "";
    est.dataset.value = String(q.estimated_kwh);
  }

  function fillDevices(b) {
    var tbody = document.getElementById("devices-body");
    tbody.replaceChildren();
    b.devices.forEach(function (d) {
      var q = d.quality;
      tbody.appendChild(el("tr", { "data-testid": "device-row", "data-esp32": d.esp32_name, "data-device": d.device_id }, [
        el("td", { "data-label": "Controller", text: d.esp32_name }),
        el("td", { "data-label": "Device", text: d.device_id }),
        el("td", { "class": "num", "data-label": "Energy", "data-testid": "device-energy", "data-value": d.energy_kwh,
          text: fmt(d.energy_kwh, 3) }),
        el("td", { "class": "num", "data-label": "Cost", "data-testid": "device-cost",
          "data-value": d.cost === null ? "" : d.cost, text: fmt(d.cost, 2) + " " + b.currency }),
        el("td", { "class": "num", "data-label": "On-time", "data-value": d.on_time_sec, text: fmt(d.on_time_sec / 3600, 2) }),
        el("td", { "class": "num", "data-label": "High confidence" }, [
          fmt(q.high_confidence_pct, 1) + " %",
          q.estimated ? el("span", { "class": "badge badge-warn", "data-testid": "device-estimated", text: "estimated" }) : null
        ])
      ]));
    });
    if (!b.devices.length) tbody.appendChild(el("tr", {}, [el("td", { colspan: "6", text: "No devices in this classroom." })]));
  }

  function drawTimeline(div, t) {
    if (!window.Plotly) { div.dataset.state = "error"; div.replaceChildren(el("p", { "class": "empty", text: "Plotly.js did not load." })); return; }
    var width = t.bucket_minutes * 60000 * 0.9;
    var kinds = [{ est: false, name: "measured", color: "#2563eb" }, { est: true, name: "estimated", color: "#f59e0b" }];
    var traces = kinds.map(function (k) {
      var mine = t.buckets.filter(function (b) { return !!b.quality.estimated === k.est; });
      return {
        type: "bar", name: k.name, x: mine.map(function (b) { return wall(b.start); }),
        y: mine.map(function (b) { return b.energy_kwh; }), width: mine.map(function () { return width; }),
        offset: 0, marker: { color: k.color },
        customdata: mine.map(function (b) { return b.cost === null ? "unpriced" : fmt(b.cost, 2) + " " + t.currency; }),
        hovertemplate: "%{x|%d %b %H:%M}<br>%{y:,.3f} kWh<br>%{customdata}<extra></extra>"
      };
    }).filter(function (tr) { return tr.x.length > 0; });
    var badge = document.querySelector("[data-testid=chart-timeline-badge]");
    var nEst = t.buckets.filter(function (b) { return b.quality.estimated; }).length;
    badge.hidden = nEst === 0;
    badge.textContent = nEst ? nEst + " estimated buckets" : "";
    div.dataset.buckets = String(t.buckets.length);
    if (!div.data) div.replaceChildren();
    return window.Plotly.react(div, traces, {
      margin: { l: 60, r: 12, t: 30, b: 48 }, autosize: true, barmode: "overlay", showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      xaxis: { type: "date", title: { text: "Local time (" + t.timezone + ")" }, automargin: true },
      yaxis: { title: { text: "Energy (kWh)" }, automargin: true, rangemode: "tozero" },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff"
    }, { responsive: true, displaylogo: false }).then(function () { div.dataset.state = "ready"; });
  }

  function classroomPage() {
    var name = body.dataset.classroom;
    var q = "classroom=" + encodeURIComponent(name);
    var dayInput = document.getElementById("day"), bucketSel = document.getElementById("bucket");
    var div = document.getElementById("chart-timeline");

    function loadTimeline() {
      div.dataset.state = "loading";
      var day = dayInput.value;
      return api(API + "timeline?" + q + "&start=" + day + "&end=" + day + "&bucket=" + bucketSel.value)
        .then(function (t) { return drawTimeline(div, t); })
        .catch(function (e) { div.dataset.state = "error"; div.replaceChildren(el("p", { "class": "empty", text: "Could not load the timeline: " + e.message })); });
    }

    function load() {
      var day = dayInput.value;
      if (!day) return;
      history.replaceState(null, "", location.pathname + "?date=" + day);
      setStatus("Loading…");
      var cards = api(API + "summary?" + q + "&date=" + day).then(function (s) {
        fillCards(s);
        document.querySelector("[data-testid=cards]").dataset.date = s.date;
      });
      var devices = api(API + "device-breakdown?" + q + "&date=" + day).then(fillDevices);
      Promise.all([cards, devices, loadTimeline()]).then(function () { setStatus(""); })
        .catch(function (e) { setStatus("Could not load the classroom: " + e.message, true); });
    }

    dayInput.addEventListener("change", load);
    bucketSel.addEventListener("change", loadTimeline);
    document.getElementById("day-form").addEventListener("submit", function (e) { e.preventDefault(); load(); });
    load();
  }

  var pages = { classrooms: classroomsPage, classroom: classroomPage };
  var init = pages[body.dataset.page];
  if (init) init();
})();

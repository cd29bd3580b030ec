/* Wattline system pages: the systems list's composite selector, and a system's (or a
   composite's) point grid (/api/data/latest), power chart (/api/data/historical, Plotly
   as on the plant pages) and energy-flow Sankeys (/api/data/flows, static/sankey.js). */
(function () {
  "use strict";

  var body = document.body;
  var W = window.Wattline, el = W.el, setStatus = W.setStatus, api = W.api, fmt = W.fmt;
  var POWER_UNITS = ["W", "kW"];
  var REFRESH_MS = 60000;
  var COLOURS = { solar_w: "#f59e0b", power: "#f59e0b", load_w: "#2563eb", battery_w: "#16a34a", grid_w: "#6b7280" };

  // ------------------------------------------------------------------ the list

  function compositeList(data) {
    if (Array.isArray(data)) return data;
    return (data && (data.composites || data.data)) || [];
  }

  function loadComposites() {
    var select = document.querySelector("[data-testid=composite-select]");
    if (!select) return;
    api("/api/composite").then(function (data) {
      var list = compositeList(data);
      select.replaceChildren(el("option", { value: "", text: list.length ? "Choose a composite…" : "No composites" }));
      list.forEach(function (c) {
        select.appendChild(el("option", { value: c.slug || String(c.id), "data-testid": "composite-option",
          text: (c.favourite ? "★ " : "") + c.name + " (" + (c.memberIds || []).length + " systems)" }));
      });
      select.disabled = list.length === 0;
      select.dataset.count = String(list.length);
      W.status("composite-status", "");
    }).catch(function (e) {
      select.replaceChildren(el("option", { value: "", text: "Composites unavailable" }));
      W.status("composite-status", "Could not load the composites: " + e.message, true);
    });
    select.addEventListener("change", function () {
      if (select.value) location.assign("/composites/" + encodeURIComponent(select.value));
    });
  }

  // ------------------------------------------------------------------ one system or composite

  function query() {
    return body.dataset.view === "composite" ? "composite=" + encodeURIComponent(body.dataset.ref)
      : "systemId=" + encodeURIComponent(body.dataset.id);
  }

  function historicalTarget() {
    return encodeURIComponent(body.dataset.view === "composite" ? body.dataset.ref : body.dataset.id);
  }

  var timeFormats = {};
  function fmtTime(epochS, tz) {
    if (epochS === null || epochS === undefined) return "never";
    var key = tz || "UTC";
    var f = timeFormats[key] || (timeFormats[key] = new Intl.DateTimeFormat("en-GB", {
      timeZone: key, month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
      hourCycle: "h23", timeZoneName: "short" }));
    return f.format(new Date(epochS * 1000));
  }

  // epoch s -> wall-clock text in the view's zone, which Plotly draws on a date axis
  function localClock(tz) {
    var f = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    var cache = new Map();
    return function (epochS) {
      var ms = epochS * 1000, key = Math.floor(ms / 1800000), off = cache.get(key);
      if (off === undefined) {
        var t = key * 1800000, p = {};
        f.formatToParts(new Date(t)).forEach(function (part) { p[part.type] = part.value; });
        off = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - t;
        cache.set(key, off);
      }
      return new Date(ms + off).toISOString().slice(0, 19).replace("T", " ");
    };
  }

  function digitsFor(v, unit) {
    if (unit === "%") return 1;
    return Math.abs(v) >= 100 ? 0 : 2;
  }

  var labels = {}, powerKeys = [];

  // the values come in display order; labels from includeMetadata's points
  function fillGrid(data) {
    var grid = document.getElementById("point-grid");
    var values = (data && data.data) || {};
    var meta = (data && data.metadata) || {};
    var points = meta.points || {};
    var keys = Object.keys(values);
    keys.forEach(function (k) { labels[k] = (points[k] && points[k].label) || k; });
    grid.replaceChildren();
    keys.forEach(function (k) {
      var v = values[k] || {};
      grid.appendChild(el("div", { "class": "card", "data-testid": "point-card", "data-key": k }, [
        el("div", { "class": "card-label", text: labels[k] }),
        el("div", { "class": "card-value", "data-testid": "point-value", "data-value": String(v.value),
          text: fmt(v.value, digitsFor(v.value, v.unit)) }),
        el("div", { "class": "card-unit", text: (v.unit || "") + " · " + fmtTime(v.timestamp, body.dataset.timezone) })
      ]));
    });
    if (!keys.length) grid.appendChild(el("p", { "class": "empty", text: "No values yet." }));
    grid.dataset.state = "ready";
    grid.dataset.count = String(keys.length);
    var last = document.getElementById("last-update");
    if (last) last.textContent = " · last update " + fmtTime(meta.lastUpdate, body.dataset.timezone) +
      (meta.source ? " (" + meta.source + ")" : "");
    powerKeys = keys.filter(function (k) {
      var mt = points[k] && points[k].metricType;
      return mt ? mt === "power" : POWER_UNITS.indexOf((values[k] || {}).unit) >= 0;
    });
  }

  function loadLatest() {
    var url = "/api/data/latest?" + query() + "&includeMetadata=true";
    return api(url).then(fillGrid).catch(function (e) {
      var grid = document.getElementById("point-grid");
      grid.dataset.state = "error";
      grid.replaceChildren(el("p", { "class": "empty", text: "Could not load the latest values: " + e.message }));
      throw e;
    });
  }

  function chartState(div, state, message) {
    div.dataset.state = state;
    if (window.Plotly && div.data) window.Plotly.purge(div);
    div.replaceChildren(el("p", { "class": "empty", text: message }));
  }

  var chartSeq = 0;
  function loadChart(range) {
    var div = document.getElementById("chart-power");
    var seq = ++chartSeq;
    div.dataset.state = "loading";
    div.dataset.range = range;
    document.getElementById("chart-range-label").textContent = range;
    if (!powerKeys.length) { chartState(div, "empty", "This system reports no power points."); return Promise.resolve(); }
    var url = "/api/data/historical?systemIds=" + historicalTarget() + "&pointKeys=" +
      powerKeys.map(encodeURIComponent).join(",") + "&range=" + encodeURIComponent(range);
    return api(url).then(function (res) {
      if (seq !== chartSeq) return;  // a later range was chosen meanwhile
      var rows = res.data || [];
      div.dataset.points = String(rows.length);
      div.dataset.aggregation = (res.metadata && res.metadata.aggregation) || "";
      if (!rows.length) { chartState(div, "empty", "No data in this range."); return; }
      if (!window.Plotly) { chartState(div, "error", "Plotly.js did not load."); return; }
      var clock = localClock(body.dataset.timezone || "UTC");
      var units = (res.metadata && res.metadata.units) || {};
      var unitList = powerKeys.map(function (k) { return units[k]; }).filter(function (u, i, a) { return u && a.indexOf(u) === i; });
      var x = rows.map(function (r) { return clock(r.timestamp); });
      var traces = powerKeys.map(function (k) {
        return { type: "scatter", mode: "lines", name: labels[k] || k, x: x,
          y: rows.map(function (r) { return r[k] === undefined ? null : r[k]; }), connectgaps: false,
          line: { width: 1.6, color: COLOURS[k] },
          hovertemplate: "%{x|%d %b %H:%M}<br>%{y:,.2f}<extra>" + (labels[k] || k) + "</extra>" };
      });
      var lay = { margin: { l: 60, r: 12, t: 10, b: 48 }, autosize: true, hovermode: "x", height: 320,
        xaxis: { type: "date", title: { text: "Local time (" + body.dataset.timezone + ")" }, automargin: true },
        yaxis: { title: { text: "Power" + (unitList.length === 1 ? " (" + unitList[0] + ")" : "") }, automargin: true,
          zeroline: true },
        legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" }, showlegend: true,
        paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
      if (!div.data) div.replaceChildren();
      return window.Plotly.react(div, traces, lay, { responsive: true, displaylogo: false,
        // on a phone the mode bar would sit on the legend
        displayModeBar: window.matchMedia("(max-width: 640px)").matches ? false : "hover" }).then(function () {
        if (seq === chartSeq) div.dataset.state = "ready";
      });
    }).catch(function (e) { if (seq === chartSeq) chartState(div, "error", "Could not load the chart: " + e.message); });
  }

  var sankeySeq = {};
  function loadSankey(id, range) {
    var div = document.getElementById(id);
    var seq = sankeySeq[id] = (sankeySeq[id] || 0) + 1;
    div.dataset.state = "loading";
    div.dataset.range = range;
    return api("/api/data/flows?" + query() + "&range=" + encodeURIComponent(range)).then(function (data) {
      if (seq !== sankeySeq[id]) return;
      window.WattlineSankey.draw(div, data);
      div.dataset.range = range;
      if (range === "now" && data.asOf) {
        div.appendChild(el("p", { "class": "sub", "data-testid": "sankey-as-of",
          text: "Latest values of " + fmtTime(data.asOf, body.dataset.timezone) }));
      }
    }).catch(function (e) {
      if (seq !== sankeySeq[id]) return;
      div.dataset.state = "error";
      div.replaceChildren(el("p", { "class": "empty", text: "Could not load the energy flow: " + e.message }));
    });
  }

  function chooseRange(range) {
    document.querySelectorAll(".btn-range").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.range === range));
    });
    document.getElementById("sankey-range-label").textContent = range;
    return Promise.all([loadChart(range), loadSankey("sankey-range", range)]);
  }

  // ------------------------------------------------------------------ sharing (owner, admin)

  function sharing() {
    var form = document.getElementById("share-form");
    if (!form) return;
    var url = "/api/data/systems/" + encodeURIComponent(body.dataset.id) + "/shares";
    var list = document.getElementById("share-list");

    function show(names) {
      list.replaceChildren();
      names.forEach(function (u) {
        var revoke = el("button", { type: "button", "class": "btn btn-small", "data-testid": "share-revoke", text: "Revoke" });
        revoke.addEventListener("click", function () {
          revoke.disabled = true;
          api(url + "/" + encodeURIComponent(u), { method: "DELETE" }).then(function (res) {
            show(res.sharedWith || []);
            W.status("share-status", "Revoked " + u + ".");
          }).catch(function (e) { W.status("share-status", "Could not revoke: " + e.message, true); revoke.disabled = false; });
        });
        list.appendChild(el("li", { "data-testid": "share-item", "data-username": u }, [u + " ", revoke]));
      });
      if (!names.length) list.appendChild(el("li", { text: "Nobody yet." }));
    }
    show(Array.prototype.map.call(list.querySelectorAll("[data-testid=share-item]"), function (li) { return li.dataset.username; }));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = form.elements.username.value.trim();
      if (!name) return;
      api(url, { method: "POST", body: JSON.stringify({ username: name }),
        headers: { Accept: "application/json", "Content-Type": "application/json" } }).then(function (res) {
        show(res.sharedWith || []);
        W.status("share-status", res.changed ? "Shared with " + name + "." : name + " had it already.");
        form.reset();
      }).catch(function (e) { W.status("share-status", "Could not share: " + e.message, true); });
    });
  }

  function viewPage() {
    sharing();
    var range = "24H";
    document.querySelectorAll(".btn-range").forEach(function (b) {
      b.addEventListener("click", function () { chooseRange(b.dataset.range); });
    });
    loadSankey("sankey-now", "now");
    // the newest values and the flow now follow the minute polling while the page is open
    setInterval(function () {
      if (document.hidden) return;
      loadSankey("sankey-now", "now");
      api("/api/data/latest?" + query() + "&includeMetadata=true").then(fillGrid).catch(function () {});
    }, REFRESH_MS);
    loadLatest().then(function () {
      setStatus("");
      return chooseRange(range);
    }).catch(function (e) {
      setStatus("Could not load this view: " + e.message, true);
      chooseRange(range);
    });
  }

  function start() {
    var page = body.dataset.page;
    if (page === "systems") loadComposites();
    else if (page === "system" || page === "composite") viewPage();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

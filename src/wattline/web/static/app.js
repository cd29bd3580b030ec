/* Wattline dashboard: the plant, work-order, jobs and sync-log pages. Needs common.js first. */
(function () {
  "use strict";

  var body = document.body;
  var SUMMARY_FIELDS = ["daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh", "total_energy_mwh",
    "current_power_kw"];
  var ESTIMATE_FLAGS = ["estimated", "low_confidence", "gap"];
  var EXPECTED_STEP_MS = 15 * 60 * 1000;

  // ------------------------------------------------------------------ helpers

  // common.js (loaded first): elements, the status line, the JSON API with the CSRF token
  var el = window.Wattline.el, setStatus = window.Wattline.setStatus, api = window.Wattline.api,
    fmt = window.Wattline.fmt;

  var timeFormats = {};
  function fmtTime(iso, tz) {
    if (!iso) return "never";
    var key = tz || "UTC";
    var f = timeFormats[key] || (timeFormats[key] = new Intl.DateTimeFormat("en-GB", {
      timeZone: key, year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23", timeZoneName: "short" }));
    return f.format(new Date(iso));
  }

  function fmtUtc(iso) {
    return iso ? iso.replace("T", " ").replace(/Z$/, "") : "–";
  }

  // UTC instant -> wall-clock text in the plant's zone ("YYYY-MM-DD HH:MM:SS"), which is what
  // Plotly draws on a date axis. Offsets change at whole or half hours: cache per half hour.
  function localClock(tz) {
    var f = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    var cache = new Map();
    function offset(ms) {
      var key = Math.floor(ms / 1800000);
      var off = cache.get(key);
      if (off === undefined) {
        var t = key * 1800000, p = {};
        f.formatToParts(new Date(t)).forEach(function (part) { p[part.type] = part.value; });
        off = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - t;
        cache.set(key, off);
      }
      return off;
    }
    return function (iso) {
      var ms = Date.parse(iso);
      return new Date(ms + offset(ms)).toISOString().slice(0, 19).replace("T", " ");
    };
  }

  function estimateFlags(flags) {
    return (flags || []).filter(function (f) { return ESTIMATE_FLAGS.indexOf(f) >= 0; });
  }

  function healthDot(health) {
    var h = ["green", "yellow", "red"].indexOf(health) >= 0 ? health : "unknown";
    var label = { green: "healthy: recent data", yellow: "late data", red: "stale or no data", unknown: "unknown" }[h];
    return el("span", { "class": "dot dot-" + h, role: "img", "aria-label": "health " + h + " (" + label + ")",
      title: label, "data-health": h, "data-testid": "health-dot" });
  }

  // ------------------------------------------------------------------ cards

  function fillCards(summary, timezone) {
    document.querySelectorAll(".card-value[data-field]").forEach(function (node) {
      var v = summary ? summary[node.dataset.field] : null;
      node.textContent = fmt(v, +node.dataset.digits);
      node.dataset.value = v === null || v === undefined ? "" : String(v);
    });
    fillCostCards(summary);
    var last = document.getElementById("last-update");
    if (last) last.textContent = "Last update: " + fmtTime(summary && summary.last_update_time, timezone);
    var badge = document.getElementById("quality-badge");
    var flags = estimateFlags(summary && summary.quality);
    if (!summary) flags = ["no_data"];
    if (badge) {
      badge.hidden = flags.length === 0;
      badge.textContent = flags.length ? (summary ? "includes estimated data: " : "") + flags.join(", ").replace(/_/g, " ") : "";
      badge.dataset.flags = flags.join(",");
    }
  }

  // cost cards: shown only when some period is priced; an unpriced period says so, never 0
  var COST_PERIODS = ["daily", "monthly", "yearly", "total"];

  function costNote(notes) {
    notes = notes || [];
    if (notes.indexOf("no_cost_version") >= 0) return "no cost version";
    if (notes.indexOf("mixed_currency") >= 0) return "several currencies";
    if (notes.indexOf("partly_unpriced") >= 0) return "partly unpriced";
    return "";
  }

  function isPriced(summary) {
    return !!summary && COST_PERIODS.some(function (p) {
      return summary[p + "_cost"] !== null && summary[p + "_cost"] !== undefined;
    });
  }

  function costText(cost, currency) {
    return cost === null || cost === undefined ? "" : fmt(cost, 2) + " " + (currency || "");
  }

  function fillCostCards(summary) {
    var box = document.querySelector("[data-testid=cost-cards]");
    if (!box) return;
    var priced = isPriced(summary);
    box.style.display = priced ? "" : "none";
    box.dataset.priced = String(priced);
    if (!priced) return;
    box.querySelectorAll("[data-cost-field]").forEach(function (node) {
      var p = node.dataset.costField, v = summary[p + "_cost"];
      var note = costNote((summary.cost_quality || {})[p]);
      node.textContent = v === null || v === undefined ? "–" : fmt(v, 2);
      node.dataset.value = v === null || v === undefined ? "" : String(v);
      node.dataset.micro = summary[p + "_cost_micro"] === null ? "" : String(summary[p + "_cost_micro"]);
      node.title = note;
      var unit = node.parentNode.querySelector("[data-cost-unit]");
      if (unit) unit.textContent = (summary.currency || "") + (note ? " · " + note : "");
    });
  }

  // ------------------------------------------------------------------ charts

  var PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"],
    // on a phone the mode bar would sit on top of the legend and the lines
    displayModeBar: window.matchMedia("(max-width: 640px)").matches ? false : "hover" };
  var BAR_KINDS = [
    { key: "measured", name: "measured", color: "#2563eb" },
    { key: "estimated", name: "estimated", color: "#f59e0b" },
    { key: "gap", name: "estimated (gap)", color: "#dc2626" },
    { key: "no_data", name: "no data", color: "#9ca3af" }
  ];

  function layout(xTitle, yTitle, extra) {
    return Object.assign({
      margin: { l: 60, r: 12, t: 10, b: 48 }, autosize: true, hovermode: "closest",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, Liberation Sans, Arial, sans-serif", size: 12 },
      xaxis: { type: "date", title: { text: xTitle }, automargin: true },
      yaxis: { title: { text: yTitle }, automargin: true, rangemode: "tozero" },
      showlegend: false, paper_bgcolor: "#fff", plot_bgcolor: "#fff"
    }, extra || {});
  }

  function chartState(div, state, message) {
    div.dataset.state = state;
    if (message !== undefined) {
      if (window.Plotly && div.data) window.Plotly.purge(div);
      div.replaceChildren(el("p", { "class": "empty", text: message }));
    }
  }

  function chartBadge(id, flags) {
    var b = document.querySelector("[data-testid=" + id + "-badge]");
    if (!b) return;
    b.hidden = flags.length === 0;
    b.textContent = flags.length ? "estimated data: " + flags.join(", ").replace(/_/g, " ") : "";
  }

  function draw(div, traces, lay) {
    if (!window.Plotly) { chartState(div, "error", "Plotly.js did not load."); return Promise.resolve(); }
    if (!div.data) div.replaceChildren();  // drop a "no data" message, never Plotly's own nodes
    return window.Plotly.react(div, traces, lay, PLOT_CONFIG).then(function () { div.dataset.state = "ready"; });
  }

  // a line whose gaps (steps longer than 1.5 expected intervals) stay visible as breaks
  function lineXY(points, key, clock) {
    var x = [], y = [], prev = null, gaps = 0;
    points.forEach(function (p) {
      var ms = Date.parse(p.ts);
      if (prev !== null && ms - prev > 1.5 * EXPECTED_STEP_MS) { x.push(null); y.push(null); gaps++; }
      x.push(clock(p.ts)); y.push(p[key]); prev = ms;
    });
    return { x: x, y: y, gaps: gaps };
  }

  function drawLine(div, data, key, opts) {
    if (!data.points.length) { chartState(div, "empty", "No data in this window."); return; }
    var clock = localClock(data.timezone);
    var xy = lineXY(data.points, key, clock);
    chartBadge(div.id, xy.gaps ? ["gap"] : []);
    div.dataset.gaps = String(xy.gaps);
    return draw(div, [{
      type: "scatter", mode: "lines", x: xy.x, y: xy.y, name: opts.name, connectgaps: false,
      line: { color: opts.color, width: 1.6 }, fill: opts.fill || "none",
      hovertemplate: "%{x|%d %b %Y %H:%M}<br>%{y:,." + opts.digits + "f} " + data.unit + "<extra></extra>"
    }], layout("Local time (" + data.timezone + ")", opts.name + " (" + data.unit + ")", { hovermode: "x" }));
  }

  function barKind(q) {
    q = q || [];
    if (q.indexOf("no_data") >= 0) return "no_data";
    if (q.indexOf("gap") >= 0) return "gap";
    if (q.indexOf("estimated") >= 0 || q.indexOf("low_confidence") >= 0) return "estimated";
    return "measured";
  }

  function drawDailyBars(div, bars, unit, timezone) {
    if (!bars.length) { chartState(div, "empty", "No data in this window."); return; }
    var flagged = {};
    var traces = BAR_KINDS.map(function (k) {
      var mine = bars.filter(function (b) { return barKind(b.quality) === k.key; });
      mine.forEach(function (b) { estimateFlags(b.quality).forEach(function (f) { flagged[f] = true; }); });
      return {
        type: "bar", name: k.name, x: mine.map(function (b) { return b.date; }),
        y: mine.map(function (b) { return b.energy_kwh; }),
        customdata: mine.map(function (b) {
          var q = (b.quality || []).length ? b.quality.join(", ").replace(/_/g, " ") : "measured";
          var note = costNote(b.cost_quality);
          // the day's cost only where it is priced (a bar with no cost version shows none)
          var cost = b.cost === null || b.cost === undefined ? "" :
            "<br>" + costText(b.cost, b.currency) + (note ? " (" + note + ")" : "");
          return [q, cost];
        }),
        marker: { color: k.color }, width: 0.8 * 86400000,  // a day's width even for a lone bar
        showlegend: mine.length > 0 || k.key === "measured",
        hovertemplate: "%{x|%a %d %b %Y}<br>%{y:,.1f} " + unit + "%{customdata[1]}<br>%{customdata[0]}<extra></extra>"
      };
    }).filter(function (t) { return t.x.length > 0 || t.name === "measured"; });
    chartBadge(div.id, Object.keys(flagged));
    div.dataset.pricedBars = String(bars.filter(function (b) { return b.cost !== null && b.cost !== undefined; }).length);
    div.dataset.estimatedBars = String(bars.filter(function (b) { return barKind(b.quality) !== "measured"; }).length);
    var xTitle = "Local date" + (timezone ? " (" + timezone + ")" : "");
    return draw(div, traces, layout(xTitle, "Daily energy (" + unit + ")", {
      barmode: "overlay", showlegend: true, bargap: 0.15,
      xaxis: { type: "date", title: { text: xTitle }, automargin: true, tickformat: "%d %b" },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      margin: { l: 60, r: 12, t: 30, b: 48 }
    }));
  }

  function loadChart(id, url, render) {
    var div = document.getElementById(id);
    if (!div) return Promise.resolve();
    div.dataset.state = "loading";
    return api(url).then(function (data) { return render(div, data); }).catch(function (e) {
      chartState(div, "error", "Could not load this chart: " + e.message);
    });
  }

  // ------------------------------------------------------------------ pages

  function plantsPage() {
    var tbody = document.getElementById("plants-body");
    api("/api/plants").then(function (data) {
      tbody.replaceChildren();
      data.plants.forEach(function (p) {
        var s = p.summary || {};
        tbody.appendChild(el("tr", { "data-testid": "plant-row", "data-plant-id": p.id, "data-health": p.health }, [
          el("td", {}, [el("a", { "class": "plant-name", href: "/plants/" + p.id }, [healthDot(p.health), p.name])]),
          el("td", { "data-label": "Vendor", text: p.vendor }),
          el("td", { "class": "num", "data-label": "Today", "data-testid": "plant-daily",
            "data-value": s.daily_energy_kwh, "data-cost": s.daily_cost === null || s.daily_cost === undefined ? "" : s.daily_cost,
            text: fmt(s.daily_energy_kwh, 1) + " kWh" + (s.daily_cost === null || s.daily_cost === undefined ? "" :
              " · " + costText(s.daily_cost, s.currency)) }),
          el("td", { "class": "num", "data-label": "Power", "data-testid": "plant-power",
            "data-value": s.current_power_kw, text: fmt(s.current_power_kw, 1) + " kW" }),
          el("td", { "data-label": "Last update", "data-testid": "plant-last-update",
            text: fmtTime(s.last_update_time, p.timezone) })
        ]));
      });
      setStatus(data.plants.length ? data.plants.length + " plants" : "No plants yet.");
    }).catch(function (e) { setStatus("Could not load the plants: " + e.message, true); });

    var list = document.getElementById("work-orders");
    api("/api/work-orders").then(function (data) {
      list.replaceChildren();
      data.workOrders.forEach(function (w) {
        list.appendChild(el("li", {}, [el("a", { href: "/work-orders/" + w.id, "data-testid": "work-order-link", text: w.name }),
          " · " + w.plantIds.length + " plants"]));
      });
      if (!data.workOrders.length) list.appendChild(el("li", { text: "No work orders." }));
    }).catch(function (e) { list.replaceChildren(el("li", { text: "Could not load the work orders: " + e.message })); });
  }

  function plantPage() {
    var id = body.dataset.plantId, tz = body.dataset.timezone;
    var base = "/api/telemetry/plant/" + id + "/charts/";

    function loadSummary() {
      return api("/api/plants/" + id).then(function (p) {
        fillCards(p.summary, p.timezone);
        var dot = document.getElementById("health-dot");
        dot.replaceWith(healthDot(p.health));
        var links = document.getElementById("work-order-links");
        links.replaceChildren();
        (p.workOrders || []).forEach(function (w) {
          links.appendChild(document.createTextNode(" · "));
          links.appendChild(el("a", { href: "/work-orders/" + w, text: "work order " + w }));
        });
        setStatus(p.summary ? "" : "No data for this plant yet.");
      }).catch(function (e) { setStatus("Could not load the plant: " + e.message, true); });
    }

    function loadCharts() {
      return Promise.all([
        loadChart("chart-energy", base + "energy-15m?days=31", function (div, d) {
          return drawLine(div, d, "total_energy_mwh", { name: "Cumulative energy", digits: 3, color: "#1d4ed8" });
        }),
        loadChart("chart-power", base + "power?hours=24", function (div, d) {
          return drawLine(div, d, "power_kw", { name: "Power", digits: 1, color: "#ea580c", fill: "tozeroy" });
        }),
        loadChart("chart-daily", base + "daily-energy?days=31", function (div, d) {
          return drawDailyBars(div, d.bars, d.unit, d.timezone || tz);
        })
      ]);
    }

    loadSummary();
    loadCharts();
    var btn = document.getElementById("backfill-btn");
    if (btn) btn.addEventListener("click", function () { startBackfill(id, btn, function () { loadSummary(); loadCharts(); }); });
  }

  function startBackfill(plantId, btn, done) {
    var status = document.getElementById("backfill-status");
    var bar = document.getElementById("backfill-progress");
    function show(text, state) { status.textContent = text; status.dataset.state = state; }
    btn.disabled = true;
    bar.hidden = true;
    show("Starting the backfill…", "queued");
    api("/api/telemetry/plant/" + plantId + "/backfill", { method: "POST" }).then(function (job) {
      status.dataset.jobId = job.jobId;
      function poll() {
        api(job.jobUrl).then(function (j) {
          var p = j.progress || {};
          if (p.totalChunks) { bar.hidden = false; bar.max = p.totalChunks; bar.value = p.chunk || 0; }
          if (j.status === "succeeded") {
            var r = j.result || {};
            bar.value = bar.max;
            show("Done: " + fmt(r.recordsSynced || p.records || 0, 0) + " records in " +
              (r.chunksProcessed !== undefined ? r.chunksProcessed : p.chunk || 0) + " chunks" +
              (r.duration ? " (" + r.duration + ")" : "") + ".", "succeeded");
            btn.disabled = false;
            done();
          } else if (j.status === "failed") {
            show("Backfill failed: " + (j.error || "unknown error"), "failed");
            btn.disabled = false;
          } else {
            var text = j.status === "queued" ? "Queued…" : "Running: chunk " + (p.chunk || 0) + "/" + (p.totalChunks || "?") +
              " · " + fmt(p.records || 0, 0) + " records";
            if (p.pausedUntil) text += " · paused by the vendor's rate limit until " + fmtTime(
              typeof p.pausedUntil === "number" ? new Date(p.pausedUntil * 1000).toISOString() : p.pausedUntil, body.dataset.timezone);
            show(text, j.status);
            setTimeout(poll, 1000);
          }
        }).catch(function (e) { show("Lost track of the job: " + e.message, "failed"); btn.disabled = false; });
      }
      poll();
    }).catch(function (e) {
      show((e.status === 409 ? "A backfill of this plant is already running." : "Could not start the backfill: " + e.message), "failed");
      btn.disabled = false;
    });
  }

  function workOrderPage() {
    var id = body.dataset.workOrderId;
    api("/api/work-orders/" + id + "?days=31").then(function (w) {
      fillCards(w.summary, null);
      var members = document.getElementById("members");
      members.replaceChildren();
      w.plants.forEach(function (p) {
        var s = p.summary || {};
        var rows = [["Today", "daily_energy_kwh", 1, "kWh"], ["This month", "monthly_energy_mwh", 3, "MWh"],
          ["This year", "yearly_energy_mwh", 3, "MWh"], ["Lifetime", "total_energy_mwh", 3, "MWh"],
          ["Current power", "current_power_kw", 1, "kW"]];
        var dl = el("dl");
        rows.forEach(function (r) {
          dl.appendChild(el("dt", { text: r[0] }));
          dl.appendChild(el("dd", { "data-field": r[1], "data-value": s[r[1]] === undefined ? "" : s[r[1]],
            text: fmt(s[r[1]], r[2]) + " " + r[3] }));
        });
        if (isPriced(p.summary)) {
          [["Cost today", "daily"], ["Cost this month", "monthly"], ["Cost this year", "yearly"],
           ["Cost, lifetime", "total"]].forEach(function (r) {
            var v = s[r[1] + "_cost"], note = costNote((s.cost_quality || {})[r[1]]);
            dl.appendChild(el("dt", { text: r[0] }));
            dl.appendChild(el("dd", { "data-field": r[1] + "_cost", "data-value": v === null ? "" : v,
              text: (v === null ? "–" : costText(v, s.currency)) + (note ? " (" + note + ")" : "") }));
          });
        }
        var flags = estimateFlags(p.summary && p.summary.quality);
        members.appendChild(el("article", { "class": "member", "data-testid": "member", "data-plant-id": p.id }, [
          el("a", { "class": "plant-name", href: "/plants/" + p.id }, [healthDot(p.health), p.name]),
          el("div", { "class": "meta", text: p.vendor + " · last update " + fmtTime(s.last_update_time, p.timezone) }),
          flags.length ? el("span", { "class": "badge badge-warn", text: "estimated: " + flags.join(", ") }) : null,
          dl
        ]));
      });
      var last = document.getElementById("last-update");
      if (last) last.textContent = w.summary && w.summary.last_update_time ?
        "Last update: " + fmtUtc(w.summary.last_update_time) + " UTC" : "No data yet.";
      setStatus(w.plants.length + " member plants");
      var div = document.getElementById("chart-daily");
      drawDailyBars(div, w.dailyBars || [], "kWh", w.timezone);  // days of the work order's own zone
    }).catch(function (e) {
      setStatus("Could not load the work order: " + e.message, true);
      chartState(document.getElementById("chart-daily"), "error", "Could not load this chart.");
    });
  }

  function syncLogsPage() {
    var params = new URLSearchParams();
    if (body.dataset.filterPlant) params.set("plant_id", body.dataset.filterPlant);
    if (body.dataset.filterStatus) params.set("status", body.dataset.filterStatus);
    params.set("limit", body.dataset.filterLimit || "100");
    var names = {};
    document.querySelectorAll("[data-testid=filter-plant] option").forEach(function (o) { if (o.value) names[o.value] = o.textContent; });
    var tbody = document.getElementById("sync-body");
    api("/api/sync-logs?" + params.toString()).then(function (data) {
      tbody.replaceChildren();
      data.logs.forEach(function (l) {
        var m = l.metadata || {};
        var detail = [];
        if (m.job) detail.push(m.job);
        if (m.method || m.path) detail.push((m.method || "") + " " + (m.path || "") + (m.http_status ? " → " + m.http_status : ""));
        if (m.attempt && m.attempt > 1) detail.push("attempt " + m.attempt);
        var plant = l.plant_id === null || l.plant_id === undefined ? "–" : (names[l.plant_id] || "plant " + l.plant_id);
        tbody.appendChild(el("tr", { "data-testid": "sync-row", "data-status": l.status, "data-plant-id": l.plant_id }, [
          el("td", { "data-label": "Started (UTC)", text: fmtUtc(l.started_at) }),
          el("td", { "data-label": "Plant", text: plant }),
          el("td", { "data-label": "Type", text: l.sync_type }),
          el("td", { "data-label": "Status" }, [el("span", { "class": "pill pill-" + l.status, text: l.status })]),
          el("td", { "class": "num", "data-label": "Duration",
            text: l.duration_ms === null || l.duration_ms === undefined ? "–" : fmt(l.duration_ms, 0) + " ms" }),
          el("td", { "class": "num", "data-label": "Records", text: fmt(l.records_processed, 0) }),
          el("td", { "class": l.error_message ? "err" : "", "data-label": l.error_message ? "Error" : "Detail",
            text: l.error_message || detail.join(" · ") || "–" })
        ]));
      });
      setStatus(data.logs.length ? data.logs.length + " rows, newest first" : "No sync log rows match these filters.");
    }).catch(function (e) { setStatus("Could not load the sync logs: " + e.message, true); });
  }

  function jobProgress(j) {
    var p = j.progress || {}, r = j.result || {};
    if (j.status === "failed") return j.error || "failed";
    if (j.status === "succeeded") {
      var n = r.recordsSynced !== undefined ? r.recordsSynced : (r.totalRecords !== undefined ? r.totalRecords :
        (r.records !== undefined ? r.records : p.records));
      return n !== undefined ? "Done: " + fmt(n, 0) + " records" + (r.duration ? " in " + r.duration : "") : "Done";
    }
    if (p.totalChunks) return "chunk " + (p.chunk || 0) + "/" + p.totalChunks + " · " + fmt(p.records || 0, 0) + " records";
    // every "X_done" of "X" it reports (a sync's plants), as pages.progress_text puts an engine job's
    var done = Object.keys(p).filter(function (k) { return /_done$/.test(k) && p[k.slice(0, -5)] !== undefined; })
      .map(function (k) { return k.slice(0, -5) + " " + p[k] + "/" + p[k.slice(0, -5)]; });
    return done.length ? done.join(" · ") : j.status;
  }

  function jobsPage() {
    var tbody = document.getElementById("jobs-body");
    api("/api/jobs?limit=100").then(function (data) {
      tbody.replaceChildren();
      data.jobs.forEach(function (j) {
        var plant = (j.params || {}).plant_id;
        tbody.appendChild(el("tr", { "data-testid": "job-row", "data-status": j.status, "data-job-id": j.id,
                                     "data-kind": j.kind, "data-plant-id": plant === undefined ? "" : plant }, [
          el("td", { "data-label": "Created (UTC)", text: fmtUtc(j.createdAt) }),
          el("td", { "data-label": "Kind", text: j.kind }),
          el("td", { "data-label": "Plant" }, plant === undefined ? ["–"] : [el("a", { href: "/plants/" + plant, text: String(plant) })]),
          el("td", { "data-label": "Status" }, [el("span", { "class": "pill pill-job-" + j.status, text: j.status })]),
          el("td", { "class": j.status === "failed" ? "err" : "", "data-label": "Progress / result", text: jobProgress(j) }),
          el("td", { "data-label": "Updated (UTC)", text: fmtUtc(j.updatedAt) })
        ]));
      });
      setStatus(data.jobs.length ? data.jobs.length + (data.jobs.length === 1 ? " job" : " jobs") + ", newest first" : "No jobs yet: a backfill started from a plant page appears here.");
    }).catch(function (e) { setStatus("Could not load the jobs: " + e.message, true); });
  }

  var pages = { plants: plantsPage, plant: plantPage, "work-order": workOrderPage, "sync-logs": syncLogsPage,
                jobs: jobsPage };
  var init = pages[body.dataset.page];
  if (init) init();
})();

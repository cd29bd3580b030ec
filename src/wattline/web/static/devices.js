/* Wattline device pages: the devices list and one device's page, from /api/power-analytics/devices. */
(function () {
  "use strict";

  var body = document.body;
  var API = "/api/power-analytics/devices";

  var W = window.Wattline, el = W.el, setStatus = W.setStatus, api = W.api;

  function fmtTime(iso, tz) {
    if (!iso) return "never";
    return new Intl.DateTimeFormat("en-GB", { timeZone: tz || "UTC", year: "numeric", month: "short", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" }).format(new Date(iso));
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "ongoing";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + sec + " s";
  }

  function stateText(online) { return online ? "online" : "offline"; }

  function deviceUrl(d) {
    return "/devices/" + encodeURIComponent(d.esp32_name) + "/" + encodeURIComponent(d.device_id);
  }

  // ------------------------------------------------------------------ the list

  function loadList() {
    api(API).then(function (data) {
      var tbody = document.getElementById("devices-body");
      tbody.textContent = "";
      data.devices.forEach(function (d) {
        tbody.appendChild(el("tr", { "data-testid": "device-row", "data-state": stateText(d.online) }, [
          el("td", {}, [el("a", { href: deviceUrl(d), text: d.esp32_name + " / " + d.device_id })]),
          el("td", { text: d.classroom }),
          el("td", {}, [el("span", { class: "pill " + (d.online ? "pill-success" : "pill-error"), text: stateText(d.online) })]),
          el("td", { text: fmtTime(d.last_seen) }),
          el("td", { text: d.firmware_ver || "–" }),
          el("td", { class: "num", text: d.wifi_rssi === null ? "–" : String(d.wifi_rssi) })
        ]));
      });
      document.getElementById("devices-counts").textContent = data.online + " online, " + data.offline + " offline";
      setStatus(data.devices.length ? "" : "No devices registered yet.");
    }).catch(function (e) { setStatus("Could not load the devices: " + e.message, true); });
  }

  // ------------------------------------------------------------------ one device

  function drawDays(div, days) {
    var measured = days.filter(function (d) { return d.energy_kwh !== null; });
    var estimated = measured.filter(function (d) { return d.estimated_kwh; }).length;
    div.dataset.bars = String(measured.length);
    var badge = document.querySelector("[data-testid=estimated-badge]");
    if (estimated) { badge.textContent = estimated + " day(s) partly estimated"; badge.hidden = false; }
    if (!window.Plotly) { div.dataset.state = "ready"; return; }
    var trace = { type: "bar", name: "kWh", x: days.map(function (d) { return d.date; }),
      y: days.map(function (d) { return d.energy_kwh; }), hovertemplate: "%{x}: %{y:.3f} kWh<extra></extra>" };
    var lay = { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { type: "category", title: "local day" },
      yaxis: { title: "kWh", rangemode: "tozero" }, height: 300 };
    window.Plotly.react(div, [trace], lay, { displaylogo: false, responsive: true })
      .then(function () { div.dataset.state = "ready"; });
  }

  function loadDevice() {
    var tz = body.dataset.timezone;
    var url = API + "/" + encodeURIComponent(body.dataset.esp32) + "/" + encodeURIComponent(body.dataset.device);
    api(url).then(function (d) {
      var s = d.status;
      var dot = document.getElementById("state-dot");
      dot.className = "dot " + (s.online ? "dot-green" : "dot-red");
      dot.setAttribute("aria-label", stateText(s.online));
      document.querySelector("[data-testid=device-state]").textContent = stateText(s.online);
      document.querySelector("[data-testid=last-seen]").textContent = fmtTime(s.last_seen, tz);
      document.querySelector("[data-testid=firmware]").textContent = s.firmware_ver || "–";
      document.querySelector("[data-testid=rssi]").textContent = s.wifi_rssi === null ? "–" : String(s.wifi_rssi);
      document.querySelector("[data-testid=energy-total]").textContent = d.energy_kwh.toFixed(3);
      var tbody = document.getElementById("spells-body");
      tbody.textContent = "";
      d.offline_spells.slice().reverse().forEach(function (sp) {
        tbody.appendChild(el("tr", { "data-testid": "spell-row" }, [
          el("td", { text: fmtTime(sp.start, tz) }), el("td", { text: sp.end ? fmtTime(sp.end, tz) : "still offline" }),
          el("td", { class: "num", text: fmtDuration(sp.duration_s) })]));
      });
      if (!d.offline_spells.length) tbody.appendChild(el("tr", {}, [el("td", { colspan: "3", text: "No offline spell recorded." })]));
      var hist = document.getElementById("history");
      hist.textContent = "";
      d.history.slice().reverse().forEach(function (e) {
        hist.appendChild(el("li", { "data-testid": "history-item", text: fmtTime(e.ts, tz) + " · " + e.status }));
      });
      drawDays(document.getElementById("chart-device-daily"), d.days);
      setStatus("");
    }).catch(function (e) { setStatus("Could not load the device: " + e.message, true); });
  }

  function start() {
    if (body.dataset.page === "devices") loadList();
    else if (body.dataset.page === "device") loadDevice();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

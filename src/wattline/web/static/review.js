/* The review page: list review items, resolve them, start a recalculation and poll its job. */
(function () {
  "use strict";

  var root = document.getElementById("review-root");
  if (!root) return;
  var isAdmin = root.dataset.admin === "yes";

  var W = window.Wattline, el = W.el, status = W.status, api = W.api;

  function post(url, body) {
    return api(url, { method: "POST", body: JSON.stringify(body),
      headers: { Accept: "application/json", "Content-Type": "application/json" } });
  }

  function summary(details) {
    var d = Object.assign({}, details || {});
    delete d.listed;
    return Object.keys(d).map(function (k) { return k + ": " + d[k]; }).join(", ");
  }

  function load() {
    var q = new URLSearchParams();
    ["status", "kind", "classroom"].forEach(function (name) {
      var v = document.getElementById("f-" + name).value.trim();
      if (v) q.set(name, v);
    });
    status("status", "Loading…");
    return api("/api/power-analytics/review-items?" + q.toString()).then(function (data) {
      var body = document.getElementById("review-body");
      body.textContent = "";
      data.items.forEach(function (it) {
        var action = null;
        if (isAdmin && it.status === "open") {
          action = el("button", { class: "btn", type: "button", "data-testid": "resolve-" + it.id, text: "Resolve" });
          action.addEventListener("click", function () { resolve(it); });
        }
        var device = it.device_id ? it.esp32_name + "/" + it.device_id : (it.esp32_name || "");
        body.appendChild(el("tr", { "data-testid": "item-" + it.id, "data-kind": it.kind, "data-status": it.status }, [
          el("td", { text: String(it.id) }), el("td", { text: it.kind }), el("td", { text: device }),
          el("td", { text: it.classroom || "" }), el("td", { text: it.period_start + " – " + it.period_end }),
          el("td", { text: summary(it.details) }),
          el("td", { text: it.status + (it.resolved_by ? " (" + it.resolved_by + (it.resolution ? ": " + it.resolution : "") + ")" : "") }),
          el("td", {}, [action])]));
      });
      status("status", data.items.length + " item" + (data.items.length === 1 ? "" : "s"));
    }).catch(function (e) { status("status", "Could not load the review items: " + e.message, true); });
  }

  function resolve(it) {
    var note = window.prompt("Why is item " + it.id + " (" + it.kind + ") resolved?");
    if (!note) return;
    post("/api/power-analytics/review-items/" + it.id + "/resolve", { note: note })
      .then(load).catch(function (e) { status("status", "Could not resolve item " + it.id + ": " + e.message, true); });
  }

  function poll(url, button) {
    return api(url).then(function (job) {
      var p = job.progress || {};
      var text = "Job " + job.status + (p.days ? ": day " + p.days_done + " of " + p.days : "");
      if (job.status === "succeeded" && job.result) {
        var r = job.result;
        text += " — " + r.devices_checked + " device-days checked, " + r.fixed + " fixed, "
          + r.items_opened + " review items opened";
      }
      if (job.status === "failed") text += ": " + job.error;
      status("recalc-status", text, job.status === "failed");
      var el2 = document.querySelector("[data-testid=recalc-status]");
      el2.dataset.state = job.status;
      if (job.status === "queued" || job.status === "running") {
        return new Promise(function (res) { setTimeout(res, 500); }).then(function () { return poll(url, button); });
      }
      button.disabled = false;
      return load();
    });
  }

  document.getElementById("review-filters").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  var form = document.getElementById("recalc-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      status("recalc-status", "Starting…");
      post("/api/power-analytics/recalculate", {
        classroom: form.classroom.value.trim(), start: form.start.value.trim(), end: form.end.value.trim()
      }).then(function (acc) { return poll(acc.url, button); })
        .catch(function (e) { button.disabled = false; status("recalc-status", "Could not recalculate: " + e.message, true); });
    });
  }
  load();
})();

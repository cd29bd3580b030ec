/* Wattline admin pages: systems, a system's points, poll sessions, users, database
   statistics, from the admin API. The connection test lives in setup.js. */
(function () {
  "use strict";

  var body = document.body;
  var W = window.Wattline, el = W.el, setStatus = W.setStatus, api = W.api, fmt = W.fmt;

  function post(url, payload) {
    return api(url, { method: "POST", body: JSON.stringify(payload || {}),
      headers: { Accept: "application/json", "Content-Type": "application/json" } });
  }

  function text(v) { return v === null || v === undefined || v === "" ? "–" : String(v); }

  function utc(v) {
    if (v === null || v === undefined) return "never";
    if (typeof v === "number") v = new Date(v * 1000).toISOString();
    return String(v).replace("T", " ").replace(/\.\d+/, "").replace(/Z$|\+00:00$/, "");
  }

  function ageText(s) {
    if (s === null || s === undefined) return "never";
    s = Math.max(Math.round(s), 0);
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  // the thresholds are the domain rule's (system_health), given by the page
  function health(freshnessS) {
    if (freshnessS === null || freshnessS === undefined) return "unknown";
    if (freshnessS < +body.dataset.greenBelowS) return "green";
    if (freshnessS <= +body.dataset.yellowUptoS) return "yellow";
    return "red";
  }

  function list(data, key) {
    if (Array.isArray(data)) return data;
    return (data && data[key]) || [];
  }

  // a button that asks once more before it acts (no window.confirm: it blocks the page)
  function confirmButton(label, confirmLabel, act) {
    var b = el("button", { type: "button", "class": "btn", text: label });
    b.addEventListener("click", function () {
      if (b.dataset.armed !== "true") { b.dataset.armed = "true"; b.textContent = confirmLabel; return; }
      b.disabled = true;
      act(b);
    });
    return b;
  }

  // ------------------------------------------------------------------ systems

  function systemsPage() {
    api("/api/admin/systems").then(function (data) {
      var tbody = document.getElementById("admin-systems-body");
      tbody.replaceChildren();
      var systems = list(data, "systems");
      systems.forEach(function (s) {
        var h = health(s.freshnessS);
        var points = Array.isArray(s.points) ? s.points.length : s.points;
        var paused = s.status === "paused";
        var toggle = el("button", { type: "button", "class": "btn", "data-testid": "toggle-status",
          text: paused ? "Resume" : "Pause" });
        toggle.addEventListener("click", function () {
          toggle.disabled = true;
          post("/api/admin/systems/" + s.id + "/settings", { status: paused ? "active" : "paused" })
            .then(systemsPage).catch(function (e) { setStatus("Could not change system " + s.id + ": " + e.message, true); toggle.disabled = false; });
        });
        var del = confirmButton("Delete", "Really delete?", function () {
          post("/api/admin/systems/" + s.id + "/delete", {}).then(systemsPage)
            .catch(function (e) { setStatus("Could not delete system " + s.id + ": " + e.message, true); });
        });
        del.setAttribute("data-testid", "delete-system");
        tbody.appendChild(el("tr", { "data-testid": "admin-system-row", "data-system-id": s.id, "data-health": h,
          "data-status": s.status }, [
          el("td", {}, [el("a", { "class": "plant-name", href: "/systems/" + s.id }, [
            el("span", { "class": "dot dot-" + h, role: "img", "aria-label": "health " + h, "data-testid": "health-dot" }),
            s.displayName]), el("small", { "class": "muted", text: " " + text(s.alias) })]),
          el("td", { "data-label": "Owner", text: text(s.owner) }),
          el("td", { "data-label": "Vendor", text: text(s.vendorType) }),
          el("td", { "data-label": "Site", text: text(s.vendorSiteId) }),
          el("td", { "data-label": "Time zone", text: text(s.timezone) }),
          el("td", { "data-label": "Status" }, [el("span", { "class": "pill pill-status-" + s.status, text: s.status })]),
          el("td", { "data-label": "Last success", title: utc(s.lastSuccessAt), text: ageText(s.freshnessS) }),
          el("td", { "class": "num", "data-label": "Points" }, [el("a", { href: "/admin/systems/" + s.id + "/points",
            "data-testid": "points-link", text: text(points) })]),
          el("td", { "class": "actions" }, [toggle, del])
        ]));
      });
      setStatus(systems.length ? systems.length + " systems" : "No systems yet.");
    }).catch(function (e) { setStatus("Could not load the systems: " + e.message, true); });
  }

  // ------------------------------------------------------------------ points

  function transformText(versions) {
    if (!versions || !versions.length) return "none";
    var last = versions[versions.length - 1], t = last.transform || {};
    var parts = [];
    if (t.sign !== undefined && t.sign !== null) parts.push("sign " + t.sign);
    if (t.scale !== undefined && t.scale !== null) parts.push("× " + t.scale);
    if (t.offset !== undefined && t.offset !== null) parts.push("+ " + t.offset);
    return (parts.join(" ") || "identity") + " from " + utc(last.effectiveFrom) + (versions.length > 1 ? " (" + versions.length + " versions)" : "");
  }

  function pointsPage() {
    var id = body.dataset.systemId;
    var url = "/api/admin/systems/" + encodeURIComponent(id) + "/points";
    var tform = document.getElementById("transform-form");
    tform.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var t = {};
      ["scale", "offset"].forEach(function (k) {
        var v = tform.elements[k].value.trim();
        if (v !== "") t[k] = Number(v);
      });
      if (tform.elements.sign.value) t.sign = Number(tform.elements.sign.value);
      var eff = tform.elements.effectiveFrom.value.trim();
      if (!eff) { W.status("transform-status", "An effective time is needed.", true); return; }
      W.status("transform-status", "Saving…");
      post(url, { key: tform.elements.key.value, transform: t, effectiveFrom: /^\d+$/.test(eff) ? Number(eff) : eff })
        .then(function () { W.status("transform-status", "Added a version of " + tform.elements.key.value + "."); load(); })
        .catch(function (e) { W.status("transform-status", "Could not add it: " + e.message, true); });
    });
    load();

    function load() {
    api(url).then(function (data) {
      var tbody = document.getElementById("admin-points-body");
      tbody.replaceChildren();
      var points = list(data, "points");
      points.forEach(function (p) {
        var order = p.displayOrder !== undefined ? p.displayOrder : p.display_order;
        var label = el("input", { type: "text", value: p.label || "", "aria-label": "label of " + p.key, "data-testid": "point-label" });
        var ord = el("input", { type: "number", value: String(order === undefined ? 0 : order), "aria-label": "order of " + p.key });
        var visible = el("input", { type: "checkbox", "aria-label": "visible " + p.key, "data-testid": "point-visible" });
        visible.checked = p.visible !== false;
        var active = el("input", { type: "checkbox", "aria-label": "active " + p.key });
        active.checked = p.active !== false;
        var save = el("button", { type: "button", "class": "btn", "data-testid": "save-point", text: "Save" });
        save.addEventListener("click", function () {
          save.disabled = true;
          post(url, { key: p.key, label: label.value.trim() || undefined, displayOrder: +ord.value, visible: visible.checked,
            active: active.checked }).then(function () { setStatus("Saved " + p.key + "."); save.disabled = false; })
            .catch(function (e) { setStatus("Could not save " + p.key + ": " + e.message, true); save.disabled = false; });
        });
        tbody.appendChild(el("tr", { "data-testid": "admin-point-row", "data-key": p.key }, [
          el("td", {}, [el("code", { text: p.key })]), el("td", {}, [label]),
          el("td", { text: text(p.metricType || p.metric_type) }), el("td", { text: text(p.unit) }),
          el("td", { text: text(p.subsystem) }), el("td", { "class": "num" }, [ord]),
          el("td", {}, [visible]), el("td", {}, [active]),
          el("td", { "data-testid": "point-transform", text: transformText(p.transforms) }), el("td", {}, [save])
        ]));
      });
      var keySelect = document.querySelector("[data-testid=transform-key]");
      keySelect.replaceChildren();
      points.forEach(function (p) { keySelect.appendChild(el("option", { value: p.key, text: p.key })); });
      if (!/^Saved /.test(document.querySelector("[data-testid=status]").textContent)) {
        setStatus(points.length ? points.length + " points" : "This system has no points.");
      }
    }).catch(function (e) { setStatus("Could not load the points: " + e.message, true); });
    }
  }

  // ------------------------------------------------------------------ sessions

  function sessionsPage() {
    var form = document.getElementById("session-filters");
    function load() {
      var params = new URLSearchParams();
      ["systemId", "success", "since"].forEach(function (k) {
        var v = form.elements[k].value.trim();
        if (v) params.set(k, v);
      });
      params.set("limit", "200");
      api("/api/admin/sessions?" + params.toString()).then(function (data) {
        var stats = document.getElementById("vendor-stats-body");
        stats.replaceChildren();
        (data.byVendor || []).forEach(function (v) {
          stats.appendChild(el("tr", { "data-testid": "vendor-stats-row", "data-vendor": v.vendorType }, [
            el("td", { text: v.vendorType }), el("td", { "class": "num", text: String(v.sessions) }),
            el("td", { "class": "num", text: fmt(100 * v.successRate, 1) + " %" }),
            el("td", { "class": "num", text: fmt(v.meanDurationMs, 0) })]));
        });
        var tbody = document.getElementById("sessions-body");
        tbody.replaceChildren();
        (data.sessions || []).forEach(function (s) {
          tbody.appendChild(el("tr", { "data-testid": "session-row", "data-success": String(s.success),
            "data-system-id": s.systemId }, [
            el("td", { "data-label": "Started", text: utc(s.startedAt) }),
            el("td", { "data-label": "System" }, [el("a", { href: "/systems/" + s.systemId, text: String(s.systemId) })]),
            el("td", { "data-label": "Vendor", text: s.vendorType }),
            el("td", { "data-label": "Cause", text: s.cause }),
            el("td", { "data-label": "Outcome" }, [el("span", { "class": "pill " + (s.success ? "pill-success" : "pill-error"),
              text: s.success ? "success" : "failure" })]),
            el("td", { "class": "num", "data-label": "Duration", text: String(s.durationMs) }),
            el("td", { "class": "num", "data-label": "Readings", text: String(s.numReadings) }),
            el("td", { "class": "err", "data-label": "Error", text: s.error ? (s.vendorErrorCode ? s.vendorErrorCode + ": " : "") + s.error : "" })
          ]));
        });
        setStatus((data.sessions || []).length ? (data.sessions.length + " sessions") : "No sessions match.");
      }).catch(function (e) { setStatus("Could not load the sessions: " + e.message, true); });
    }
    form.addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    load();
  }

  // ------------------------------------------------------------------ users

  var ROLES = ["viewer", "user", "admin"];  // what POST /api/admin/users/{username}/role gives

  function usersPage() {
    function load() {
      api("/api/admin/users").then(function (data) {
        var tbody = document.getElementById("users-body");
        tbody.replaceChildren();
        var users = list(data, "users");
        users.forEach(function (u) {
          var systems = u.systems !== undefined ? u.systems : u.systemCount;
          var role = el("select", { "aria-label": "role of " + u.username, "data-testid": "user-role" });
          ROLES.concat(ROLES.indexOf(u.role) < 0 ? [u.role] : []).forEach(function (r) {
            var o = el("option", { value: r, text: r });
            o.selected = r === u.role;
            role.appendChild(o);
          });
          role.disabled = ROLES.indexOf(u.role) < 0;  // a superadmin is changed with the CLI
          role.addEventListener("change", function () {
            role.disabled = true;
            post("/api/admin/users/" + encodeURIComponent(u.username) + "/role", { role: role.value }).then(function () {
              setStatus(u.username + " is now " + role.value + ".");
              load();
            }).catch(function (e) { setStatus("Could not change the role: " + e.message, true); load(); });
          });
          tbody.appendChild(el("tr", { "data-testid": "user-row", "data-username": u.username, "data-role": u.role }, [
            el("td", { "data-label": "Username", text: u.username }), el("td", { "data-label": "Role" }, [role]),
            el("td", { "data-label": "Organization", text: text(u.organization || u.organizationId) }),
            el("td", { "class": "num", "data-label": "Systems", text: text(Array.isArray(systems) ? systems.length : systems) }),
            el("td", { "data-label": "Created", text: u.createdAt ? utc(u.createdAt) : "–" })]));
        });
        if (!/ is now /.test(document.querySelector("[data-testid=status]").textContent)) setStatus(users.length + " users");
      }).catch(function (e) { setStatus("Could not load the users: " + e.message, true); });
    }
    var form = document.getElementById("add-user");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var payload = { username: form.elements.username.value.trim(), password: form.elements.password.value,
        role: form.elements.role.value };
      W.status("add-status", "Adding…");
      post("/api/admin/users", payload).then(function () {
        W.status("add-status", "Added " + payload.username + ".");
        form.reset();
        load();
      }).catch(function (e) { W.status("add-status", "Could not add the user: " + e.message, true); });
    });
    load();
  }

  // ------------------------------------------------------------------ database

  function databasePage() {
    api("/api/admin/database").then(function (data) {
      var runs = document.getElementById("runs-body");
      runs.replaceChildren();
      var last = data.lastRuns || {};
      ["daily", "cleanup"].forEach(function (k) {
        var r = last[k];
        var summary = r ? Object.keys(r).map(function (f) { return f + ": " + (typeof r[f] === "object" ? JSON.stringify(r[f]) : r[f]); }).join(" · ")
          : "never";
        runs.appendChild(el("tr", { "data-testid": "run-row", "data-job": k }, [el("td", { text: k }), el("td", { text: summary })]));
      });
      var tbody = document.getElementById("tables-body");
      tbody.replaceChildren();
      (data.tables || []).forEach(function (t) {
        tbody.appendChild(el("tr", { "data-testid": "table-row", "data-database": t.database, "data-table": t.name,
          "data-rows": String(t.rows) }, [
          el("td", { text: t.database }), el("td", {}, [el("code", { text: t.name })]),
          el("td", { "class": "num", text: fmt(t.rows, 0) })]));
      });
      setStatus((data.tables || []).length + " tables");
    }).catch(function (e) { setStatus("Could not load the statistics: " + e.message, true); });
  }

  var PAGES = { "admin-systems": systemsPage, "admin-points": pointsPage, "admin-sessions": sessionsPage,
    "admin-users": usersPage, "admin-database": databasePage };

  function start() {
    var f = PAGES[body.dataset.page];
    if (f) f();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

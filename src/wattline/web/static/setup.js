/* The setup wizard (/setup: vendor -> credentials -> test connection -> points preview ->
   save, POST /api/test-connection then POST /api/setup; for an OAuth vendor (Enphase)
   vendor -> credentials -> save, POST /api/setup/enphase, then the browser goes through
   /api/auth/enphase/auth, the vendor and the callback, and comes back to /setup?saved=ID) and the admin connection test
   (/admin/connection-test). Credentials stay in the form: never logged, never stored here. */
(function () {
  "use strict";

  var W = window.Wattline, el = W.el, api = W.api, fmt = W.fmt;
  var STEPS = ["vendor", "credentials", "test", "preview", "save"];

  function post(url, payload) {
    return api(url, { method: "POST", body: JSON.stringify(payload),
      headers: { Accept: "application/json", "Content-Type": "application/json" } });
  }

  function vendorFields(form, vendor) {
    form.querySelectorAll(".vendor-fields").forEach(function (fs) { fs.hidden = fs.dataset.vendor !== vendor; });
  }

  // {vendorType, siteId?, credentials} from the form (the server knows where each vendor is); missing required fields listed
  function connectionBody(form) {
    var vendor = form.elements.vendorType.value;
    var creds = {}, missing = [];
    var fs = form.querySelector(".vendor-fields[data-vendor='" + vendor + "']");
    if (fs) {
      fs.querySelectorAll("input").forEach(function (input) {
        var key = input.name.replace(/^cred\./, "");
        if (input.value !== "") creds[key] = input.value;
        else if (input.dataset.required) missing.push(key);
      });
    }
    var body = { vendorType: vendor, credentials: creds };
    var site = form.elements.siteId && form.elements.siteId.value.trim();
    if (site) body.siteId = site;
    return { body: body, missing: missing };
  }

  function showInfo(dl, info) {
    dl.replaceChildren();
    Object.keys(info || {}).forEach(function (k) {
      var v = info[k];
      dl.appendChild(el("dt", { text: k }));
      dl.appendChild(el("dd", { "data-key": k, text: v === null || v === undefined ? "–" :
        (typeof v === "object" ? JSON.stringify(v) : String(v)) }));
    });
  }

  function fillPreview(tbody, latest) {
    tbody.replaceChildren();
    var keys = Object.keys(latest || {}).sort();
    keys.forEach(function (k) {
      var v = latest[k];
      var value = v !== null && typeof v === "object" ? v.value : v;
      var unit = v !== null && typeof v === "object" && v.unit ? " " + v.unit : "";
      tbody.appendChild(el("tr", { "data-testid": "preview-row", "data-key": k, "data-value": String(value) }, [
        el("td", { text: k }),
        el("td", { "class": "num", text: (typeof value === "number" ? fmt(value, Math.abs(value) >= 100 ? 0 : 2) : String(value)) + unit })
      ]));
    });
    if (!keys.length) tbody.appendChild(el("tr", {}, [el("td", { colspan: "2", text: "The vendor reported no values." })]));
    return keys.length;
  }

  function testConnection(form, statusId, onResult) {
    var req = connectionBody(form);
    if (!req.body.vendorType) { W.status(statusId, "Choose a vendor first.", true); return Promise.resolve(null); }
    if (req.missing.length) { W.status(statusId, "Missing: " + req.missing.join(", "), true); return Promise.resolve(null); }
    W.status(statusId, "Testing…");
    return post("/api/test-connection", req.body).then(function (res) {
      if (res && res.success) W.status(statusId, "Connected.");
      else W.status(statusId, "The vendor refused: " + ((res && res.error) || "unknown error"), true);
      onResult(res);
      return res;
    }).catch(function (e) {
      W.status(statusId, "The test failed: " + e.message, true);
      onResult(null);
      return null;
    });
  }

  // ------------------------------------------------------------------ the wizard

  var OAUTH_ERRORS = {
    authorization_denied: "You did not authorize Wattline at the vendor; nothing was saved.",
    grant_refused: "The vendor refused the authorization; nothing was saved.",
    vendor_unavailable: "The vendor did not answer; nothing was saved.",
    connection_failed: "The connection test with the new tokens failed; nothing was saved.",
    conflict: "You already have this site or alias; nothing was saved."
  };

  function savedLink(id) {
    var status = document.querySelector("[data-testid=save-status]");
    status.replaceChildren("Saved. ", id ? el("a", { href: "/systems/" + id, "data-testid": "saved-link",
      text: "Open the system" }) : el("a", { href: "/systems", text: "Your systems" }));
    status.classList.remove("error");
  }

  function wizard() {
    var form = document.getElementById("setup-form");
    var tested = null;

    function oauth() {  // the chosen vendor's tokens come from an authorization at the vendor
      var fs = form.querySelector(".vendor-fields[data-vendor='" + form.elements.vendorType.value + "']");
      return !!(fs && fs.dataset.oauth === "true");
    }

    function go(step) {
      var at = STEPS.indexOf(step);
      form.querySelectorAll(".wizard-step").forEach(function (s) { s.hidden = s.dataset.step !== step; });
      document.querySelectorAll(".wizard-steps li").forEach(function (li, i) {
        if (li.dataset.step === step) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
        li.classList.toggle("done", i < at);
      });
      form.dataset.step = step;
      form.querySelector("[data-testid=save]").hidden = oauth();
      form.querySelector("[data-testid=authorize]").hidden = !oauth();
      W.setStatus("");
    }

    form.elements.vendorType.addEventListener("change", function () {
      vendorFields(form, form.elements.vendorType.value);
      tested = null;
      form.querySelector("[data-testid=next-test]").disabled = true;
    });
    form.querySelectorAll("[data-back]").forEach(function (b) {
      b.addEventListener("click", function () { go(b.dataset.back === "preview" && oauth() ? "credentials" : b.dataset.back); });
    });
    form.querySelectorAll("[data-next]").forEach(function (b) {
      b.addEventListener("click", function () {
        var next = b.dataset.next;
        if (next === "credentials" && !form.elements.vendorType.value) { W.setStatus("Choose a vendor.", true); return; }
        if (next === "test") {
          var req = connectionBody(form);
          if (req.missing.length) { W.setStatus("Missing: " + req.missing.join(", "), true); return; }
        }
        if (next === "test" && oauth()) next = "save";  // tested by the callback, with the tokens
        if (next === "save" && !form.elements.displayName.value) {
          form.elements.displayName.value = form.elements.vendorType.value + " " + (form.elements.siteId.value || "");
        }
        go(next);
      });
    });
    document.getElementById("test-btn").addEventListener("click", function () {
      var btn = this;
      btn.disabled = true;
      testConnection(form, "test-status", function (res) {
        tested = res && res.success ? res : null;
        showInfo(form.querySelector("[data-testid=system-info]"), res && res.systemInfo);
        var n = fillPreview(document.getElementById("preview-body"), res && res.latest);
        form.dataset.previewCount = String(n);
        form.querySelector("[data-testid=next-test]").disabled = !tested;
      }).then(function () { btn.disabled = false; });
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!tested && !oauth()) { W.status("save-status", "Test the connection first.", true); return; }
      var req = connectionBody(form).body;
      req.displayName = form.elements.displayName.value.trim();
      var alias = form.elements.alias.value.trim();
      if (alias) req.alias = alias;
      req.timezone = form.elements.timezone.value.trim() || "UTC";
      if (!req.siteId) { W.status("save-status", "A site id is needed to save.", true); return; }
      var save = form.querySelector(oauth() ? "[data-testid=authorize]" : "[data-testid=save]");
      save.disabled = true;
      if (oauth()) {
        W.status("save-status", "Sending you to the vendor…");
        post("/api/setup/enphase", req).then(function (res) {
          window.location.assign(res.authorizeUrl);  // comes back to /setup?saved=ID
        }).catch(function (e) {
          W.status("save-status", "Could not start the authorization: " + e.message, true);
          save.disabled = false;
        });
        return;
      }
      W.status("save-status", "Saving…");
      post("/api/setup", req).then(function (res) {
        var id = res && (res.systemId || (res.system && res.system.id) || res.id);
        form.dataset.savedId = id ? String(id) : "";
        savedLink(id);
      }).catch(function (e) {
        W.status("save-status", "Could not save: " + e.message, true);
        save.disabled = false;
      });
    });
    var back = new URLSearchParams(window.location.search);  // the end of an OAuth setup
    if (back.get("saved")) {
      go("save");
      form.dataset.savedId = back.get("saved");
      savedLink(back.get("saved"));
      form.querySelector("[data-testid=save]").disabled = true;
    } else if (back.get("enphaseError")) {
      go("vendor");
      W.setStatus(OAUTH_ERRORS[back.get("enphaseError")] || "The authorization failed; nothing was saved.", true);
    } else {
      go("vendor");
    }
  }

  // ------------------------------------------------------------------ the admin connection test

  function connectionTest() {
    var form = document.getElementById("connection-form");
    form.elements.vendorType.addEventListener("change", function () { vendorFields(form, form.elements.vendorType.value); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = form.querySelector("[type=submit]");
      btn.disabled = true;
      testConnection(form, "test-status", function (res) {
        var box = document.querySelector("[data-testid=test-result]");
        box.dataset.success = String(!!(res && res.success));
        showInfo(document.querySelector("[data-testid=system-info]"), res && res.systemInfo);
        fillPreview(document.getElementById("preview-body"), res && res.latest);
      }).then(function () { btn.disabled = false; });
    });
  }

  function start() {
    if (document.body.dataset.page === "setup") wizard();
    else if (document.body.dataset.page === "admin-connection-test") connectionTest();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

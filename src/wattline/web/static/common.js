/* Helpers shared by every dashboard page (window.Wattline; app.js builds on them):
   build elements, show a status line, fetch the JSON API with the session cookie. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  // the status line [data-testid=<testid>]; an error is styled as one
  function status(testid, text, isError) {
    var s = document.querySelector("[data-testid=" + testid + "]");
    if (!s) return;
    s.textContent = text || "";
    s.classList.toggle("error", !!isError);
  }

  function api(url, options) {
    var opts = Object.assign({ credentials: "same-origin" }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    var method = (opts.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") {
      // the session's CSRF token (security/csrf.py): a state-changing call without it is refused
      var meta = document.querySelector('meta[name="csrf-token"]');
      if (meta) opts.headers["X-CSRF-Token"] = meta.getAttribute("content");
    }
    return fetch(url, opts).then(function (r) {
      if (r.status === 401) {  // the session expired: sign in again and come back
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        throw new Error("signed out");
      }
      return r.json().catch(function () { return null; }).then(function (data) {
        if (!r.ok) {
          var err = new Error((data && data.error) || ("HTTP " + r.status));
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }

  var formats = {};
  function fmt(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    var f = formats[digits] || (formats[digits] = new Intl.NumberFormat("en-US",
      { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    return f.format(v);
  }

  window.Wattline = {
    el: el, status: status, api: api, fmt: fmt,
    setStatus: function (text, isError) { status("status", text, isError); },
  };
})();

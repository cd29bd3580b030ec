/* Energy-flow Sankey as inline SVG (window.WattlineSankey.draw), from /api/data/flows:
   sources on the left (solar, battery, grid), sinks on the right (load, battery, grid),
   one band per flow, its width proportional to its value; a table below lists every
   flow (zeros too) with the API's value, so the numbers can be read and checked. */
(function () {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";
  var SOURCES = ["solar", "battery", "grid"], SINKS = ["load", "battery", "grid"];
  var COLOURS = { solar: "#f59e0b", battery: "#16a34a", grid: "#6b7280", load: "#2563eb" };
  var NAMES = { solar: "Solar", battery: "Battery", grid: "Grid", load: "Load" };
  var W = 600, H = 260, NODE_W = 14, PAD = 14, LEFT = 130, RIGHT = W - 130 - NODE_W;

  function svg(tag, attrs, text) {
    var n = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text !== undefined) n.textContent = text;
    return n;
  }

  var formats = {};
  function number(v, digits) {
    var f = formats[digits] || (formats[digits] = new Intl.NumberFormat("en-US",
      { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    return f.format(v);
  }

  // "1,234 W" / "950 Wh" / "12.35 kWh" (energies of 1 kWh and more in kWh)
  function valueText(v, unit) {
    if (unit === "Wh" && Math.abs(v) >= 1000) return number(v / 1000, 2) + " kWh";
    return number(v, 0) + " " + unit;
  }

  function layoutColumn(names, totals, scale, x, side) {
    var nodes = {}, used = names.filter(function (n) { return totals[n] > 0; });
    var height = used.reduce(function (a, n) { return a + totals[n] * scale; }, 0) + PAD * Math.max(used.length - 1, 0);
    var y = (H - height) / 2;
    used.forEach(function (n) {
      nodes[n] = { x: x, y: y, h: Math.max(totals[n] * scale, 1), next: y, side: side };
      y += totals[n] * scale + PAD;
    });
    return nodes;
  }

  function draw(container, data) {
    var flows = (data && data.flows) || [];
    var unit = (data && data.unit) || "W";
    container.replaceChildren();
    container.dataset.unit = unit;
    container.dataset.flows = String(flows.length);
    if (!flows.length) {
      container.appendChild(Object.assign(document.createElement("p"), {
        className: "empty", textContent: "No energy flow to show: solar, load and grid are not all known." }));
      container.dataset.state = "empty";
      return;
    }
    var out = {}, inn = {}, total = 0;
    flows.forEach(function (f) {
      out[f.from] = (out[f.from] || 0) + f.value;
      inn[f.to] = (inn[f.to] || 0) + f.value;
      total += f.value;
    });
    var sinkTotal = SINKS.reduce(function (a, n) { return a + (inn[n] || 0); }, 0);
    var srcTotal = SOURCES.reduce(function (a, n) { return a + (out[n] || 0); }, 0);
    var room = H - 2 * PAD - 2 * PAD;
    var scale = Math.max(srcTotal, sinkTotal) > 0 ? room / Math.max(srcTotal, sinkTotal) : 0;
    var left = layoutColumn(SOURCES, out, scale, LEFT, "from");
    var right = layoutColumn(SINKS, inn, scale, RIGHT, "to");
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "class": "sankey-svg",
      "aria-label": "Energy flow, " + unit, "data-testid": "sankey-svg" });
    var bands = svg("g", { "class": "sankey-bands" });
    root.appendChild(bands);
    flows.forEach(function (f) {
      if (!(f.value > 0) || !left[f.from] || !right[f.to]) return;
      var a = left[f.from], b = right[f.to], w = f.value * scale;
      var y0 = a.next + w / 2, y1 = b.next + w / 2;
      a.next += w; b.next += w;
      var x0 = a.x + NODE_W, x1 = b.x, mx = (x0 + x1) / 2;
      var path = svg("path", { d: "M" + x0 + "," + y0 + " C" + mx + "," + y0 + " " + mx + "," + y1 + " " + x1 + "," + y1,
        fill: "none", stroke: COLOURS[f.from], "stroke-opacity": "0.45", "stroke-width": String(Math.max(w, 1)),
        "data-testid": "sankey-band", "data-from": f.from, "data-to": f.to, "data-value": String(f.value) });
      path.appendChild(svg("title", {}, NAMES[f.from] + " → " + NAMES[f.to] + ": " + valueText(f.value, unit)));
      bands.appendChild(path);
      if (w >= 12) {
        // at the source end, where a node's bands stack without crossing
        bands.appendChild(svg("text", { x: String(x0 + 6), y: String(y0 + 4), "text-anchor": "start",
          "class": "sankey-band-label" }, "→ " + NAMES[f.to] + " " + valueText(f.value, unit)));
      }
    });
    [[left, out, "end", -6], [right, inn, "start", NODE_W + 6]].forEach(function (col) {
      var nodes = col[0], totals = col[1];
      Object.keys(nodes).forEach(function (n) {
        var node = nodes[n];
        root.appendChild(svg("rect", { x: String(node.x), y: String(node.y), width: String(NODE_W), height: String(node.h),
          fill: COLOURS[n], "data-testid": "sankey-node", "data-node": n, "data-side": node.side,
          "data-value": String(totals[n]) }));
        var label = svg("text", { x: String(node.x + col[3]), y: String(node.y + node.h / 2 + 4), "text-anchor": col[2],
          "class": "sankey-node-label" });
        label.appendChild(svg("tspan", { "font-weight": "600" }, NAMES[n] + " "));
        label.appendChild(svg("tspan", {}, valueText(totals[n], unit)));
        root.appendChild(label);
      });
    });
    container.appendChild(root);

    var table = document.createElement("table");
    table.className = "table sankey-table";
    table.setAttribute("data-testid", "sankey-table");
    var head = table.createTHead().insertRow();
    ["From", "To", "Value"].forEach(function (t, i) {
      var th = document.createElement("th"); th.scope = "col"; th.textContent = t; if (i === 2) th.className = "num";
      head.appendChild(th);
    });
    var body = table.createTBody();
    flows.forEach(function (f) {
      var tr = body.insertRow();
      tr.setAttribute("data-testid", "sankey-flow");
      tr.dataset.from = f.from; tr.dataset.to = f.to; tr.dataset.value = String(f.value);
      tr.insertCell().textContent = NAMES[f.from] || f.from;
      tr.insertCell().textContent = NAMES[f.to] || f.to;
      var td = tr.insertCell(); td.className = "num"; td.textContent = valueText(f.value, unit);
      td.setAttribute("data-testid", "sankey-flow-value");
    });
    container.appendChild(table);
    if (data.imbalance && total > 0 && Math.abs(data.imbalance) > 0.02 * total) {
      var note = document.createElement("p");
      note.className = "badge badge-warn";
      note.setAttribute("data-testid", "sankey-imbalance");
      note.textContent = "inputs do not balance by " + valueText(Math.abs(data.imbalance), unit);
      container.appendChild(note);
    }
    container.dataset.state = "ready";
  }

  window.WattlineSankey = { draw: draw, valueText: valueText };
})();

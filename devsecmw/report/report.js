// The chart of `devsecmw report`, drawn from the page's JSON data block.
// Only SVG elements, attributes and textContent: text from spans never becomes markup.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var box = document.getElementById("chart");
  var legend = document.getElementById("legend");
  var c = data.chart;
  var NS = "http://www.w3.org/2000/svg";
  var colors = ["#2e86de", "#e67e22", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#2c3e50"];

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) {
      e.setAttribute(k, attrs[k]);
    }
    if (parent) {
      parent.appendChild(e);
    }
    return e;
  }

  function label(parent, x, y, anchor, text) {
    var t = el("text", { x: x, y: y, "text-anchor": anchor, "font-size": 11, fill: "#5b6475" }, parent);
    t.textContent = text;
    return t;
  }

  if (!c.series.length) {
    box.textContent = "No attack and no 5xx in these spans.";
    box.setAttribute("data-drawn", "empty");
    return;
  }
  var W = 1000, H = 320, L = 48, R = 48, T = 14, B = 40, n = c.buckets, max = 1;
  c.series.forEach(function (s) {
    s.attacks.concat(s.errors).forEach(function (v) {
      if (v > max) {
        max = v;
      }
    });
  });
  var tick = Math.max(1, Math.ceil(max / 5));
  max = Math.ceil(max / tick) * tick;
  var svg = el("svg", {
    viewBox: "0 0 " + W + " " + H,
    role: "img",
    "aria-label": "attacks and 5xx per route over time",
    "data-drawn": "chart",
  }, box);
  function x(i) {
    return L + (n < 2 ? 0.5 : i / (n - 1)) * (W - L - R);
  }
  function y(v) {
    return T + (1 - v / max) * (H - T - B);
  }
  for (var v = 0; v <= max; v += tick) {
    el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e6ec" }, svg);
    label(svg, L - 6, y(v) + 4, "end", String(v));
  }
  var every = Math.max(1, Math.ceil(n / 8));
  var digits = c.step < 1 ? 23 : 19; // milliseconds when a point is shorter than a second
  for (var i = 0; i < n; i += every) {
    var d = new Date((c.start + i * c.step) * 1000);
    label(svg, x(i), H - B + 16, "middle", d.toISOString().slice(11, digits));
  }
  label(svg, W - R, H - 6, "end", "time (UTC), " + c.step + " s per point");

  c.series.forEach(function (s, k) {
    var col = colors[k % colors.length];
    [["attacks", ""], ["errors", "6 4"]].forEach(function (pair) {
      var what = pair[0] === "attacks" ? " attacks" : " 5xx";
      var vals = s[pair[0]];
      var pts = vals.map(function (v, i) {
        return x(i).toFixed(1) + "," + y(v).toFixed(1);
      }).join(" ");
      var line = el("polyline", {
        points: pts, fill: "none", stroke: col, "stroke-width": 2, "stroke-dasharray": pair[1],
        "data-series": pair[0], "data-route": s.route,
      }, svg);
      el("title", {}, line).textContent = s.route + ":" + what;
      vals.forEach(function (v, i) {
        if (v > 0) {
          var dot = el("circle", { cx: x(i), cy: y(v), r: 3, fill: col }, svg);
          el("title", {}, dot).textContent = s.route + ": " + v + what;
        }
      });
    });
    var item = document.createElement("span");
    item.setAttribute("data-legend", s.route);
    var solid = document.createElement("i");
    solid.style.borderColor = col;
    var dashed = document.createElement("i");
    dashed.className = "dash";
    dashed.style.borderColor = col;
    item.appendChild(solid);
    item.appendChild(dashed);
    item.appendChild(document.createTextNode(s.route));
    legend.appendChild(item);
  });
  var key = document.createElement("span");
  key.className = "muted";
  key.textContent = "solid: attacks, dashed: 5xx";
  legend.appendChild(key);
})();

// fsrace report.html: draws the race timeline of every itemised finding from the embedded data
// (script#fsrace-data: {"windows": [...]}, written by harness/report_html.cpp). No network, no library.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("fsrace-data").textContent);
  var LABEL_W = 250, LANE_H = 20, AXIS_H = 26, PAD_R = 16;

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmtUs(us) {
    var a = Math.abs(us);
    if (a >= 1e6) return (us / 1e6).toFixed(3) + " s";
    if (a >= 1e3) return (us / 1e3).toFixed(a >= 1e5 ? 1 : 3) + " ms";
    return us.toFixed(1) + " µs";
  }
  function niceStep(span, px) {
    var raw = span / Math.max(1, px / 110), p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function Timeline(root, w) {
    this.root = root;
    this.w = w;
    this.full = [w.range_us[0], w.range_us[1]];
    this.view = this.full.slice();
    var bar = document.createElement("div");
    bar.className = "tl-bar";
    var self = this;
    [["−", function () { self.zoom(1.6, null); }], ["+", function () { self.zoom(1 / 1.6, null); }],
     ["read", function () { self.focusRead(); }], ["reset", function () { self.setView(self.full[0], self.full[1]); }]]
      .forEach(function (b) {
        var btn = document.createElement("button");
        btn.textContent = b[0];
        btn.className = "tl-" + (b[0] === "+" ? "zoom-in" : b[0] === "−" ? "zoom-out" : b[0]);
        btn.addEventListener("click", b[1]);
        bar.appendChild(btn);
      });
    var hint = document.createElement("span");
    hint.className = "muted";
    this.zeroLabel = w.origin_label || "read starts";
    hint.textContent = "wheel: zoom · drag: pan · hover: record · time 0 = " + (w.origin_what || "start of the read");
    bar.appendChild(hint);
    this.rangeText = document.createElement("span");
    this.rangeText.className = "range";
    bar.appendChild(this.rangeText);
    root.appendChild(bar);
    var h = AXIS_H + w.lanes.length * LANE_H + 4;
    this.width = Math.max(700, root.clientWidth || 1200);
    this.svg = el("svg", { viewBox: "0 0 " + this.width + " " + h, height: h, "class": "tl-svg" }, root);
    var defs = el("defs", {}, this.svg);
    var mk = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#00c853" }, mk);
    var lanes = el("g", { "class": "lanes" }, this.svg);
    w.lanes.forEach(function (l, i) {
      var y = AXIS_H + i * LANE_H, g = l.group === "kernel" ? " kernel" : "";
      el("rect", { x: 0, y: y, width: self.width, height: LANE_H, "class": "lane-bg" + g + (i % 2 ? " alt" : ""), "data-group": l.group }, lanes);
      var t = el("text", { x: 6, y: y + 14, "class": "lane-label" + g }, lanes);
      t.textContent = l.label.length > 38 ? l.label.slice(0, 37) + "…" : l.label;
      el("title", {}, t).textContent = l.label;
    });
    this.axis = el("g", { "class": "axis" }, this.svg);
    this.zero = el("g", { "class": "zero" }, this.svg);
    this.items = el("g", { "class": "items" }, this.svg);
    this.flows = el("g", { "class": "flows" }, this.svg);
    this.tip = document.createElement("div");
    this.tip.className = "tl-tip";
    root.appendChild(this.tip);
    this.bindInput();
    this.render();
  }
  Timeline.prototype.x = function (t) {
    return LABEL_W + (t - this.view[0]) * (this.width - LABEL_W - PAD_R) / (this.view[1] - this.view[0]);
  };
  Timeline.prototype.t = function (x) {
    return this.view[0] + (x - LABEL_W) * (this.view[1] - this.view[0]) / (this.width - LABEL_W - PAD_R);
  };
  Timeline.prototype.setView = function (a, b) {
    if (b - a < 0.5) { var m = (a + b) / 2; a = m - 0.25; b = m + 0.25; }
    this.view = [a, b];
    this.render();
  };
  Timeline.prototype.zoom = function (f, atX) {
    var c = atX === null ? (this.view[0] + this.view[1]) / 2 : this.t(atX);
    this.setView(c - (c - this.view[0]) * f, c + (this.view[1] - c) * f);
  };
  Timeline.prototype.focusRead = function () {
    var r = this.w.items.filter(function (it) { return it[6] === "read"; })[0];
    if (!r) return;
    var span = Math.max(r[2] * 4, 200);
    this.setView(r[1] - span, r[1] + r[2] + span);
  };
  Timeline.prototype.svgX = function (ev) {
    var b = this.svg.getBoundingClientRect();
    return (ev.clientX - b.left) * this.width / Math.max(1, b.width);
  };
  Timeline.prototype.bindInput = function () {
    var self = this, drag = null;
    this.svg.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      self.zoom(ev.deltaY > 0 ? 1.25 : 0.8, Math.max(LABEL_W, self.svgX(ev)));
    }, { passive: false });
    this.svg.addEventListener("mousedown", function (ev) {
      drag = { x: self.svgX(ev), v: self.view.slice() };
      self.svg.classList.add("dragging");
    });
    window.addEventListener("mouseup", function () { drag = null; self.svg.classList.remove("dragging"); });
    this.svg.addEventListener("mousemove", function (ev) {
      if (drag) {
        var dt = (self.svgX(ev) - drag.x) * (drag.v[1] - drag.v[0]) / (self.width - LABEL_W - PAD_R);
        self.setView(drag.v[0] - dt, drag.v[1] - dt);
        return;
      }
      var it = ev.target && ev.target.__item;
      if (!it) { self.tip.style.display = "none"; return; }
      self.tip.textContent = it[5];
      self.tip.style.display = "block";
      var rb = self.root.getBoundingClientRect();
      var left = ev.clientX - rb.left + 14, top = ev.clientY - rb.top + 14;
      if (left + 500 > rb.width) left = Math.max(0, ev.clientX - rb.left - 500);
      self.tip.style.left = left + "px";
      self.tip.style.top = top + "px";
    });
    this.svg.addEventListener("mouseleave", function () { self.tip.style.display = "none"; });
    this.svg.addEventListener("dblclick", function () { self.setView(self.full[0], self.full[1]); });
  };
  Timeline.prototype.render = function () {
    var self = this, w = this.w, v = this.view;
    this.svg.setAttribute("data-view-start-us", v[0].toFixed(3));
    this.svg.setAttribute("data-view-end-us", v[1].toFixed(3));
    this.rangeText.textContent = "view " + fmtUs(v[0]) + " … " + fmtUs(v[1]) + " (" + fmtUs(v[1] - v[0]) + ")";
    [this.axis, this.zero, this.items, this.flows].forEach(function (g) { while (g.firstChild) g.removeChild(g.firstChild); });
    var h = AXIS_H + w.lanes.length * LANE_H;
    var step = niceStep(v[1] - v[0], this.width - LABEL_W);
    for (var t = Math.ceil(v[0] / step) * step; t <= v[1]; t += step) {
      var x = this.x(t);
      el("line", { x1: x, x2: x, y1: AXIS_H - 4, y2: h }, this.axis);
      el("text", { x: x + 2, y: 14 }, this.axis).textContent = fmtUs(t);
    }
    if (v[0] <= 0 && v[1] >= 0) {
      var zx = this.x(0);
      el("line", { x1: zx, x2: zx, y1: 16, y2: h }, this.zero);
      el("text", { x: zx + 3, y: 24 }, this.zero).textContent = this.zeroLabel;
    }
    var pos = [];
    w.items.forEach(function (it, i) {
      var t0 = it[1], d = it[2];
      if (t0 + d < v[0] || t0 > v[1]) { pos[i] = null; return; }
      var x0 = Math.max(LABEL_W, self.x(t0)), x1 = Math.min(self.width - PAD_R, self.x(t0 + d));
      var y = AXIS_H + it[0] * LANE_H;
      var cls = "item " + it[3] + (it[6] ? " role-" + it[6] : "");
      var r;
      if (d <= 0) {  // an instant: a diamond
        var cx = self.x(t0), cy = y + LANE_H / 2;
        r = el("path", { d: "M" + cx + "," + (cy - 6) + " l5,6 l-5,6 l-5,-6 z", "class": cls }, self.items);
      } else {
        r = el("rect", { x: x0, y: y + 3, width: Math.max(1.5, x1 - x0), height: LANE_H - 6, rx: 2, "class": cls }, self.items);
        if (x1 - x0 > 46) {
          var lt = el("text", { x: x0 + 3, y: y + 14, "class": "item-label" }, self.items);
          lt.textContent = it[4].length * 6 > x1 - x0 ? it[4].slice(0, Math.floor((x1 - x0) / 6)) : it[4];
        }
      }
      r.__item = it;
      if (it[6]) r.setAttribute("data-role", it[6]);
      pos[i] = { x0: self.x(t0), x1: self.x(t0 + d), y: y + LANE_H / 2 };
    });
    w.flows.forEach(function (f) {
      var a = pos[f[0]], b = pos[f[1]];
      if (!a || !b) return;
      var mx = (a.x1 + b.x0) / 2;
      el("path", { d: "M" + a.x1 + "," + a.y + " C" + mx + "," + a.y + " " + mx + "," + b.y + " " + b.x0 + "," + b.y, "class": "flow" }, self.flows);
    });
  };

  var timelines = [];
  document.querySelectorAll(".timeline[data-window]").forEach(function (div) {
    var w = data.windows[+div.getAttribute("data-window")];
    if (w && w.lanes && w.lanes.length && w.items && w.items.length && w.range_us) timelines.push(new Timeline(div, w));
    else div.innerHTML = "<p class='muted'>no timeline for this finding (no ops or events recorded in its window)</p>";
  });
  window.fsraceTimelines = timelines;

  // Self-test for the browser test (tests/report/browser.sh opens report.html#selftest headless): the
  // lanes, the highlighted read, zoom through the real wheel handler, and no resource loaded.
  if (location.hash === "#selftest") {
    var res = { timelines: timelines.length, resources: performance.getEntriesByType("resource").length };
    var tl = timelines[0];
    if (tl) {
      res.thread_lanes = tl.svg.querySelectorAll("rect.lane-bg[data-group=thread]").length;
      res.kernel_lanes = tl.svg.querySelectorAll("rect.lane-bg[data-group=kernel]").length;
      res.read_highlighted = tl.svg.querySelectorAll("[data-role=read]").length;
      res.expected_highlighted = tl.svg.querySelectorAll("[data-role=expected]").length;
      res.durable_highlighted = tl.svg.querySelectorAll("[data-role=durable]").length;
      var before = [tl.svg.getAttribute("data-view-start-us"), tl.svg.getAttribute("data-view-end-us")];
      var b = tl.svg.getBoundingClientRect();
      tl.svg.dispatchEvent(new WheelEvent("wheel", { deltaY: -120, clientX: b.left + b.width * 0.7, clientY: b.top + 30, bubbles: true, cancelable: true }));
      var after = [tl.svg.getAttribute("data-view-start-us"), tl.svg.getAttribute("data-view-end-us")];
      res.view_before = before.map(Number);
      res.view_after = after.map(Number);
      res.zoom_changed = before[0] !== after[0] || before[1] !== after[1];
      res.items_drawn = tl.svg.querySelectorAll(".items .item").length;
    }
    var pre = document.createElement("pre");
    pre.id = "selftest-result";
    pre.textContent = JSON.stringify(res);
    document.body.appendChild(pre);
  }
})();

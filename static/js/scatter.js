/* The Compare page's scatter of a parameter against a metric: one point per run, in the run's
   colour in the line charts, labelled with its number; hover a point for the run's values.

       window.aicenterScatter(box, form, runs)

   `box` is an empty <div>, `form` has the selects `x` (a parameter's name) and `y` (a value's:
   "score" or a metric's), `runs` is [{label, parameters: {name: value}, values: {name: number}}].
   Parameters are text: when every run's value is a number the axis is numeric (logarithmic
   when they span two decades or more, as learning rates do), otherwise each distinct value
   gets its own slot. Drawn as SVG: a few dozen points need no canvas. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var HEIGHT = 280;
  var MARGIN = { top: 14, right: 36, bottom: 48, left: 64 };

  function node(name, attributes, parent) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { element.setAttribute(key, attributes[key]); });
    if (parent) parent.appendChild(element);
    return element;
  }

  function text(content, attributes, parent) {
    node("text", attributes, parent).textContent = content;
  }

  function tidy(value) { return String(Number(value.toPrecision(6))); }

  // About five round ticks over [min, max], the range widened to the outer ones.
  function linear(min, max) {
    if (min === max) { var pad = Math.abs(min) * 0.1 || 1; min -= pad; max += pad; }
    var rough = (max - min) / 5;
    var power = Math.pow(10, Math.floor(Math.log10(rough)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; }).find(function (s) { return s >= rough; });
    var low = Math.floor(min / step), high = Math.ceil(max / step);
    var ticks = [];
    for (var i = low; i <= high; i++) ticks.push(i * step);
    return { at: Number, low: low * step, high: high * step, ticks: ticks, name: tidy };
  }

  function logarithmic(min, max) {
    var low = Math.floor(Math.log10(min)), high = Math.ceil(Math.log10(max));
    var ticks = [];
    for (var power = low; power <= high; power++) ticks.push(power);
    return { at: function (v) { return Math.log10(Number(v)); }, log: true, low: low, high: high, ticks: ticks, name: function (p) { return tidy(Math.pow(10, p)); } };
  }

  function numeric(values) {
    return values.every(function (v) { return String(v).trim() !== "" && isFinite(Number(v)); });
  }

  function axisFor(values) {
    if (numeric(values)) {
      var numbers = values.map(Number);
      var min = Math.min.apply(null, numbers), max = Math.max.apply(null, numbers);
      if (min > 0 && max / min >= 100) return logarithmic(min, max);
      return linear(min, max);
    }
    var slots = Array.from(new Set(values.map(String))).sort();
    return {
      at: function (v) { return slots.indexOf(String(v)); }, low: -0.5, high: slots.length - 0.5,
      ticks: slots.map(function (s, i) { return i; }), name: function (i) { return slots[i]; },
    };
  }

  function draw(box, xName, yName, runs) {
    box.replaceChildren();
    var points = runs.map(function (run, i) {
      return { run: run, colour: window.aicenterCharts.colours[i % 10], x: run.parameters[xName], y: run.values[yName] };
    }).filter(function (p) { return p.x != null && p.y != null && isFinite(p.y); });
    if (!points.length) {
      var p = document.createElement("p");
      p.className = "muted small";
      p.textContent = "None of these runs has both " + xName + " and " + yName + ".";
      box.appendChild(p);
      return;
    }
    var width = Math.max(240, box.clientWidth);
    var xs = axisFor(points.map(function (p) { return p.x; }));
    var values = points.map(function (p) { return p.y; });
    var ys = linear(Math.min.apply(null, values), Math.max.apply(null, values));
    [xs, ys].forEach(function (scale) {  // no point on the frame
      var pad = (scale.high - scale.low) * 0.04;
      scale.low -= pad;
      scale.high += pad;
    });
    var inner = { w: width - MARGIN.left - MARGIN.right, h: HEIGHT - MARGIN.top - MARGIN.bottom };
    var left = function (v) { return MARGIN.left + (xs.at(v) - xs.low) / (xs.high - xs.low) * inner.w; };
    var top = function (v) { return MARGIN.top + (1 - (v - ys.low) / (ys.high - ys.low)) * inner.h; };
    var svg = node("svg", { width: width, height: HEIGHT, role: "img", "aria-label": yName + " against " + xName });
    xs.ticks.forEach(function (t) {
      var x = MARGIN.left + (t - xs.low) / (xs.high - xs.low) * inner.w;
      node("line", { x1: x, x2: x, y1: MARGIN.top, y2: MARGIN.top + inner.h, class: "grid" }, svg);
      text(xs.name(t), { x: x, y: MARGIN.top + inner.h + 16, "text-anchor": "middle", class: "tick" }, svg);
    });
    ys.ticks.forEach(function (t) {
      var y = top(t);
      node("line", { x1: MARGIN.left, x2: MARGIN.left + inner.w, y1: y, y2: y, class: "grid" }, svg);
      text(tidy(t), { x: MARGIN.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, svg);
    });
    text(xName + (xs.log ? " (log scale)" : ""),
      { x: MARGIN.left + inner.w / 2, y: HEIGHT - 8, "text-anchor": "middle", class: "axis-label" }, svg);
    text(yName, { transform: "translate(14 " + (MARGIN.top + inner.h / 2) + ") rotate(-90)", "text-anchor": "middle", class: "axis-label" }, svg);
    points.forEach(function (p) {
      var group = node("g", { class: "point", "data-run": p.run.label }, svg);
      node("circle", { cx: left(p.x), cy: top(p.y), r: 6, fill: p.colour }, group);
      text(p.run.label.split(" ")[0], { x: left(p.x) + 9, y: top(p.y) - 7, class: "point-label" }, group);
      node("title", {}, group).textContent = p.run.label + "\n" + xName + " = " + p.x + "\n" + yName + " = " + window.aicenterCharts.number(p.y);
    });
    box.appendChild(svg);
  }

  window.aicenterScatter = function (box, form, runs) {
    var redraw = function () { draw(box, form.elements.x.value, form.elements.y.value, runs); };
    form.addEventListener("change", redraw);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    var width = box.clientWidth;
    new ResizeObserver(function () {
      if (box.clientWidth && box.clientWidth !== width) { width = box.clientWidth; redraw(); }
    }).observe(box);
    redraw();
  };
})();

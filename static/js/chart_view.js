/* The chart controls (templates/partials/chart_controls.html): what the x axis is (the step,
   the time since the run's first point, or the wall-clock time), a logarithmic y axis, and
   smoothing, an exponential moving average as TensorBoard's and MLflow's slider does it. One
   form for all the charts of a page; the choice is kept in this browser for the next page.

       var view = window.aicenterCharts.view(form);           // {x, log, smoothing}
       window.aicenterCharts.watch(form, function (view) { ...redraw... });
       chart.update(window.aicenterCharts.viewed(series, view, {yLabel: name}));

   where `series` is [{label, points: [{step, value, time}, …]}, …], as the metrics API gives
   them. Loaded by partials/charts_head.html after metrics.js. */
(function () {
  "use strict";
  var KEPT = "aicenter.chart-view";
  var X = {
    step: { label: "Step" },
    relative: { label: "Relative time", kind: "duration" },
    wall: { label: "Wall time", kind: "time" },
  };

  function view(form) {
    if (!form) return { x: "step", log: false, smoothing: 0 };
    var smoothing = Number(form.elements.smoothing.value);
    return {
      x: X[form.elements.x.value] ? form.elements.x.value : "step",
      log: form.elements.log.checked,
      // 1 would be a flat line at the first value: the slider stops short of it
      smoothing: isFinite(smoothing) ? Math.min(0.99, Math.max(0, smoothing)) : 0,
    };
  }

  function show(form) {
    var output = form.querySelector("output");
    if (output) output.textContent = view(form).smoothing.toFixed(2);
  }

  function restore(form) {
    var kept = null;
    try { kept = JSON.parse(window.localStorage.getItem(KEPT) || "null"); } catch (e) { kept = null; }
    if (!kept) return;
    if (X[kept.x]) form.elements.x.value = kept.x;
    form.elements.log.checked = !!kept.log;
    if (isFinite(kept.smoothing)) form.elements.smoothing.value = kept.smoothing;
  }

  function watch(form, redraw) {
    if (!form) return;
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.addEventListener("input", function () {
      show(form);
      try { window.localStorage.setItem(KEPT, JSON.stringify(view(form))); } catch (e) { /* private mode */ }
      redraw(view(form));
    });
  }

  // TensorBoard's debiased EMA: early points are not pulled towards 0, and a gap (a NaN
  // logged) neither resets nor poisons the average.
  function smoothed(values, weight) {
    if (!weight) return values;
    var last = 0, debias = 0;
    return values.map(function (value) {
      if (value == null || !isFinite(value)) return value;
      last = last * weight + (1 - weight) * value;
      debias = debias * weight + (1 - weight);
      return last / debias;
    });
  }

  function seconds(point) { return Date.parse(point.time) / 1000; }

  function viewed(series, current, extra) {
    current = current || view(null);
    var lines = series.map(function (one) {
      var points = (one.points || []).slice().sort(function (a, b) { return a.step - b.step; });
      var ys = smoothed(points.map(function (p) { return p.value; }), current.smoothing);
      var start = points.length ? Math.min.apply(null, points.map(seconds)) : 0;
      return {
        label: one.label,
        points: points.map(function (p, i) {
          var x = current.x === "step" ? p.step : seconds(p) - (current.x === "relative" ? start : 0);
          return [x, ys[i]];
        }),
      };
    });
    var options = { series: lines, xLabel: X[current.x].label, xKind: X[current.x].kind, log: current.log };
    return Object.assign(options, extra || {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-chart-controls]").forEach(function (form) {
      restore(form);
      show(form);
    });
  });

  Object.assign(window.aicenterCharts, { view: view, watch: watch, viewed: viewed, smoothed: smoothed });
})();

/* Line charts of metrics, on top of uPlot (static/vendor/uplot: the global `uPlot`).

   How to use: put {% include "partials/charts_head.html" %} in the page's {% block head %} (it
   loads uPlot, its stylesheet, charts.css and this file, all deferred), then, once the DOM is
   ready, call
       var chart = window.aicenterCharts.lines(element, {
         series: [{label: "run 12", points: [[0, 1.0], [1, 0.52], [2, 0.31]]},
                  {label: "run 13", points: [[0, 0.9], [2, 0.2]]}],
         xLabel: "Step", yLabel: "loss"
       });
   `element` is an empty <div class="chart">: the chart takes its width and follows it when the
   window resizes. All series share one chart, each in its own colour (10 distinct ones, then
   they repeat dashed), with a legend under it that shows the values under the cursor (each
   series' last value while the cursor is off the chart); drag to zoom, double-click to zoom
   out. Points are [x, y]; they need not be sorted nor share their x values across series, and
   a y of null (NaN or infinity logged) is skipped: the line spans it. Optional: `height` (px, default 220); `xNames` (labels for x = 0, 1, 2…, e.g. version
   numbers); `xKind`: "time" (x is a Unix time in seconds, shown as a date) or "duration" (x is
   seconds, shown as 1:05:00); `log`: a logarithmic y axis (points at or below 0 are left out:
   a log scale has no place for them). static/js/chart_view.js turns a run's points into these
   options as the page's chart controls say. `chart.update(options)` redraws in place (keeping the user's zoom) and
   `chart.destroy()` removes it. Or, without any script of the page's own: render the options
   with {{ options|json_script:"some-id" }} and add <div class="chart" data-chart="some-id">. */
(function () {
  "use strict";

  // Readable on white, told apart from each other; the first is the site's primary blue.
  var COLOURS = [
    "#2a5bd7", "#e8710a", "#188038", "#d93025", "#9334e6",
    "#0e7c86", "#795548", "#d01884", "#546e7a", "#827717",
  ];
  var DASHES = [null, [6, 3], [2, 3]];
  var AXIS = "#667085";
  var GRID = "#eef0f3";

  // Tick steps that are whole numbers: steps and version orders have no halves.
  var WHOLE = [];
  for (var power = 1; power <= 1e15; power *= 10) WHOLE.push(power, 2 * power, 5 * power);
  // Tick steps of a duration axis, in seconds: ones a clock reads (30 s, 5 min, 2 h, a day).
  var CLOCK = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    43200, 86400, 172800, 604800];

  function number(value) {
    if (value == null || !isFinite(value)) return "\u2014";
    var size = Math.abs(value);
    if (size !== 0 && (size >= 1e6 || size < 1e-3)) return value.toExponential(3);
    return String(Number(value.toPrecision(5)));
  }

  // A tick label with as many decimals as the ticks' spacing needs (uPlot's own stops at 3).
  function tick(value, spacing) {
    if (value == null) return "";
    var size = Math.max(Math.abs(value), spacing);
    if (size >= 1e6 || size < 1e-3) {
      if (value === 0) return "0";
      var digits = Math.floor(Math.log10(Math.abs(value))) - Math.floor(Math.log10(spacing));
      return value.toExponential(Math.min(10, Math.max(0, digits)));
    }
    return value.toFixed(Math.min(10, Math.max(0, Math.ceil(-Math.log10(spacing) - 1e-9))));
  }

  // Seconds as h:mm:ss (or m:ss, or "12.5 s" under a minute): a relative time axis.
  function duration(seconds) {
    if (seconds == null || !isFinite(seconds)) return "\u2014";
    var sign = seconds < 0 ? "-" : "";
    seconds = Math.abs(seconds);
    if (seconds < 60) return sign + String(Number(seconds.toPrecision(3))) + " s";
    var whole = Math.round(seconds);
    var h = Math.floor(whole / 3600), m = Math.floor(whole / 60) % 60, s = whole % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return sign + (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s);
  }

  function moment(seconds) {
    if (seconds == null || !isFinite(seconds)) return "\u2014";
    return new Date(seconds * 1000).toLocaleString();
  }

  function lastOf(values) {
    for (var i = values.length - 1; i >= 0; i--) if (values[i] != null) return values[i];
    return null;
  }

  function usable(point) {
    return point && point[0] != null && isFinite(point[0]) && point[1] != null && isFinite(point[1]);
  }

  // uPlot wants one x array and each series' y at those x (null where it has none).
  function aligned(series, log) {
    var tables = series.map(function (one) {
      var points = (one.points || []).filter(function (p) { return usable(p) && (!log || p[1] > 0); })
        .sort(function (a, b) { return a[0] - b[0]; });
      return [points.map(function (p) { return p[0]; }), points.map(function (p) { return p[1]; })];
    });
    if (!tables.length) return [[]];
    return tables.length === 1 ? tables[0] : uPlot.join(tables);
  }

  function wholeXs(series) {
    return series.every(function (one) {
      return (one.points || []).every(function (p) { return !usable(p) || Number.isInteger(p[0]); });
    });
  }

  function config(options, width) {
    var names = options.xNames;
    var kind = options.xKind;
    var xText = kind === "time" ? moment : kind === "duration" ? duration : number;
    var x = {
      label: options.xLabel || "x",
      value: function (u, v, i, idx) {
        if (idx == null) v = lastOf(u.data[0]);  // the cursor is off the chart: the last point
        if (v == null) return "\u2014";
        return names ? (names[v] !== undefined ? names[v] : "") : xText(v);
      },
    };
    var series = [x].concat(options.series.map(function (one, i) {
      return {
        label: one.label,
        stroke: COLOURS[i % COLOURS.length],
        dash: DASHES[Math.floor(i / COLOURS.length) % DASHES.length] || undefined,
        width: 2,
        spanGaps: true,
        value: function (u, v, i, idx) { return number(idx == null ? lastOf(u.data[i]) : v); },
        points: { size: 6 },
      };
    }));
    var xAxis = {
      label: options.xLabel || "",
      labelSize: options.xLabel ? 18 : 0,
      size: 32,
      stroke: AXIS,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1 },
    };
    if (names) {
      xAxis.values = function (u, splits) {
        return splits.map(function (v) { return names[v] !== undefined ? names[v] : ""; });
      };
    }
    if (kind === "duration") {
      xAxis.values = function (u, splits) { return splits.map(duration); };
      xAxis.incrs = CLOCK;
    }
    if (!kind && (names || wholeXs(options.series))) xAxis.incrs = WHOLE;
    var yAxis = {
      label: options.yLabel || "",
      labelSize: options.yLabel ? 18 : 0,
      stroke: AXIS,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1 },
      values: function (u, splits, axis, space, spacing) {
        return splits.map(function (v) { return tick(v, spacing); });
      },
      // wide enough for the longest tick label
      size: function (u, values) {
        var longest = (values || []).reduce(function (n, v) { return Math.max(n, String(v).length); }, 0);
        return Math.max(40, 16 + 7 * longest);
      },
    };
    if (options.log) {
      // uPlot leaves the minor ticks' labels out (null) where they would crowd
      yAxis.values = function (u, splits) {
        return splits.map(function (v) { return v == null ? "" : number(v); });
      };
    }
    var xScale = { time: kind === "time" };
    if (names) {
      // half a slot either side, so the first and last versions are not on the frame
      xScale.range = function (u, min, max) { return [min - 0.5, max + 0.5]; };
    }
    return {
      width: width,
      height: options.height || 220,
      series: series,
      axes: [xAxis, yAxis],
      scales: { x: xScale, y: options.log ? { distr: 3, log: 10 } : {} },
      legend: { live: true },
      cursor: { focus: { prox: 24 } },
      focus: { alpha: 0.35 },
    };
  }

  // What only a new uPlot can change: the series, the axes and their scales.
  function shapeOf(options) {
    return JSON.stringify([options.series.map(function (s) { return s.label; }),
      options.xNames || null, options.xLabel, options.yLabel, options.height,
      options.xKind || null, !!options.log]);
  }

  function lines(element, options) {
    var chart = null;
    var zoomed = false;
    var shape = "";

    function width() { return Math.max(120, Math.floor(element.clientWidth)); }

    function build(current) {
      if (chart) chart.destroy();
      var opts = config(current, width());
      opts.hooks = {
        setSelect: [function (u) { if (u.select.width > 0) zoomed = true; }],
      };
      chart = new uPlot(opts, aligned(current.series, current.log), element);
      chart.over.addEventListener("dblclick", function () { zoomed = false; });
      shape = shapeOf(current);
    }

    function update(next) {
      if (!chart || shapeOf(next) !== shape) {
        build(next);
        zoomed = false;
      } else {
        chart.setData(aligned(next.series, next.log), !zoomed);
      }
    }

    element.classList.add("chart");
    build(options);
    var resize = new ResizeObserver(function () {
      if (chart && element.clientWidth && width() !== chart.width) {
        chart.setSize({ width: width(), height: chart.height });
      }
    });
    resize.observe(element);

    var handle = {
      update: update,
      destroy: function () {
        resize.disconnect();
        if (chart) chart.destroy();
        chart = null;
      },
      get uplot() { return chart; },
    };
    element.aicenterChart = handle;  // for the page's other scripts (and its tests) to find
    return handle;
  }

  window.aicenterCharts = { lines: lines, colours: COLOURS.slice(), number: number };

  // <div class="chart" data-chart="id of a json_script block">: drawn from that block.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      var data = document.getElementById(element.dataset.chart);
      if (data) lines(element, JSON.parse(data.textContent));
    });
  });
})();

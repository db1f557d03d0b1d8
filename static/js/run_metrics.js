// The run page's Metrics card (<section data-run-metrics="API address">): one chart per metric
// that has two points or more, drawn from the API with about as many points as the chart is
// wide, and drawn again every 2 s until the page's status (#run-status, swapped in by htmx)
// says the run is finished and written: then once more, and no more. The card's chart controls
// (x axis, log scale, smoothing: static/js/chart_view.js) redraw them from the last answer.
// The summary table under the heading is htmx's (templates/pipelines/detail.html#metric-summary).
(function () {
  "use strict";
  var EVERY_MS = 2000;

  function settled() {
    var status = document.getElementById("run-status");
    return !status || status.dataset.settled === "true";
  }

  function follow(card) {
    var box = card.querySelector(".metric-charts");
    var controls = card.querySelector("form[data-chart-controls]");
    var charts = {};  // metric name: {figure, chart}
    var latest = {};  // the last answer's points, redrawn when the controls change

    function chartWidth() {
      var some = box.querySelector(".chart");
      if (some && some.clientWidth) return some.clientWidth;
      // no chart yet: the grid's column (charts.css: columns of at least 360 px)
      var width = card.clientWidth;
      return width >= 760 ? width / 2 : width;
    }

    function figure(name) {
      var element = document.createElement("figure");
      element.className = "metric-chart";
      element.dataset.metric = name;
      var caption = document.createElement("figcaption");
      var code = document.createElement("code");
      code.textContent = name;
      caption.appendChild(code);
      var chart = document.createElement("div");
      chart.className = "chart";
      element.appendChild(caption);
      element.appendChild(chart);
      return element;
    }

    function draw(metrics) {
      latest = metrics;
      var view = window.aicenterCharts.view(controls);
      var names = Object.keys(metrics).sort();
      names.forEach(function (name) {
        var points = metrics[name].filter(function (p) { return p.value !== null; });  // NaN or infinity, logged
        var options = window.aicenterCharts.viewed([{ label: name, points: points }], view);
        if (charts[name]) {
          charts[name].chart.update(options);
        } else if (points.length > 1) {  // one point is no curve: it is in the table
          var element = figure(name);
          box.hidden = false;
          if (controls) controls.hidden = false;
          box.appendChild(element);
          charts[name] = { figure: element, chart: window.aicenterCharts.lines(element.lastChild, options) };
        }
      });
      names.forEach(function (name) {  // in name order, new ones included
        if (charts[name]) box.appendChild(charts[name].figure);
      });
    }

    function tick() {
      var last = settled();  // read before the request: its answer then has every point
      var url = card.dataset.runMetrics + "?max_points=" + Math.max(2, Math.round(chartWidth()));
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("metrics: HTTP " + response.status);
          return response.json();
        })
        .then(function (body) { draw(body.metrics); })
        .catch(function (error) { console.warn(error); })  // the next tick tries again
        .then(function () { if (!last) window.setTimeout(tick, EVERY_MS); });
    }

    window.aicenterCharts.watch(controls, function () { draw(latest); });
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-run-metrics]").forEach(follow);
  });
})();

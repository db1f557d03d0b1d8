/* The Compare page (templates/pipelines/compare.html): each metric of all the compared runs
   overlaid on one chart, drawn by window.aicenterCharts (metrics.js) with the points of each
   run from the metrics API, downsampled on the server to about one point per pixel, and drawn
   again as the chart controls say (chart_view.js). Every chart has every run, so a run keeps
   its colour from chart to chart, and in the scatter of a parameter against a metric
   (scatter.js). Also: the Copy link button. */
(function () {
  "use strict";

  function copyLink(button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(window.location.href).then(function () {
        button.textContent = "Link copied";
        setTimeout(function () { button.textContent = "Copy link"; }, 2000);
      }, function () { button.textContent = "Copy the address bar's link"; });
    });
  }

  function say(boxes, message) {
    boxes.forEach(function (box) {
      var p = document.createElement("p");
      p.className = "muted small";
      p.textContent = message;
      box.replaceChildren(p);
    });
  }

  function draw(boxes, runs, answers, controls) {
    var charts = boxes.map(function (box) {
      box.replaceChildren();
      return window.aicenterCharts.lines(box, options(box, runs, answers, controls));
    });
    controls.hidden = false;
    window.aicenterCharts.watch(controls, function () {
      charts.forEach(function (chart, i) { chart.update(options(boxes[i], runs, answers, controls)); });
    });
  }

  function options(box, runs, answers, controls) {
    var name = box.dataset.compareMetric;
    var series = runs.map(function (run, i) {
      return { label: run.label, points: answers[i].metrics[name] || [] };
    });
    return window.aicenterCharts.viewed(series, window.aicenterCharts.view(controls), { yLabel: name });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.querySelector("[data-copy-link]");
    if (button && navigator.clipboard) copyLink(button);
    var data = document.getElementById("compare-data");
    if (!data) return;
    var chart = JSON.parse(data.textContent);
    var scatter = document.querySelector("[data-scatter]");
    if (scatter) window.aicenterScatter(scatter, document.querySelector("[data-scatter-controls]"), chart.runs);
    var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-compare-metric]"));
    if (!boxes.length) return;
    var controls = document.querySelector("form[data-chart-controls]");
    var maxPoints = Math.max(100, Math.min(4000, Math.round(boxes[0].clientWidth || 600)));
    Promise.all(chart.runs.map(function (run) {
      var url = run.points + "?max_points=" + maxPoints;
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("the metrics of " + run.label + " did not load (" + response.status + ")");
          return response.json();
        });
    })).then(function (answers) {
      draw(boxes, chart.runs, answers, controls);
    }, function (error) {
      say(boxes, "The chart could not be drawn: " + error.message + ". Reload the page to try again.");
    });
  });
})();

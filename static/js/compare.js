/* The Compare page (templates/pipelines/compare.html): each metric of all the compared runs
   overlaid on one chart, drawn by window.aicenterCharts (metrics.js) with the points of each
   run from the metrics API, downsampled on the server to about one point per pixel. Every
   chart has every run, so a run keeps its colour from chart to chart. Also: the Copy link
   button. */
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

  function draw(boxes, runs, answers) {
    boxes.forEach(function (box) {
      var name = box.dataset.compareMetric;
      var series = runs.map(function (run, i) {
        var points = answers[i].metrics[name] || [];
        return {
          label: run.label,
          points: points.map(function (p) { return [p.step, p.value]; }),
        };
      });
      box.replaceChildren();
      window.aicenterCharts.lines(box, { series: series, xLabel: "Step", yLabel: name });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.querySelector("[data-copy-link]");
    if (button && navigator.clipboard) copyLink(button);
    var data = document.getElementById("compare-data");
    var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-compare-metric]"));
    if (!data || !boxes.length) return;
    var chart = JSON.parse(data.textContent);
    var maxPoints = Math.max(100, Math.min(4000, Math.round(boxes[0].clientWidth || 600)));
    Promise.all(chart.runs.map(function (run) {
      var url = run.points + "?max_points=" + maxPoints;
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("the metrics of " + run.label + " did not load (" + response.status + ")");
          return response.json();
        });
    })).then(function (answers) {
      draw(boxes, chart.runs, answers);
    }, function (error) {
      say(boxes, "The chart could not be drawn: " + error.message + ". Reload the page to try again.");
    });
  });
})();

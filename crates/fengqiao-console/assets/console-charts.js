// Draws every element with a `data-chart` attribute (an ECharts option as JSON, written by the
// node) with the vendored ECharts. Hand-written and tiny: the figures are all in the page's
// tables too, so without JavaScript nothing is lost but the pictures.
(function () {
  "use strict";
  function draw() {
    if (typeof echarts === "undefined") {
      return;
    }
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      var option;
      try {
        option = JSON.parse(element.getAttribute("data-chart"));
      } catch (error) {
        return;
      }
      var chart = echarts.init(element, null, { renderer: "canvas" });
      chart.setOption(option);
      element.setAttribute("data-drawn", "true");
      window.addEventListener("resize", function () {
        chart.resize();
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();

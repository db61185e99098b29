// Memory capture page: RSS and USS over time with the fitted RSS trend line (after the
// warm-up, which is shaded), all computed by the server.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("memory-data").textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;

  function points(values) {
    return data.t.map((t, i) => ({ x: t, y: values[i] }));
  }

  // Shades the warm-up window, which the fit leaves out.
  const warmup = {
    id: "warmup",
    beforeDatasetsDraw: function (chart) {
      if (!data.warmup_s) return;
      const x = chart.scales.x;
      const area = chart.chartArea;
      const right = Math.min(x.getPixelForValue(data.warmup_s), area.right);
      if (right <= area.left) return;
      chart.ctx.save();
      chart.ctx.fillStyle = "rgba(140, 149, 159, 0.15)";
      chart.ctx.fillRect(area.left, area.top, right - area.left, area.bottom - area.top);
      chart.ctx.restore();
    },
  };

  const datasets = [
    { label: "RSS", data: points(data.rss_mb), borderColor: "#1f6feb", backgroundColor: "#1f6feb" },
    { label: "USS", data: points(data.uss_mb), borderColor: "#8250df", backgroundColor: "#8250df" },
  ];
  if (data.trend.length) {
    datasets.push({
      label: "RSS trend (fit after warm-up)", data: data.trend, borderColor: "#cf222e",
      backgroundColor: "#cf222e", borderDash: [6, 4], borderWidth: 2,
    });
  }
  datasets.forEach((d) => Object.assign(d, { pointRadius: 0, borderWidth: d.borderWidth || 1.5, spanGaps: false }));

  new Chart(document.getElementById("chart-memory"), {
    type: "line",
    data: { datasets: datasets },
    options: {
      parsing: true,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: { type: "linear", title: { display: true, text: "seconds" } },
        y: { title: { display: true, text: "MB" } },
      },
    },
    plugins: [warmup],
  });
})();

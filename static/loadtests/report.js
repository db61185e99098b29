// A run's HTML report (loadtests/runreports.py): draws its charts from the data inlined
// beside it. The file is opened offline, so everything it needs is in the page.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("report-data").textContent);
  const COLORS = { rps: "#1f6feb", errors: "#cf222e", p50: "#1a7f37", p95: "#9a6700", p99: "#8250df" };
  const tl = data.timeline;

  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;

  function points(name) {
    const values = (tl.series[name] || { mean: [] }).mean;
    return tl.x.map((x, i) => ({ x: x, y: values[i] }));
  }

  function line(label, name, color, extra) {
    return Object.assign({
      label: label, data: points(name), borderColor: color, backgroundColor: color,
      borderWidth: 1.5, pointRadius: 0, spanGaps: false,
    }, extra || {});
  }

  function timeChart(id, datasets, scales) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: { datasets: datasets },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: Object.assign({ x: { type: "linear", title: { display: true, text: "seconds" } } }, scales),
      },
    });
  }

  if (tl.x.length) {
    timeChart("chart-percentiles", [
      line("p50", "p50", COLORS.p50), line("p95", "p95", COLORS.p95), line("p99", "p99", COLORS.p99),
    ], { y: { beginAtZero: true, title: { display: true, text: "ms" } } });
    timeChart("chart-throughput", [
      line("requests/s", "throughput_rps", COLORS.rps),
      line("errors/s", "errors", COLORS.errors, { yAxisID: "y1" }),
    ], {
      y: { beginAtZero: true, title: { display: true, text: "req/s" } },
      y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "errors/s" } },
    });
  }
  if (data.distribution.length) {
    new Chart(document.getElementById("chart-distribution"), {
      type: "bar",
      data: {
        labels: data.distribution.map((b) => b.label || String(b.hi)),
        datasets: [{ label: "requests", data: data.distribution.map((b) => b.count), backgroundColor: COLORS.rps }],
      },
      options: {
        scales: {
          x: { title: { display: true, text: "ms (bucket upper bound)" } },
          y: { beginAtZero: true, title: { display: true, text: "requests" } },
        },
      },
    });
  }
  document.body.dataset.chartsDrawn = "yes";
})();

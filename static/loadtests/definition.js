// Definition page: p50/p95/p99, throughput and error rate across runs; failing runs marked in
// red, and the test's limits drawn as labelled dashed lines so that a failure explains itself.
(function () {
  "use strict";

  const history = JSON.parse(document.getElementById("history-data").textContent);
  if (!history.ids.length || !history.drawn) return;  // the page says why there is no chart
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  const FAIL = "#cf222e";
  const LIMIT = "#cf222e";
  const marked = (color) => history.failed.map((failed) => (failed ? FAIL : color));
  const radius = history.failed.map((failed) => (failed ? 5 : 2.5));
  const style = history.failed.map((failed) => (failed ? "crossRot" : "circle"));

  function openRun(event, elements) {
    if (elements.length) window.location.href = "/runs/" + history.ids[elements[0].index] + "/";
  }

  // A failing run is a red point on its line; the line itself, and so its legend, keeps its
  // own colour.
  function series(label, values, color) {
    return {
      label: label, data: values, borderColor: color, backgroundColor: color,
      pointBackgroundColor: marked(color), pointBorderColor: marked(color),
      pointRadius: radius, pointStyle: style, borderWidth: 1.5, spanGaps: true,
    };
  }

  // Chart.js draws a legend box from a dataset's colours, which for the throughput bars are
  // one per run (red when it failed): each box takes its dataset's line colour instead.
  const legend = {
    labels: {
      generateLabels: (chart) =>
        Chart.defaults.plugins.legend.labels.generateLabels(chart).map((item) => {
          const color = chart.data.datasets[item.datasetIndex].borderColor;
          return Object.assign(item, { fillStyle: color, strokeStyle: color });
        }),
    },
  };

  // A limit as a flat line across every run; none when the test sets no such limit.
  function limits(entries) {
    return entries
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([label, value, color]) => ({
        type: "line", label: label + " " + value, data: history.ids.map(() => value),
        borderColor: color || LIMIT, backgroundColor: color || LIMIT, borderDash: [6, 4],
        borderWidth: 1.5, pointRadius: 0, pointHitRadius: 0, fill: false, limit: true,
      }));
  }

  // Limit lines are not runs: no tooltip row and no click for them.
  const runsOnly = (item) => !item.dataset.limit;

  new Chart(document.getElementById("history-latency"), {
    type: "line",
    data: {
      labels: history.labels,
      datasets: [
        series("p50", history.p50, "#1a7f37"),
        series("p95", history.p95, "#9a6700"),
        series("p99", history.p99, "#8250df"),
        ...limits([
          ["p95 limit (ms)", history.limits.p95, "#9a6700"],
          ["p99 limit (ms)", history.limits.p99, "#8250df"],
        ]),
      ],
    },
    options: {
      onClick: openRun,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: legend, tooltip: { filter: runsOnly, callbacks: { footer: (items) => (items.length ? history.status[items[0].dataIndex] : "") } } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } },
    },
  });

  const throughputLimits = limits([["min throughput (req/s)", history.limits.throughput_rps]]);
  new Chart(document.getElementById("history-throughput"), {
    type: "bar",
    data: {
      labels: history.labels,
      datasets: [
        {
          label: "req/s", data: history.throughput_rps, backgroundColor: marked("#1f6feb"),
          borderColor: "#1f6feb", borderWidth: 0,
        },
        ...throughputLimits,
      ],
    },
    options: {
      onClick: openRun,
      plugins: {
        legend: Object.assign({ display: throughputLimits.length > 0 }, legend),
        tooltip: { filter: runsOnly },
      },
      scales: { y: { beginAtZero: true, title: { display: true, text: "req/s" } } },
    },
  });

  new Chart(document.getElementById("history-errors"), {
    type: "line",
    data: {
      labels: history.labels,
      datasets: [
        series("error rate (%)", history.error_rate, "#bc4c00"),
        ...limits([["error-rate limit (%)", history.limits.error_rate]]),
      ],
    },
    options: {
      onClick: openRun,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: legend, tooltip: { filter: runsOnly } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "%" } } },
    },
  });
})();

// Definition page: p50/p95/p99 and throughput across runs; failing runs marked in red.
(function () {
  "use strict";

  const history = JSON.parse(document.getElementById("history-data").textContent);
  if (!history.ids.length) return;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  const FAIL = "#cf222e";
  const marked = (color) => history.failed.map((failed) => (failed ? FAIL : color));
  const radius = history.failed.map((failed) => (failed ? 5 : 2.5));
  const style = history.failed.map((failed) => (failed ? "crossRot" : "circle"));

  function openRun(event, elements) {
    if (elements.length) window.location.href = "/runs/" + history.ids[elements[0].index] + "/";
  }

  function series(label, values, color) {
    return {
      label: label, data: values, borderColor: color, backgroundColor: marked(color),
      pointBorderColor: marked(color), pointRadius: radius, pointStyle: style,
      borderWidth: 1.5, spanGaps: true,
    };
  }

  new Chart(document.getElementById("history-latency"), {
    type: "line",
    data: {
      labels: history.labels,
      datasets: [
        series("p50", history.p50, "#1a7f37"),
        series("p95", history.p95, "#9a6700"),
        series("p99", history.p99, "#8250df"),
      ],
    },
    options: {
      onClick: openRun,
      interaction: { mode: "index", intersect: false },
      plugins: { tooltip: { callbacks: { footer: (items) => (items.length ? history.status[items[0].dataIndex] : "") } } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } },
    },
  });

  new Chart(document.getElementById("history-throughput"), {
    type: "bar",
    data: {
      labels: history.labels,
      datasets: [{ label: "req/s", data: history.throughput, backgroundColor: marked("#1f6feb") }],
    },
    options: {
      onClick: openRun,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "req/s" } } },
    },
  });
})();

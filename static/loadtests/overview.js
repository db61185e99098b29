// Overview: a small p95 trend per definition over its last runs (failing runs in red).
(function () {
  "use strict";

  const trends = JSON.parse(document.getElementById("trend-data").textContent);
  Chart.defaults.animation = false;

  document.querySelectorAll("canvas[data-trend]").forEach(function (canvas) {
    const points = trends[canvas.dataset.trend] || [];
    new Chart(canvas, {
      type: "line",
      data: {
        labels: points.map((p) => "#" + p.id),
        datasets: [{
          data: points.map((p) => p.p95),
          borderColor: "#1f6feb", borderWidth: 1.5, spanGaps: true,
          pointRadius: points.map((p) => (p.passed === false ? 2.5 : 0)),
          pointBackgroundColor: points.map((p) => (p.passed === false ? "#cf222e" : "#1f6feb")),
        }],
      },
      options: {
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => "p95 " + item.formattedValue + " ms" } },
        },
        scales: { x: { display: false }, y: { display: false, beginAtZero: true } },
      },
    });
  });
})();

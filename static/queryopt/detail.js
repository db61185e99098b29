// Query detail: one chart of the query's statistics over time, from the server's aggregates
// (app side per minute, target per snapshot window), both on one time axis.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("query-data").textContent);
  const COLORS = { calls: "#1f6feb", mean: "#1a7f37", p95: "#9a6700", targetCalls: "#8c959f", targetMean: "#8250df" };

  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;

  function points(rows, key) {
    return rows.map((row) => ({ x: row.t, y: row[key] }));
  }

  function line(label, rows, key, color, extra) {
    return Object.assign({
      type: "line", label: label, data: points(rows, key), borderColor: color,
      backgroundColor: color, borderWidth: 1.5, pointRadius: rows.length > 60 ? 0 : 2,
    }, extra || {});
  }

  // The axis is plain epoch milliseconds: no date adapter is vendored, and labels only need
  // the local time of day (with the date when the points span several days).
  const times = data.app.concat(data.target).map((row) => row.t);
  const manyDays = times.length > 1 && Math.max(...times) - Math.min(...times) > 86400000;
  // The product's own format, 24-hour as on every page ("2026-12-07 14:05"), whatever the
  // browser's locale would print.
  const pad = (number) => String(number).padStart(2, "0");
  const day = (moment) => moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate());
  const clock = (moment) => pad(moment.getHours()) + ":" + pad(moment.getMinutes());
  function timeLabel(value) {
    const moment = new Date(value);
    return manyDays ? day(moment) + " " + clock(moment) : clock(moment);
  }
  function fullTime(value) {
    const moment = new Date(value);
    return day(moment) + " " + clock(moment) + ":" + pad(moment.getSeconds());
  }

  new Chart(document.getElementById("chart-query-stats"), {
    data: {
      datasets: [
        line("app calls/min", data.app, "calls", COLORS.calls, { yAxisID: "calls" }),
        line("app mean ms", data.app, "mean", COLORS.mean),
        line("app p95 ms", data.app, "p95", COLORS.p95),
        line("target calls/snapshot", data.target, "calls", COLORS.targetCalls, { yAxisID: "calls", borderDash: [4, 4] }),
        line("target mean ms", data.target, "mean", COLORS.targetMean, { borderDash: [4, 4] }),
      ],
    },
    options: {
      interaction: { mode: "nearest", intersect: false },
      plugins: {
        tooltip: { callbacks: { title: (items) => items.length ? fullTime(items[0].parsed.x) : "" } },
      },
      scales: {
        x: { type: "linear", ticks: { callback: timeLabel, maxTicksLimit: 8 } },
        y: { beginAtZero: true, title: { display: true, text: "ms" } },
        calls: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "calls" } },
      },
    },
  });
})();

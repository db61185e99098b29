// Compare page: the two runs' percentile spectra and per-second p95, overlaid.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const TICKS = { 0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%", 6: "max" };
  const A = "#8c959f";
  const B = "#1f6feb";
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  // A run with nothing to draw says so in the legend (a run that sent no requests says that);
  // with neither, the page shows a note and no canvas.
  function named(side, run, points) {
    const why = run.no_data || (points.length ? "" : data.empty_text.replace(/\.$/, "").toLowerCase());
    return side + " #" + run.id + (why ? " (" + why + ")" : "");
  }

  function line(label, points, color, extra) {
    return Object.assign({
      label: label, data: points, borderColor: color, backgroundColor: color,
      pointRadius: 0, borderWidth: 1.5,
    }, extra || {});
  }

  if (document.getElementById("compare-spectrum")) new Chart(document.getElementById("compare-spectrum"), {
    type: "line",
    data: { datasets: [
      line(named("a", data.a, data.a.spectrum), data.a.spectrum, A, { borderDash: [5, 4] }),
      line(named("b", data.b, data.b.spectrum), data.b.spectrum, B),
    ] },
    options: {
      interaction: { mode: "nearest", intersect: false },
      plugins: { tooltip: { callbacks: { title: (items) => (items.length ? "p" + items[0].raw.p : "") } } },
      scales: {
        x: { type: "linear", min: 0, max: 6, ticks: { stepSize: 1, callback: (v) => TICKS[v] || "" },
          title: { display: true, text: "percentile" } },
        y: { beginAtZero: true, title: { display: true, text: "ms" } },
      },
    },
  });

  function perSecond(series) {
    return series.x.map((x, i) => ({ x: x, y: series.series.p95.mean[i] }));
  }

  if (document.getElementById("compare-p95")) new Chart(document.getElementById("compare-p95"), {
    type: "line",
    data: { datasets: [
      line(named("a", data.a, perSecond(data.p95.a)), perSecond(data.p95.a), A, { borderDash: [5, 4] }),
      line(named("b", data.b, perSecond(data.p95.b)), perSecond(data.p95.b), B),
    ] },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { type: "linear", title: { display: true, text: "seconds" } },
        y: { beginAtZero: true, title: { display: true, text: "ms" } },
      },
    },
  });
})();

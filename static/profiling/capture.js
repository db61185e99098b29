// A queued or running capture's page: poll its small status view every second (every 5 s
// while the tab is hidden) and reload when the capture is done or failed. A running memory
// capture's samples come with each answer (those after the last one drawn) and are drawn live.
(function () {
  "use strict";

  const page = document.getElementById("capture-page");
  const url = page.dataset.statusUrl;
  const badge = document.getElementById("capture-status");
  const canvas = document.getElementById("chart-live-memory");
  let after = -1;
  let chart = null;

  function liveChart() {
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    const line = (label, color) => ({ label: label, data: [], borderColor: color,
      backgroundColor: color, pointRadius: 0, borderWidth: 1.5, spanGaps: false });
    return new Chart(canvas, {
      type: "line",
      data: { datasets: [line("RSS", "#1f6feb"), line("USS", "#8250df")] },
      options: {
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "seconds" } },
          y: { title: { display: true, text: "MB" } },
        },
      },
    });
  }

  function draw(samples) {
    if (!canvas || !samples || !samples.length) return;
    chart = chart || liveChart();
    samples.forEach(function (sample) {
      chart.data.datasets[0].data.push({ x: sample[0], y: sample[1] });
      chart.data.datasets[1].data.push({ x: sample[0], y: sample[2] });
    });
    after = samples[samples.length - 1][0];
    chart.update();
  }

  function next() {
    setTimeout(poll, document.hidden ? 5000 : 1000);
  }

  function poll() {
    const query = canvas ? "?after=" + encodeURIComponent(after) : "";
    fetch(url + query, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then(function (state) {
        if (!state) return next();
        badge.textContent = state.status;
        badge.className = "badge " + state.status;
        if (!state.active) {
          window.location.reload();
          return;
        }
        draw(state.samples);
        next();
      })
      .catch(next);
  }

  next();
})();

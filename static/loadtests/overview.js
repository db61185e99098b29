// Overview: a small p95 trend per definition over its last runs (failing runs in red), and
// the "running now" panel kept live from a small JSON endpoint: every second while a run is
// shown (every 5 s while the tab is hidden), every 5 s otherwise to see runs started elsewhere.
(function () {
  "use strict";

  const trends = JSON.parse(document.getElementById("trend-data").textContent);
  // The run statuses as the server names them (RunStatus), e.g. STATUS.QUEUED.
  const STATUS = JSON.parse(document.getElementById("run-statuses").textContent);
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
          // A line needs two points: a lone run is drawn as its point (else the chart is blank).
          pointRadius: points.map((p) => (p.passed === false || points.length === 1 ? 2.5 : 0)),
          pointBackgroundColor: points.map((p) => (p.passed === false ? "#cf222e" : "#1f6feb")),
        }],
      },
      options: {
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => "p95 " + item.formattedValue + " ms" } },
        },
        // offset: a lone point sits in the middle, not on the left edge.
        scales: {
          x: { display: false, offset: points.length === 1 },
          y: { display: false, beginAtZero: true },
        },
      },
    });
  });

  // -- running now -------------------------------------------------------------------------
  const panel = document.getElementById("running-now");
  const rows = document.getElementById("running-rows");
  const rowTemplate = document.getElementById("running-row");
  const FAST = 1000;
  const SLOW = 5000;

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  // The same text as templates/loadtests/_running_row.html renders.
  function show(row, run) {
    const link = field(row, "link");
    link.href = run.url;
    link.textContent = run.id;
    field(row, "name").textContent = run.name;
    const waiting = field(row, "waiting");
    waiting.textContent = run.waiting ? run.waiting.message : "";
    waiting.hidden = !run.waiting;
    const badge = field(row, "status");
    badge.textContent = run.status;
    badge.className = "badge " + run.status;
    field(row, "started").textContent = run.started_time || STATUS.QUEUED;
    field(row, "bar").style.width = run.progress_pct + "%";
    field(row, "progress").textContent = Math.round(run.progress_pct) + "% · "
      + (run.elapsed_s === null ? "" : Math.round(run.elapsed_s) + " s of ") + run.planned_s + " s";
    field(row, "requests").textContent = run.requests;
    field(row, "p95").textContent = run.latency_p95_ms === null ? "–" : run.latency_p95_ms.toFixed(1);
    field(row, "error_rate").textContent =
      run.error_rate_pct === null ? "–" : run.error_rate_pct.toFixed(2) + "%";
  }

  function delay() {
    return rows.children.length && document.visibilityState === "visible" ? FAST : SLOW;
  }

  let timer = null;
  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    let runs;
    try {
      const response = await fetch(panel.dataset.url, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      runs = (await response.json()).runs;
    } catch (error) {
      panel.dataset.liveError = String(error);
      schedule(SLOW);
      return;
    }
    delete panel.dataset.liveError;
    // A run gone from the list has ended: the recent runs, trends and last results changed.
    const live = new Set(runs.map((run) => String(run.id)));
    if (Array.from(rows.children).some((row) => !live.has(row.dataset.run))) {
      location.reload();
      return;
    }
    runs.forEach(function (run) {
      let row = rows.querySelector('tr[data-run="' + run.id + '"]');
      if (!row) {
        // Newer than every shown run: the list is oldest first.
        row = rowTemplate.content.firstElementChild.cloneNode(true);
        row.dataset.run = run.id;
        rows.appendChild(row);
      }
      show(row, run);
    });
    panel.hidden = runs.length === 0;
    schedule(delay());
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") schedule(0);
  });
  schedule(delay());
})();

// Run page: per-second charts from the server's (downsampled) timeline, then live updates
// from the run's small JSON endpoint every second (every 5 s while the tab is hidden).
(function () {
  "use strict";

  const root = document.getElementById("run-page");
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const COLORS = {
    rps: "#1f6feb", errors: "#cf222e", p50: "#1a7f37", p95: "#9a6700", p99: "#8250df",
    users: "#0969da", target: "#8c959f", service: "#bf3989",
  };
  const SPECTRUM_TICKS = { 0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%", 6: "max" };

  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;

  const tl = data.timeline;
  // Legends list only what is drawn: no bands, no hidden series, and the rolling-window key
  // only once a point was drawn from a rolling window.
  function anyRolling(datasets) {
    return datasets.some((ds) => !ds.hidden && ds.rolling && ds.rolling.some(Boolean));
  }
  const drawnOnly = { labels: { filter: function (item, chartData) {
    const ds = chartData.datasets[item.datasetIndex];
    if (ds.band || item.hidden) return false;
    return ds.rollingKey ? anyRolling(chartData.datasets) : true;
  } } };

  function points(name, key) {
    return tl.x.map((x, i) => ({ x: x, y: tl.series[name][key][i] }));
  }

  function line(label, name, color, extra) {
    return Object.assign({
      label: label, data: points(name, "mean"), series: name, borderColor: color,
      backgroundColor: color, borderWidth: 1.5, pointRadius: 0, spanGaps: false,
    }, extra || {});
  }

  // A min/max band behind a line when several seconds share one point.
  function band(name, color, extra) {
    if (!tl.downsampled) return [];
    const common = { band: true, borderWidth: 0, pointRadius: 0, backgroundColor: color + "33" };
    return [
      Object.assign({ label: name + " max", data: points(name, "max"), series: name, bandKey: "max", fill: false }, common, extra),
      Object.assign({ label: name + " min", data: points(name, "min"), series: name, bandKey: "min", fill: "-1" }, common, extra),
    ];
  }

  function timeChart(id, datasets, scales) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: { datasets: datasets },
      options: {
        parsing: true, normalized: true,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: drawnOnly },
        scales: Object.assign({ x: { type: "linear", title: { display: true, text: "seconds" } } }, scales),
      },
    });
  }

  const openModel = data.load_model === "open";
  const throughput = timeChart("chart-throughput", [
    line("requests/s", "throughput_rps", COLORS.rps), ...band("throughput_rps", COLORS.rps),
    line("errors/s", "errors", COLORS.errors, { yAxisID: "y1" }),
    ...(openModel ? [line("planned req/s", "target", COLORS.target, { borderDash: [4, 4] })] : []),
  ], {
    y: { beginAtZero: true, title: { display: true, text: "req/s" } },
    y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "errors/s" } },
  });

  // A point drawn from a rolling window (the second had too few requests for its own
  // percentile, see the rule under the chart) is a hollow triangle; exact seconds have none.
  function gated(label, name, color) {
    const rolling = (ctx) => Boolean(ctx.dataset.rolling[ctx.dataIndex]);
    return line(label, name, color, {
      rolling: (tl.rolling[name] || []).slice(),
      pointStyle: (ctx) => (rolling(ctx) ? "triangle" : "circle"),
      pointRadius: (ctx) => (rolling(ctx) ? 3.5 : 0),
      pointHoverRadius: (ctx) => (rolling(ctx) ? 4.5 : 2),
      pointBackgroundColor: "#ffffff", pointBorderColor: color,
      pointBorderWidth: (ctx) => (rolling(ctx) ? 1.5 : 0),
    });
  }

  const latency = timeChart("chart-latency", [
    gated("p50", "p50", COLORS.p50), gated("p95", "p95", COLORS.p95),
    gated("p99", "p99", COLORS.p99), ...band("p99", COLORS.p99),
    { label: "△ rolling window (too few requests in the second)", data: [], rollingKey: true,
      borderColor: COLORS.target, backgroundColor: "#ffffff", borderWidth: 1.5 },
    line("service p50", "s50", COLORS.p50, { hidden: true, borderDash: [4, 3] }),
    line("service p95", "s95", COLORS.p95, { hidden: true, borderDash: [4, 3] }),
    line("service p99", "s99", COLORS.p99, { hidden: true, borderDash: [4, 3] }),
  ], { y: { beginAtZero: true, title: { display: true, text: "ms" } } });

  const load = timeChart("chart-load", openModel
    ? [line("in-flight, mean per second", "in_flight_mean", COLORS.users),
      line("in-flight, peak per second", "in_flight_max", COLORS.target, { borderDash: [4, 3] }),
      ...band("in_flight_max", COLORS.target)]
    : [line("active users", "users", COLORS.users),
      line("planned users", "target", COLORS.target, { borderDash: [4, 4] })],
  { y: { beginAtZero: true } });

  // Corrected latency is the truth for an open model; service time is what the server spent.
  document.getElementById("toggle-service").addEventListener("change", function (event) {
    const service = event.target.checked;
    latency.data.datasets.forEach(function (ds) {
      if (!ds.series) return;
      const isService = ds.series.charAt(0) === "s";
      ds.hidden = isService ? !service : service;
    });
    latency.update("none");
  });

  const distribution = new Chart(document.getElementById("chart-distribution"), {
    type: "bar",
    data: { labels: [], datasets: [
      { label: "latency", data: [], backgroundColor: COLORS.rps },
      { label: "service time", data: [], backgroundColor: COLORS.service, hidden: true },
    ] },
    options: {
      plugins: { legend: drawnOnly },
      scales: {
        x: { title: { display: true, text: "ms (bucket upper bound)" } },
        y: { beginAtZero: true, title: { display: true, text: "requests" } },
      },
    },
  });

  const spectrum = new Chart(document.getElementById("chart-spectrum"), {
    type: "line",
    data: { datasets: [
      { label: "latency (corrected)", data: [], borderColor: COLORS.rps, backgroundColor: COLORS.rps, pointRadius: 0, borderWidth: 1.5 },
      { label: "service time", data: [], borderColor: COLORS.service, backgroundColor: COLORS.service, pointRadius: 0, borderWidth: 1.5 },
    ] },
    options: {
      interaction: { mode: "nearest", intersect: false },
      plugins: { tooltip: { callbacks: { title: (items) => items.length ? "p" + items[0].raw.p : "" } } },
      scales: {
        x: { type: "linear", min: 0, max: 6, ticks: { stepSize: 1, callback: (v) => SPECTRUM_TICKS[v] || "" },
          title: { display: true, text: "percentile" } },
        y: { beginAtZero: true, title: { display: true, text: "ms" } },
      },
    },
  });

  // A chart with nothing to draw is hidden behind a one-line note (the server sets both at
  // first draw); the chart appears once it has data, the note says what is missing.
  function showChart(chart, hasData, text) {
    const box = chart.canvas.parentElement;
    const note = document.querySelector('[data-empty-for="' + chart.canvas.id + '"]');
    if (text) note.textContent = text;
    note.hidden = hasData;
    if (box.hidden === hasData) {
      box.hidden = !hasData;
      if (hasData) chart.resize();
    }
  }

  function drawHistograms(lat, svc, emptyText) {
    const buckets = lat.distribution.length ? lat.distribution : svc.distribution;
    const byUpper = new Map(svc.distribution.map((b) => [b.hi, b.count]));
    distribution.data.labels = buckets.map((b) => b.label || String(b.hi));
    distribution.data.datasets[0].data = lat.distribution.map((b) => b.count);
    distribution.data.datasets[1].data = buckets.map((b) => byUpper.get(b.hi) || 0);
    distribution.update("none");
    spectrum.data.datasets[0].data = lat.spectrum;
    spectrum.data.datasets[1].data = svc.spectrum;
    spectrum.update("none");
    showChart(distribution, lat.distribution.length > 0, emptyText);
    showChart(spectrum, lat.spectrum.length > 0, emptyText);
  }
  drawHistograms(data.latency, data.service, data.histogram_empty_text);

  // -- live updates ------------------------------------------------------------------------
  let lastIndex = data.last_index;
  const liveCharts = [throughput, latency, load];

  // New seconds come in the page's own timeline shape; a band follows its line when not
  // downsampled (its min and max are the values themselves).
  function append(timeline, last) {
    liveCharts.forEach(function (chart) {
      chart.data.datasets.forEach(function (ds) {
        if (!ds.series) return;
        if (ds.rolling) ds.rolling.push(...(timeline.rolling[ds.series] || timeline.x.map(() => false)));
        const values = timeline.series[ds.series];
        const ys = values[ds.bandKey || "mean"] || values.mean;
        timeline.x.forEach(function (x, i) { ds.data.push({ x: x, y: ys[i] }); });
      });
    });
    lastIndex = Math.max(lastIndex, last);
    if (timeline.x.length) {
      liveCharts.forEach(function (chart) {
        showChart(chart, true);
        chart.update("none");
      });
    }
  }

  function showState(state) {
    const badge = document.getElementById("run-status");
    badge.textContent = state.status;
    badge.className = "badge " + state.status;
    document.getElementById("progress-bar").style.width = state.progress_pct + "%";
    document.getElementById("progress-text").textContent =
      Math.round(state.elapsed_s || 0) + " s of " + state.planned_s + " s";
    document.getElementById("live-requests").textContent = state.requests;
    document.getElementById("live-errors").textContent = state.errors;
    document.getElementById("stat-requests").textContent = state.requests;
    document.getElementById("stat-errors").textContent = state.errors;
    const reason = document.getElementById("status-reason");
    reason.textContent = state.status_reason || "";
    reason.hidden = !state.status_reason;
    // Queued: who is there to take the run, how long it has waited, when it gives up.
    const waiting = document.getElementById("run-waiting");
    waiting.textContent = state.waiting ? state.waiting.message : "";
    waiting.hidden = !state.waiting;
  }

  function finish(state) {
    document.getElementById("run-progress").hidden = true;
    const cancel = document.getElementById("cancel-form");
    if (cancel) cancel.remove();
    // Offered once the run has ended, when it has a baseline to compare with.
    const compare = document.getElementById("compare-link");
    if (compare) compare.hidden = false;
    document.getElementById("run-summary").innerHTML = state.summary_html;
    drawHistograms(state.latency, state.service, state.empty_text);
    // A run that ends without a second stored never had a chart to show.
    if (lastIndex < 0) liveCharts.forEach((chart) => showChart(chart, false, state.empty_text));
    root.dataset.state = "finished";
  }

  function delay() {
    return document.hidden ? 5000 : 1000;
  }

  let timer = null;
  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    let state;
    try {
      const response = await fetch(root.dataset.liveUrl + "?after=" + lastIndex, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      state = await response.json();
    } catch (error) {
      root.dataset.liveError = String(error);
      schedule(5000);
      return;
    }
    append(state.timeline, state.last_index);
    showState(state);
    // Percentiles and errors so far, from the merged histogram of the seconds stored.
    if (state.live_summary_html) {
      document.getElementById("run-summary").innerHTML = state.live_summary_html;
      root.dataset.liveSummary = "shown";
    }
    // A long catch-up arrives in pages of max_points seconds: ask again at once until complete.
    if (state.timeline.x.length >= data.max_points) return schedule(0);
    if (state.active) return schedule(delay());
    finish(state);
  }

  if (data.active) {
    document.getElementById("progress-bar").style.width = "0%";
    document.addEventListener("visibilitychange", function () {
      if (root.dataset.state === "live") schedule(document.hidden ? 5000 : 0);
    });
    schedule(0);
  }
})();

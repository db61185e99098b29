// Cache page: per strategy, each second's hit rate (left axis, %) and p50/p99 operation
// latency (right axis, ms); load-test runs drawn as shaded bands that open the run on click.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("cache-history-data").textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  const RUN_FILL = "rgba(9, 105, 218, 0.10)";
  const RUN_EDGE = "rgba(9, 105, 218, 0.55)";

  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hourCycle: "h23" });
  }

  // A run still going ends "now" on the chart.
  function runSpan(run) {
    return [Math.max(run.start, data.start), run.end === null ? data.end : Math.min(run.end, data.end)];
  }

  const runBands = {
    id: "runBands",
    beforeDatasetsDraw(chart) {
      const { ctx, chartArea, scales } = chart;
      ctx.save();
      data.runs.forEach((run) => {
        const [from, to] = runSpan(run).map((t) => scales.x.getPixelForValue(t));
        const left = Math.max(from, chartArea.left);
        const right = Math.min(Math.max(to, left + 2), chartArea.right);
        ctx.fillStyle = RUN_FILL;
        ctx.fillRect(left, chartArea.top, right - left, chartArea.bottom - chartArea.top);
        ctx.strokeStyle = RUN_EDGE;
        ctx.beginPath();
        ctx.moveTo(left, chartArea.top);
        ctx.lineTo(left, chartArea.bottom);
        ctx.stroke();
        ctx.fillStyle = RUN_EDGE;
        ctx.font = "11px sans-serif";
        ctx.fillText("#" + run.id, left + 3, chartArea.top + 11);
      });
      ctx.restore();
    },
  };

  function runAt(seconds) {
    return data.runs.find((run) => {
      const [from, to] = runSpan(run);
      return seconds >= from && seconds <= to;
    });
  }

  function draw(strategy) {
    const canvas = document.getElementById("cache-chart-" + strategy.name);
    if (!canvas) return;
    const points = (key) => strategy.points.map((p) => ({ x: p.t, y: p[key] }));
    new Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          { label: "hit rate %", data: points("hit_rate"), yAxisID: "rate",
            borderColor: "#1a7f37", backgroundColor: "#1a7f37", pointRadius: 1.5, borderWidth: 1.5 },
          { label: "p50 ms", data: points("p50_ms"), yAxisID: "ms",
            borderColor: "#8250df", backgroundColor: "#8250df", pointRadius: 1.5, borderWidth: 1 },
          { label: "p99 ms", data: points("p99_ms"), yAxisID: "ms",
            borderColor: "#bc4c00", backgroundColor: "#bc4c00", pointRadius: 1.5, borderWidth: 1 },
        ],
      },
      options: {
        parsing: false,
        spanGaps: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", min: data.start, max: data.end,
               ticks: { callback: (value) => clock(value), maxTicksLimit: 6 } },
          rate: { position: "left", min: 0, max: 100, title: { display: true, text: "hit rate %" } },
          ms: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                title: { display: true, text: "latency ms" } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { title: (items) => items.length ? clock(items[0].parsed.x) : "" } },
        },
        onClick(event, elements, chart) {
          const seconds = chart.scales.x.getValueForPixel(event.x);
          const run = runAt(seconds);
          if (run) window.location.href = run.url;
        },
      },
      plugins: [runBands],
    });
  }

  data.strategies.forEach(draw);
})();

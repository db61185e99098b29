// A monitored target's page: memory, CPU/threads/files and GC over the chosen window, with
// load-test runs as shaded bands and restarts as dashed lines. The server shapes every series
// (x: ms since the epoch; null where a restart breaks the line).
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("target-data").textContent);
  const runs = JSON.parse(document.getElementById("target-runs").textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;
  const week = data.to - data.from > 2 * 86400 * 1000;

  function label(ms) {
    const d = new Date(ms);
    const hm = d.toTimeString().slice(0, 5);
    return week ? d.toISOString().slice(5, 10) + " " + hm : hm;
  }

  function points(values) {
    return data.t.map((t, i) => ({ x: t, y: values[i] }));
  }

  // Runs as shaded bands, restarts as dashed vertical lines, under the data.
  const events = {
    id: "events",
    beforeDatasetsDraw: function (chart) {
      const x = chart.scales.x;
      const area = chart.chartArea;
      const ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(31, 111, 235, 0.08)";
      runs.forEach((run) => {
        const left = Math.max(x.getPixelForValue(run.from), area.left);
        const right = Math.min(x.getPixelForValue(run.to), area.right);
        if (right > left) ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
      });
      ctx.strokeStyle = "#cf222e";
      ctx.setLineDash([4, 4]);
      data.restarts.forEach((restart) => {
        const at = x.getPixelForValue(restart.t);
        if (at < area.left || at > area.right) return;
        ctx.beginPath();
        ctx.moveTo(at, area.top);
        ctx.lineTo(at, area.bottom);
        ctx.stroke();
      });
      ctx.restore();
    },
  };

  function line(label, values, color, extra) {
    return Object.assign(
      { label: label, data: points(values), borderColor: color, backgroundColor: color,
        pointRadius: 0, borderWidth: 1.5, spanGaps: false },
      extra || {}
    );
  }

  function draw(id, datasets, scales) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        interaction: { mode: "nearest", intersect: false },
        scales: Object.assign(
          { x: { type: "linear", min: data.from, max: data.to, ticks: { callback: label, maxTicksLimit: 8 } } },
          scales
        ),
      },
      plugins: [events],
    });
  }

  draw("chart-target-memory", [
    line("RSS", data.rss_mb, "#1f6feb"),
    line("RSS max", data.rss_max_mb, "#9ec5fe", { borderDash: [3, 3] }),
    line("USS", data.uss_mb, "#8250df"),
  ], { y: { title: { display: true, text: "MB" } } });

  draw("chart-target-cpu", [
    line("CPU %", data.cpu_pct, "#bf8700", { yAxisID: "y" }),
    line("threads", data.threads, "#1a7f37", { yAxisID: "y2" }),
    line("open files", data.open_files, "#57606a", { yAxisID: "y2" }),
  ], {
    y: { title: { display: true, text: "CPU %" }, position: "left" },
    y2: { title: { display: true, text: "count" }, position: "right", grid: { drawOnChartArea: false } },
  });

  const colors = ["#1f6feb", "#bf8700", "#cf222e"];
  const gc = [];
  [0, 1, 2].forEach((g) => {
    gc.push(line("gen " + g + " collections", data.gc.collections[g], colors[g], { yAxisID: "y" }));
    gc.push(line("gen " + g + " pause ms", data.gc.pause_ms[g], colors[g], { yAxisID: "y2", borderDash: [4, 3] }));
  });
  draw("chart-target-gc", gc, {
    y: { title: { display: true, text: "collections" }, position: "left" },
    y2: { title: { display: true, text: "pause ms" }, position: "right", grid: { drawOnChartArea: false } },
  });
})();

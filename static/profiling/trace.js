// Trace capture page: a timeline per thread drawn on a canvas from the first chrometrace
// events the server passed ([thread index, phase, µs, duration µs, name]). "B"/"E" pairs and
// "X" events become bars; a thread's stack grows downwards in its lane. Hover names a bar.
(function () {
  "use strict";

  const ROW = 9;
  const LANE_HEAD = 18;
  const canvas = document.getElementById("trace-timeline");
  const tip = document.getElementById("trace-tip");
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const ctx = canvas.getContext("2d");
  let drawn = [];

  function spansOf() {
    const lanes = data.threads.map((thread) => ({ thread: thread, spans: [], open: [], depth: 0 }));
    let first = Infinity, last = -Infinity;
    data.events.forEach(function (event) {
      const lane = lanes[event[0]], phase = event[1], ts = event[2], dur = event[3], name = event[4];
      first = Math.min(first, ts);
      last = Math.max(last, ts + (dur || 0));
      if (phase === "B") {
        lane.open.push({ name: name, start: ts, depth: lane.open.length });
      } else if (phase === "E") {
        const span = lane.open.pop();
        if (span) lane.spans.push(Object.assign(span, { end: ts }));
      } else {
        // "X": complete events nest by time within their thread.
        lane.closing = (lane.closing || []).filter((end) => end > ts);
        lane.spans.push({ name: name, start: ts, end: ts + (dur || 0), depth: lane.closing.length });
        lane.closing.push(ts + (dur || 0));
      }
    });
    // Stacks still open where the events handed to the page stop end at the last timestamp.
    lanes.forEach(function (lane) {
      lane.open.forEach((span) => lane.spans.push(Object.assign(span, { end: last })));
      lane.depth = Math.max(0, ...lane.spans.map((s) => s.depth + 1));
    });
    return { lanes: lanes, first: first, last: last };
  }

  function colour(name) {
    let hash = 0;
    for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
    return "hsl(" + (190 + Math.abs(hash) % 120) + ", 60%, " + (55 + Math.abs(hash >> 8) % 15) + "%)";
  }

  const timeline = spansOf();

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.parentElement.clientWidth;
    const height = timeline.lanes.reduce((h, lane) => h + LANE_HEAD + Math.max(lane.depth, 1) * ROW + 6, 0);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const span = Math.max(timeline.last - timeline.first, 1);
    const scale = width / span;
    drawn = [];
    let top = 0;
    timeline.lanes.forEach(function (lane) {
      ctx.fillStyle = "#1f2328";
      ctx.font = "600 11px system-ui, sans-serif";
      ctx.textBaseline = "top";
      ctx.fillText(lane.thread.name + " (" + lane.spans.length + " spans)", 2, top + 3);
      const laneTop = top + LANE_HEAD;
      lane.spans.forEach(function (s) {
        const x = (s.start - timeline.first) * scale;
        const w = Math.max((s.end - s.start) * scale, 1);
        const y = laneTop + s.depth * ROW;
        ctx.fillStyle = colour(s.name);
        ctx.fillRect(x, y, w, ROW - 1);
        drawn.push({ span: s, x: x, y: y, w: w });
      });
      top = laneTop + Math.max(lane.depth, 1) * ROW + 6;
    });
    canvas.dataset.drawn = String(drawn.length);
  }

  canvas.addEventListener("mousemove", function (event) {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left, y = event.clientY - box.top;
    // Last drawn wins: the deepest bar under the pointer.
    let hit = null;
    for (const d of drawn) if (x >= d.x && x < d.x + d.w && y >= d.y && y < d.y + ROW) hit = d;
    if (!hit) { tip.hidden = true; return; }
    const ms = ((hit.span.end - hit.span.start) / 1000).toFixed(2);
    const at = ((hit.span.start - timeline.first) / 1000).toFixed(1);
    tip.textContent = hit.span.name + " — " + ms + " ms, from " + at + " ms";
    tip.hidden = false;
    tip.style.left = Math.min(x + 12, box.width - 320) + "px";
    tip.style.top = (y + 14) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  window.addEventListener("resize", draw);
  draw();
})();

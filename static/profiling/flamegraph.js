// CPU and allocation capture pages: a flame graph drawn on a canvas from the server's pruned
// flame tree ({name, value, children}, root "all", then frames root first; a CPU profile has
// its threads under the root). The canvas' data-unit says what a value counts ("samples", the
// default, or "bytes"). Our own small
// renderer: no library, no CDN. Click a frame to zoom into it, click the root to reset; hover
// shows the frame's name, samples and share. The canvas carries data-drawn (frames drawn) and
// data-focus (the zoomed frame's path) so that tests and tools can see what it shows.
(function () {
  "use strict";

  const ROW = 18;
  const MIN_TEXT_PX = 28;
  const canvas = document.getElementById("flamegraph");
  const tip = document.getElementById("flame-tip");
  const root = JSON.parse(document.getElementById("flame-data").textContent);
  const ctx = canvas.getContext("2d");
  const unit = canvas.dataset.unit || "samples";
  let focus = root;
  let drawn = [];

  // Parents, positions (fractions of the root) and depth, once: the tree is small (pruned).
  function layout(node, parent, x, depth) {
    node.parent = parent;
    node.x = x;
    node.w = root.value ? node.value / root.value : 0;
    node.depth = depth;
    let childX = x;
    (node.children || []).forEach(function (child) {
      layout(child, node, childX, depth + 1);
      childX += child.w;
    });
  }

  function maxDepth(node) {
    return Math.max(node.depth, ...(node.children || []).map(maxDepth));
  }

  function path(node) {
    const names = [];
    for (let n = node; n; n = n.parent) names.unshift(n.name);
    return names.join(";");
  }

  function isAncestor(node, of) {
    for (let n = of; n; n = n.parent) if (n === node) return true;
    return false;
  }

  // Warm colours, stable per name, as flame graphs traditionally use.
  function colour(name) {
    let hash = 0;
    for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
    const hue = 10 + Math.abs(hash) % 45;
    const light = 55 + Math.abs(hash >> 8) % 15;
    return "hsl(" + hue + ", 85%, " + light + "%)";
  }

  function label(name, width) {
    if (width < MIN_TEXT_PX) return "";
    const fits = Math.floor((width - 6) / 6.5);
    return name.length <= fits ? name : name.slice(0, Math.max(0, fits - 1)) + "…";
  }

  layout(root, null, 0, 0);
  const depth = maxDepth(root);

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.parentElement.clientWidth;
    const height = (depth + 1) * ROW;
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px ui-monospace, monospace";
    ctx.textBaseline = "middle";
    drawn = [];
    const scale = focus.w ? width / focus.w : 0;
    visit(root, function (node) {
      // Shown: the focus' ancestors (full width, muted) and its subtree (zoomed).
      const ancestor = isAncestor(node, focus) && node !== focus;
      if (!ancestor && !isAncestor(focus, node)) return false;
      const x = ancestor ? 0 : (node.x - focus.x) * scale;
      const w = ancestor ? width : node.w * scale;
      if (w < 0.5) return false;
      const y = height - (node.depth + 1) * ROW;
      ctx.fillStyle = ancestor ? "#d0d7de" : colour(node.name);
      ctx.fillRect(x, y, Math.max(w - 1, 0.5), ROW - 1);
      ctx.fillStyle = "#1f2328";
      ctx.fillText(label(node.name, w), x + 3, y + ROW / 2);
      drawn.push({ node: node, x: x, y: y, w: w });
      return true;
    });
    canvas.dataset.drawn = String(drawn.length);
    canvas.dataset.focus = path(focus);
  }

  function visit(node, fn) {
    if (!fn(node)) return;
    (node.children || []).forEach((child) => visit(child, fn));
  }

  function frameAt(event) {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    return drawn.find((d) => x >= d.x && x < d.x + d.w && y >= d.y && y < d.y + ROW);
  }

  function amount(value) {
    if (unit !== "bytes") return value + " " + unit;
    // As the page's tables print them (Django's filesizeformat: powers of 1024).
    const steps = ["bytes", "KB", "MB", "GB"];
    let shown = value;
    let step = 0;
    while (shown >= 1024 && step < steps.length - 1) {
      shown /= 1024;
      step += 1;
    }
    return (step ? shown.toFixed(1) : String(shown)) + " " + steps[step];
  }

  canvas.addEventListener("click", function (event) {
    const hit = frameAt(event);
    if (!hit) return;
    focus = hit.node === root ? root : hit.node;
    draw();
  });

  canvas.addEventListener("mousemove", function (event) {
    const hit = frameAt(event);
    if (!hit) {
      tip.hidden = true;
      canvas.style.cursor = "default";
      return;
    }
    const node = hit.node;
    const share = root.value ? (100 * node.value / root.value).toFixed(2) : "0";
    const ofFocus = focus.value ? (100 * node.value / focus.value).toFixed(2) : "0";
    tip.textContent = node.name + " — " + amount(node.value) + ", " + share + "% of all" +
      (focus !== root ? ", " + ofFocus + "% of the zoomed frame" : "");
    tip.hidden = false;
    const box = canvas.getBoundingClientRect();
    tip.style.left = Math.min(event.clientX - box.left + 12, box.width - 320) + "px";
    tip.style.top = (event.clientY - box.top + 14) + "px";
    canvas.style.cursor = "pointer";
  });

  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  window.addEventListener("resize", draw);
  draw();
})();

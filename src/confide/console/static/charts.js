// Confide console charts: dependency-free inline SVG. Every export returns an SVGSVGElement with a viewBox
// (style it `width: 100%; height: auto`), role="img", an aria-label, a <title> and a data-testid. All visible
// text comes from the caller (`labels`) and is set with textContent, never parsed as markup.

const NS = "http://www.w3.org/2000/svg";
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "PingFang SC", "Microsoft YaHei", sans-serif';
const C = {
  text: "#1f2d3d", muted: "#5f6b7a", axis: "#8a96a3", grid: "#e6eaef", bar: "#3b7fc0",
  curve: "#1668a8", chance: "#9aa5b1", edge: "#98a4b3", bad: "#d64545", good: "#2e9e5b",
};
const W = 640;
const H = 360;
const BOLD = 1.12; // width factor for bold text estimates
const SMALL = { fill: C.muted, "font-size": 11 };
const DASHED = { stroke: C.chance, "stroke-width": 1.5, "stroke-dasharray": "5 4" };
/** Sequential light → dark blue scale stops for the heatmap. */
const BLUES = [[0, [239, 246, 252]], [0.35, [158, 202, 225]], [0.7, [58, 127, 192]], [1, [11, 52, 112]]];
/** Provenance column order and per-kind [fill, stroke]. */
const KINDS = ["dataset", "grant", "task", "run", "approval", "release"];
const KIND_COLORS = {
  dataset: ["#e4f4f1", "#2a9d8f"], grant: ["#e6f0fb", "#3a7bd5"], task: ["#eceefb", "#5c6bc0"],
  run: ["#e6f2f7", "#2b7a9b"], approval: ["#f0edf9", "#7e63b8"], release: ["#e5f4ec", "#2e7d5b"],
};
const OTHER_COLORS = ["#f1f3f5", "#868e96"];

/** Create an SVG element with attributes (null/undefined skipped), optionally appended to parent. */
function el(tag, attrs = {}, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

/** Append a <text>; content goes through textContent only. */
function txt(parent, x, y, content, attrs = {}) {
  const t = el("text", { x, y, fill: C.text, "font-size": 12, ...attrs }, parent);
  t.textContent = content == null ? "" : String(content);
  return t;
}

/** Append a <line>. */
const line = (parent, x1, y1, x2, y2, attrs = {}) => el("line", { x1, y1, x2, y2, ...attrs }, parent);

/** Append a <title> tooltip child; returns the parent. */
function tip(parent, content) {
  el("title", {}, parent).textContent = String(content ?? "");
  return parent;
}

/** Linear scale from domain [d0,d1] to range [r0,r1]. */
const scale = (d0, d1, r0, r1) => (v) => r0 + (d1 === d0 ? 0 : ((v - d0) * (r1 - r0)) / (d1 - d0));
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const uid = (p) => `${p}-${Math.random().toString(36).slice(2, 10)}`;
const fmt = (v, digits = 2) => Number(v).toLocaleString(undefined, { maximumFractionDigits: digits });
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Rough rendered width of a string in px (CJK ~1em, Latin ~0.6em; errs wide). */
function textWidth(s, size) {
  let w = 0;
  for (const ch of String(s ?? "")) {
    w += ch.codePointAt(0) >= 0x2e80 ? 1 : /[MW@%—]/.test(ch) ? 0.9 : /[A-Z0-9#&mw]/.test(ch) ? 0.66
      : /[il.,:;'|! ]/.test(ch) ? 0.32 : 0.57;
  }
  return w * size;
}

/** Shorten a string with an ellipsis to fit maxPx at a font size and at most maxChars characters. */
function truncate(s, maxPx, size, maxChars = Infinity) {
  const chars = Array.from(String(s ?? ""));
  if (chars.length <= maxChars && textWidth(s, size) <= maxPx) return chars.join("");
  let out = "";
  for (const ch of chars) {
    if (Array.from(out).length + 1 >= maxChars || textWidth(out + ch + "…", size) > maxPx) break;
    out += ch;
  }
  return out.trimEnd() + "…";
}

/** About `count` "nice" ticks within [lo, hi]; extend=true widens the domain to whole steps. */
function ticks(lo, hi, count, extend = false) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const err = raw / pow;
  const step = pow * (err >= 7.07 ? 10 : err >= 3.16 ? 5 : err >= 1.41 ? 2 : 1);
  const digits = clamp(-Math.floor(Math.log10(step) + 1e-9), 0, 20);
  const first = extend ? Math.floor(lo / step + 1e-9) : Math.ceil(lo / step - 1e-9);
  const last = extend ? Math.ceil(hi / step - 1e-9) : Math.floor(hi / step + 1e-9);
  const values = [];
  for (let i = first; i <= last; i++) values.push(+(i * step).toFixed(digits));
  return { values, digits, hi: extend ? values[values.length - 1] : hi };
}

/** Root <svg> with accessibility attributes and a visible (truncated) title. */
function frame(width, height, testid, title, titleMax = width - 24) {
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || testid,
    "data-testid": testid, "font-family": FONT, preserveAspectRatio: "xMidYMid meet",
  });
  tip(svg, title || "");
  if (title) txt(svg, 12, 24, truncate(title, titleMax, 15 * BOLD), { "font-size": 15, "font-weight": 600 });
  return svg;
}

/** Centred "no data" message. */
function emptyText(svg, x, y, labels) {
  txt(svg, x, y, labels.empty ?? "No data",
    { "text-anchor": "middle", fill: C.muted, "font-size": 14, "data-testid": "chart-empty" });
  return svg;
}

/** Plot box leaving room for y tick labels of the given strings. */
function plotBox(yLabels) {
  const widest = Math.max(0, ...yLabels.map((s) => textWidth(s, 11)));
  return { x0: Math.max(56, Math.round(widest + 36)), x1: W - 24, y0: 48, y1: H - 58 };
}

/** Show every n-th tick label so that labels `need` px apart do not overlap. */
const every = (vals, f, need) => (vals.length > 1 ? Math.max(1, Math.ceil(need / Math.abs(f(vals[1]) - f(vals[0])))) : 1);

/**
 * Grid, ticks, tick labels and axis titles. Returns a group placed above the
 * grid and below the axis lines, for the data marks.
 */
function axes(svg, box, x, y, xt, yt, labels, xfmt, yfmt, vgrid = false) {
  const grid = el("g", { stroke: C.grid }, svg);
  const plot = el("g", {}, svg);
  const ax = el("g", { stroke: C.axis }, svg);
  const yEvery = every(yt, y, 16);
  yt.forEach((v, i) => {
    line(grid, box.x0, y(v), box.x1, y(v));
    if (i % yEvery === 0) txt(svg, box.x0 - 8, y(v) + 4, yfmt(v), { ...SMALL, "text-anchor": "end" });
  });
  const xs = xt.map(xfmt);
  const xEvery = every(xt, x, Math.max(0, ...xs.map((s) => textWidth(s, 11))) + 12);
  xt.forEach((v, i) => {
    if (vgrid) line(grid, x(v), box.y0, x(v), box.y1);
    line(ax, x(v), box.y1, x(v), box.y1 + 5);
    const half = textWidth(xs[i], 11) / 2; // keep edge labels inside the viewBox
    if (i % xEvery) return;
    txt(svg, clamp(x(v), half + 2, W - half - 2), box.y1 + 19, xs[i], { ...SMALL, "text-anchor": "middle" });
  });
  line(ax, box.x0, box.y1, box.x1, box.y1);
  line(ax, box.x0, box.y0, box.x0, box.y1);
  axisTitles(svg, box, labels);
  return plot;
}

/** Axis titles: x centred under the plot, y rotated along the left edge (at box.titleX). */
function axisTitles(svg, box, labels) {
  const cy = (box.y0 + box.y1) / 2;
  const tx = box.titleX ?? 18;
  const attrs = { "text-anchor": "middle", fill: C.muted };
  if (labels.x) txt(svg, (box.x0 + box.x1) / 2, H - 14, truncate(labels.x, box.x1 - box.x0, 12), attrs);
  if (labels.y) {
    txt(svg, tx, cy, truncate(labels.y, box.y1 - box.y0, 12), { ...attrs, transform: `rotate(-90 ${tx} ${cy})` });
  }
}

/** Empty cartesian plot: frame, axis titles and a centred "no data" message. */
function emptyPlot(svg, labels) {
  const box = plotBox([]);
  const [width, height] = [box.x1 - box.x0, box.y1 - box.y0];
  el("rect", { x: box.x0, y: box.y0, width, height, fill: "none", stroke: C.grid }, svg);
  axisTitles(svg, box, labels);
  return emptyText(svg, (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2 + 5, labels);
}

/**
 * Histogram of numeric values (non-numbers ignored; values outside [min, max] dropped).
 * @param {Array<number|null>} values
 * @param {{bins?: number, min?: number, max?: number, labels?: {title?, x?, y?, empty?}}} [opts]
 * @returns {SVGSVGElement}
 */
export function histogram(values, { bins = 20, min, max, labels = {} } = {}) {
  const svg = frame(W, H, "chart-histogram", labels.title);
  const data = (values || []).filter(isNum);
  if (!data.length) return emptyPlot(svg, labels);
  let lo = isNum(min) ? min : data.reduce((a, b) => (b < a ? b : a), Infinity);
  let hi = isNum(max) ? max : data.reduce((a, b) => (b > a ? b : a), -Infinity);
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const n = Math.max(1, Math.floor(bins) || 1);
  const width = (hi - lo) / n;
  const counts = new Array(n).fill(0);
  for (const v of data) if (v >= lo && v <= hi) counts[Math.min(n - 1, Math.floor((v - lo) / width))]++;
  const yt = ticks(0, Math.max(1, ...counts), 4, true);
  const yv = yt.values.filter(Number.isInteger);
  const box = plotBox(yv.map((v) => fmt(v, 0)));
  const x = scale(lo, hi, box.x0, box.x1);
  const y = scale(0, yt.hi, box.y1, box.y0);
  const xt = ticks(lo, hi, 5);
  const plot = axes(svg, box, x, y, xt.values, yv, labels, (v) => fmt(v, xt.digits), (v) => fmt(v, 0));
  const d = Math.max(0, 1 - Math.floor(Math.log10(width)));
  counts.forEach((c, i) => {
    const a = lo + i * width;
    const bw = x(a + width) - x(a);
    const inset = bw > 3 ? 0.5 : 0; // hairline gap between bars when there is room
    const bar = { x: x(a) + inset, y: y(c), width: Math.max(0.5, bw - 2 * inset), height: box.y1 - y(c), fill: C.bar };
    tip(el("rect", bar, plot), `${fmt(a, d)} – ${fmt(a + width, d)}: ${c.toLocaleString()}`);
  });
  return svg;
}

/**
 * ROC curve from [fpr, tpr] pairs in [0,1] (sorted here; [0,0] and [1,1] added if missing).
 * @param {Array<[number, number]>} points
 * @param {{auc?: number|string, labels?: {title?, x?, y?, chance?, auc?}}} [opts]
 * @returns {SVGSVGElement}
 */
export function rocCurve(points, { auc, labels = {} } = {}) {
  const svg = frame(W, H, "chart-roc", labels.title);
  const pts = (points || [])
    .filter((p) => Array.isArray(p) && isNum(p[0]) && isNum(p[1]))
    .map(([f, t]) => [clamp(f, 0, 1), clamp(t, 0, 1)])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (!pts.length || pts[0][0] !== 0 || pts[0][1] !== 0) pts.unshift([0, 0]);
  const last = pts[pts.length - 1];
  if (last[0] !== 1 || last[1] !== 1) pts.push([1, 1]);
  const tv = [0, 0.25, 0.5, 0.75, 1];
  const tf = (v) => fmt(v, 2);
  const aucText = auc != null && auc !== "" ? `${labels.auc ?? "AUC"} = ${isNum(auc) ? fmt(auc, 3) : auc}` : "";
  // Square plot area, centred together with the legend on its right.
  const base = plotBox(tv.map(tf));
  const side = base.y1 - base.y0;
  const legendW = 32 + Math.min(168, Math.max(textWidth(aucText, 14 * BOLD), textWidth(labels.chance ?? "", 12)));
  const shift = Math.max(0, (W - 24 - (base.x0 + side + 32 + legendW)) / 2);
  const box = { ...base, x0: base.x0 + shift, x1: base.x0 + shift + side, titleX: 18 + shift };
  const x = scale(0, 1, box.x0, box.x1);
  const y = scale(0, 1, box.y1, box.y0);
  const plot = axes(svg, box, x, y, tv, tv, labels, tf, tf, true);
  line(plot, x(0), y(0), x(1), y(1), DASHED);
  const coords = pts.map(([f, t]) => `${x(f).toFixed(1)},${y(t).toFixed(1)}`);
  el("path", { d: `M${coords.join("L")}L${x(1)},${y(0)}L${x(0)},${y(0)}Z`, fill: C.curve, "fill-opacity": 0.08 }, plot);
  const curve = { fill: "none", stroke: C.curve, "stroke-width": 2.25, "stroke-linejoin": "round" };
  el("polyline", { points: coords.join(" "), ...curve }, plot);
  for (const [f, t] of pts) {
    const dot = el("circle", { cx: x(f), cy: y(t), r: 2.5, fill: "#fff", stroke: C.curve, "stroke-width": 1.25 }, plot);
    tip(dot, `${labels.x ?? "FPR"}: ${fmt(f, 3)}, ${labels.y ?? "TPR"}: ${fmt(t, 3)}`);
  }
  const lx = box.x1 + 32;
  const maxW = W - 12 - lx - 32;
  const legend = el("g", { "data-testid": "roc-legend" }, svg);
  if (aucText) {
    line(legend, lx, box.y0 + 16, lx + 24, box.y0 + 16, curve);
    txt(legend, lx + 32, box.y0 + 21, truncate(aucText, maxW, 14 * BOLD), { "font-size": 14, "font-weight": 600 });
  }
  if (labels.chance) {
    line(legend, lx, box.y0 + 44, lx + 24, box.y0 + 44, DASHED);
    txt(legend, lx + 32, box.y0 + 48, truncate(labels.chance, maxW, 12), { fill: C.muted });
  }
  return svg;
}

/**
 * Vertical bar chart of [category, count] entries, count above each bar.
 * @param {Array<[string, number]>} entries
 * @param {{labels?: {title?, x?, y?, empty?}}} [opts]
 * @returns {SVGSVGElement}
 */
export function barChart(entries, { labels = {} } = {}) {
  const svg = frame(W, H, "chart-bars", labels.title);
  const rows = (entries || []).filter(Array.isArray).map(([k, v]) => [String(k ?? ""), isNum(v) ? v : 0]);
  if (!rows.length) return emptyPlot(svg, labels);
  const yt = ticks(0, Math.max(1, ...rows.map((r) => r[1])), 4, true);
  const yv = rows.every((r) => Number.isInteger(r[1])) ? yt.values.filter(Number.isInteger) : yt.values;
  const yfmt = (v) => fmt(v, yt.digits);
  const box = plotBox(yv.map(yfmt));
  const step = (box.x1 - box.x0) / rows.length;
  const tilt = rows.some(([k]) => textWidth(k, 12) > step - 6); // slanted category labels need more room
  if (tilt) box.y1 -= 40;
  const y = scale(0, yt.hi, box.y1, box.y0);
  const plot = axes(svg, box, () => box.x0, y, [], yv, labels, String, yfmt);
  const bw = Math.min(72, step * 0.62);
  rows.forEach(([name, count], i) => {
    const cx = box.x0 + step * (i + 0.5);
    const top = y(Math.max(0, count));
    const countText = count.toLocaleString();
    const bar = { x: cx - bw / 2, y: top, width: bw, height: box.y1 - top, fill: C.bar, rx: 2 };
    tip(el("rect", bar, plot), `${name}: ${countText}`);
    if (textWidth(countText, 11) <= step) {
      txt(plot, cx, top - 6, countText, { "text-anchor": "middle", "font-size": 11, "font-weight": 600 });
    }
    const slanted = { "text-anchor": "end", "font-size": 11, transform: `rotate(-35 ${cx + 4} ${box.y1 + 14})` };
    tip(tilt ? txt(svg, cx + 4, box.y1 + 14, truncate(name, 84, 11), slanted)
      : txt(svg, cx, box.y1 + 19, name, { "text-anchor": "middle" }), name);
  });
  return svg;
}

/** Colour [r, g, b] on the sequential blue scale for t in [0,1]. */
function blue(t) {
  const i = Math.max(1, BLUES.findIndex(([s]) => s >= t));
  const [[s0, c0], [s1, c1]] = [BLUES[i - 1], BLUES[i]];
  const k = s1 === s0 ? 0 : (t - s0) / (s1 - s0);
  return c0.map((c, j) => Math.round(c + (c1[j] - c) * k));
}

const rgb = (c) => `rgb(${c.join(",")})`;
/** Whether dark text reads better than white on colour c. */
const isLight = ([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b > 150;

/**
 * Heatmap of values[r][c] (null = suppressed cell, hatched with "—").
 * @param {string[]} rowLabels
 * @param {string[]} colLabels
 * @param {Array<Array<number|null>>} values
 * @param {{labels?: {title?, x?, y?, empty?}, format?: (v: number) => string}} [opts]
 * @returns {SVGSVGElement}
 */
export function heatmap(rowLabels, colLabels, values, { labels = {}, format } = {}) {
  const rows = (rowLabels || []).map((s) => String(s ?? ""));
  const cols = (colLabels || []).map((s) => String(s ?? ""));
  const f = typeof format === "function" ? format : (v) => fmt(v, 2);
  const cell = (r, c) => (isNum(values?.[r]?.[c]) ? values[r][c] : null);
  const nums = rows.flatMap((_, r) => cols.map((__, c) => cell(r, c))).filter((v) => v !== null);
  const lo = nums.length ? Math.min(...nums) : 0;
  const hi = nums.length ? Math.max(...nums) : 1;
  const [minText, maxText] = nums.length ? [f(lo), f(hi)] : ["—", "—"];
  // Legend at top right, "min [gradient] max"; the title gets the room left of it.
  const gx = W - 20 - textWidth(maxText, 11) - 6 - 96;
  const svg = frame(W, H, "chart-heatmap", labels.title, gx - textWidth(minText, 11) - 40);
  if (!rows.length || !cols.length) return emptyPlot(svg, labels);
  const rowW = Math.min(150, Math.max(...rows.map((s) => textWidth(s, 12))));
  const box = { x0: Math.round(36 + rowW + 8), x1: W - 20, y0: 48, y1: H - 58 };
  const cw = (box.x1 - box.x0) / cols.length;
  const ch = (box.y1 - box.y0) / rows.length;
  const size = clamp(Math.min(ch * 0.42, cw * 0.3), 9, 13);
  const gap = Math.min(1, cw / 8, ch / 8);
  const rowEvery = Math.ceil(14 / ch); // thin axis labels when cells get small
  const colEvery = Math.ceil((Math.min(80, Math.max(...cols.map((s) => textWidth(s, 12)))) + 8) / cw);
  const defs = el("defs", {}, svg);
  const hatch = uid("hatch");
  const pat = el("pattern",
    { id: hatch, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
  el("rect", { width: 6, height: 6, fill: "#eef0f3" }, pat);
  line(pat, 0, 0, 0, 6, { stroke: "#cdd3da", "stroke-width": 2 });
  const grad = uid("grad");
  const lg = el("linearGradient", { id: grad }, defs);
  BLUES.forEach(([s, c]) => el("stop", { offset: s, "stop-color": rgb(c) }, lg));
  const grid = el("g", {}, svg);
  rows.forEach((rl, r) => {
    const cy = box.y0 + ch * (r + 0.5);
    if (r % rowEvery === 0) tip(txt(svg, box.x0 - 8, cy + 4, truncate(rl, rowW, 12), { "text-anchor": "end" }), rl);
    cols.forEach((cl, c) => {
      const v = cell(r, c);
      const color = v === null ? null : blue(hi > lo ? (v - lo) / (hi - lo) : 0.5);
      const label = v === null ? "—" : f(v);
      const g = tip(el("g", { "data-row": r, "data-col": c }, grid), `${rl} · ${cl}: ${label}`);
      el("rect", {
        x: box.x0 + c * cw + gap, y: box.y0 + r * ch + gap, width: cw - 2 * gap, height: ch - 2 * gap,
        rx: Math.min(2, gap * 2), fill: color ? rgb(color) : `url(#${hatch})`,
      }, g);
      if (textWidth(label, size) <= cw - 6 && ch >= size + 4) {
        const fill = color ? (isLight(color) ? C.text : "#fff") : C.muted;
        txt(g, box.x0 + (c + 0.5) * cw, cy + size * 0.35, label, { "text-anchor": "middle", "font-size": size, fill });
      }
    });
  });
  cols.forEach((cl, c) => {
    if (c % colEvery) return;
    const name = truncate(cl, cw * colEvery - 6, 12);
    tip(txt(svg, box.x0 + (c + 0.5) * cw, box.y1 + 19, name, { "text-anchor": "middle" }), cl);
  });
  axisTitles(svg, box, labels);
  const legend = el("g", { "data-testid": "heatmap-legend" }, svg);
  el("rect", { x: gx, y: 13, width: 96, height: 10, rx: 2, fill: `url(#${grad})`, stroke: C.grid }, legend);
  txt(legend, gx - 6, 22, minText, { ...SMALL, "text-anchor": "end" });
  txt(legend, gx + 102, 22, maxText, SMALL);
  return svg;
}

/** Reject script-bearing URL schemes; returns the href or null. */
function safeHref(href) {
  if (href == null || href === "") return null;
  const s = String(href).trim();
  return /^(javascript|data|vbscript):/i.test(s.replace(/[\s\u0000-\u001f]/g, "")) ? null : s;
}

/** Cubic Bezier between node sides: forward right→left side, same column loops right, backward left→right. */
function edgePath(p, q, ay, by, NW) {
  const same = q.col === p.col;
  const ax = q.col < p.col ? p.x : p.x + NW;
  const bx = q.col > p.col ? q.x - 1 : q.x + NW + 1;
  const bend = same ? 36 : (bx - ax) / 2;
  return `M${ax},${ay}C${ax + bend},${ay} ${same ? bx + bend : bx - bend},${by} ${bx},${by}`;
}

/**
 * Layered left-to-right provenance graph: one column per kind present
 * (dataset, grant, task, run, approval, release; unknown kinds last).
 * @param {Array<{id: string, kind: string, label: string, sub?: string, href?: string, ok?: boolean}>} nodes
 * @param {Array<[string, string]>} edges  [fromId, toId] pairs; unknown ids and duplicates are skipped
 * @param {{labels?: {title?, empty?, kinds?: Object<string, string>},
 *          onSelect?: (node: object, event: Event) => void}} [opts]
 * @returns {SVGSVGElement}
 */
export function provenanceGraph(nodes, edges, { labels = {}, onSelect } = {}) {
  const NW = 190, NH = 50, GX = 44, GY = 14, PAD = 20;
  const byId = new Map();
  for (const n of nodes || []) if (n && n.id != null && !byId.has(String(n.id))) byId.set(String(n.id), n);
  const list = [...byId.values()];
  const kindOf = (n) => String(n.kind ?? "");
  const present = new Set(list.map(kindOf));
  const kinds = [...KINDS.filter((k) => present.has(k)), ...[...present].filter((k) => !KINDS.includes(k))];
  const columns = kinds.map((k) => list.filter((n) => kindOf(n) === k));
  const seen = new Set();
  const links = (edges || []).filter(Array.isArray).map(([a, b]) => [String(a), String(b)])
    .filter(([a, b]) => a !== b && byId.has(a) && byId.has(b) && !seen.has(a + ">" + b) && seen.add(a + ">" + b));
  const maxN = Math.max(1, ...columns.map((c) => c.length));
  const top = 44 + (labels.kinds ? 24 : 0);
  const innerH = maxN * NH + (maxN - 1) * GY;
  const contentW = columns.length * NW + Math.max(0, columns.length - 1) * GX;
  const width = Math.max(480, contentW + 2 * PAD);
  const svg = frame(width, list.length ? top + innerH + PAD : 140, "provenance-graph", labels.title);
  svg.style.maxWidth = `${width}px`; // never enlarge past natural size
  if (!list.length) return emptyText(svg, width / 2, 90, labels);

  // Place columns left to right, ordering each by the mean y of already placed neighbours (stable).
  const nb = new Map(list.map((n) => [String(n.id), []]));
  for (const [a, b] of links) { nb.get(a).push(b); nb.get(b).push(a); }
  const pos = new Map(); // id -> {x, y, col}
  const x0 = (width - contentW) / 2;
  columns.forEach((col, ci) => {
    const key = new Map(col.map((n) => {
      const ys = nb.get(String(n.id)).filter((id) => pos.has(id)).map((id) => pos.get(id).y);
      return [n, ys.length ? ys.reduce((s, v) => s + v, 0) / ys.length : Infinity];
    }));
    const sorted = [...col].sort((a, b) => key.get(a) - key.get(b) || 0);
    const y0 = top + (innerH - (sorted.length * NH + (sorted.length - 1) * GY)) / 2;
    const cx = x0 + ci * (NW + GX);
    sorted.forEach((n, i) => pos.set(String(n.id), { x: cx, y: y0 + i * (NH + GY), col: ci }));
    if (labels.kinds) {
      txt(svg, cx + NW / 2, top - 12, truncate(labels.kinds[kinds[ci]] ?? kinds[ci], NW, 12 * BOLD),
        { "text-anchor": "middle", fill: C.muted, "font-weight": 600 });
    }
  });

  // Spread each node's outgoing / incoming edge ends along its side, ordered by the other end's y.
  const port = new Map();
  for (const [end, other] of [[0, 1], [1, 0]]) {
    const groups = new Map();
    for (const l of links) (groups.get(l[end]) || groups.set(l[end], []).get(l[end])).push(l);
    for (const group of groups.values()) {
      group.sort((l, m) => pos.get(l[other]).y - pos.get(m[other]).y);
      const step = group.length > 1 ? Math.min(8, (NH - 20) / (group.length - 1)) : 0;
      group.forEach((l, i) => port.set(`${end}:${l[0]}>${l[1]}`, (i - (group.length - 1) / 2) * step));
    }
  }
  const arrow = uid("arrow");
  const marker = el("marker", {
    id: arrow, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8,
    markerUnits: "userSpaceOnUse", orient: "auto-start-reverse",
  }, el("defs", {}, svg));
  el("path", { d: "M0,0L10,5L0,10z", fill: C.edge }, marker);
  const edgeLayer = el("g", { fill: "none", stroke: C.edge, "stroke-width": 1.5 }, svg);
  for (const [a, b] of links) {
    const [p, q] = [pos.get(a), pos.get(b)];
    const d = edgePath(p, q, p.y + NH / 2 + port.get(`0:${a}>${b}`), q.y + NH / 2 + port.get(`1:${a}>${b}`), NW);
    el("path", { d, "marker-end": `url(#${arrow})`, "data-testid": "prov-edge", "data-from": a, "data-to": b }, edgeLayer);
  }

  const nodeLayer = el("g", {}, svg);
  for (const n of list) {
    const id = String(n.id);
    const kind = kindOf(n);
    const [fill, stroke] = KIND_COLORS[kind] || OTHER_COLORS;
    const label = String(n.label ?? id);
    const sub = n.sub == null ? "" : String(n.sub);
    const href = safeHref(n.href);
    const { x, y } = pos.get(id);
    const g = el("g", {
      "data-testid": "prov-node", "data-kind": kind, "data-id": id, transform: `translate(${x},${y})`,
      "data-ok": typeof n.ok === "boolean" ? String(n.ok) : null,
    }, href ? el("a", { href }, nodeLayer) : nodeLayer);
    tip(g, sub ? `${label}\n${sub}` : label);
    const bad = n.ok === false;
    el("rect", { width: NW, height: NH, rx: 8, fill, stroke: bad ? C.bad : stroke, "stroke-width": bad ? 2.5 : 1.25 }, g);
    txt(g, 12, sub ? 21 : 30, truncate(label, NW - 24 - (n.ok === true ? 16 : 0), 12.5 * BOLD),
      { "font-size": 12.5, "font-weight": 600 });
    if (sub) txt(g, 12, 38, truncate(sub, NW - 22, 11, 28), SMALL);
    if (n.ok === true) {
      const mark = el("g", { transform: `translate(${NW - 14},14)`, "data-testid": "prov-ok" }, g);
      el("circle", { r: 7, fill: C.good }, mark);
      const tick = { fill: "none", stroke: "#fff", "stroke-width": 1.8, "stroke-linecap": "round" };
      el("path", { d: "M-3.2,0.2L-0.9,2.5L3.3,-2.2", ...tick, "stroke-linejoin": "round" }, mark);
    }
    if (typeof onSelect !== "function") continue;
    g.style.cursor = "pointer";
    g.addEventListener("click", (e) => onSelect(n, e));
    if (href) continue; // the <a> is already focusable
    const a11y = { tabindex: 0, role: "button", "aria-label": sub ? `${label}: ${sub}` : label };
    for (const [k, v] of Object.entries(a11y)) g.setAttribute(k, String(v));
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(n, e); }
    });
  }
  return svg;
}

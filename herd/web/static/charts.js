// herd dashboard, charts: thin helpers over the vendored uPlot (vendor/uPlot.iife.min.js, MIT) in the page's
// dark theme: a time chart (lines or bars, one y axis with its unit, a legend that shows the values under the
// cursor) and a category bar chart (one bar group per name). Charts follow their container's width.
"use strict";
const PALETTE = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff7b72", "#e3b341"];
const AXIS = { stroke: "#8a96a3", grid: { stroke: "#2a333d", width: 1 }, ticks: { stroke: "#2a333d", width: 1 }, font: "11px system-ui, sans-serif", labelFont: "12px system-ui, sans-serif" };
const charts = new Map(); // container element -> uPlot instance

const chartWidth = (el) => Math.max(240, el.clientWidth - 8); // the container's width less its padding

// A compact number for axis ticks: 1.2k, 3.4M.
function short(v) {
  if (v == null) return "";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
  return String(Math.round(v * 100) / 100);
}

function place(el, opts, data) {
  const old = charts.get(el);
  if (old) old.destroy();
  el.replaceChildren();
  // While the cursor is off the chart, the legend shows the latest point that has data.
  let last = -1;
  for (let i = data[0].length - 1; i >= 0 && last < 0; i--) if (data.slice(1).some((s) => s[i] != null && s[i] !== 0)) last = i;
  const latest = (u) => { if (u.cursor.idx == null && last >= 0) u.setLegend({ idx: last }, false); };
  const u = new uPlot({ width: chartWidth(el), ...opts, hooks: { ready: [latest], setCursor: [latest] } }, data, el);
  charts.set(el, u);
  return u;
}

// series: [{label, values, unit, digits, bars, color}]; times in seconds since the epoch.
function timeChart(el, { title, unit, times, series, height = 200 }) {
  const bars = uPlot.paths.bars;
  const opts = {
    title, height,
    cursor: { points: { size: 6 } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { ...AXIS },
      { ...AXIS, label: unit, size: 52, values: (u, splits) => splits.map(short) },
    ],
    series: [
      { label: "time" },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        fill: s.bars ? (s.color || PALETTE[i % PALETTE.length]) + "99" : undefined,
        width: s.bars ? 0 : 2,
        spanGaps: !s.bars,
        paths: s.bars ? bars({ size: [0.8, 24], align: series.filter((x) => x.bars).length > 1 ? (i % 2 ? 1 : -1) : 0 }) : undefined,
        // dots where there are few values (a lone bucket would draw no line at all)
        points: s.bars ? { show: false } : { size: 6, fill: s.color || PALETTE[i % PALETTE.length], show: (u, si) => u.data[si].filter((v) => v != null).length < 40 },
        value: (u, v) => (v == null ? "–" : `${Number(v).toFixed(s.digits ?? 0)} ${s.unit ?? unit}`),
      })),
    ],
  };
  return place(el, opts, [times, ...series.map((s) => s.values)]);
}

// names along x, one bar per name for each series (side by side); values formatted with the series' unit.
function barChart(el, { title, unit, names, series, height = 220 }) {
  const n = series.length;
  const opts = {
    title, height,
    legend: { live: true },
    scales: { x: { time: false, range: () => [-0.5, names.length - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { ...AXIS, splits: () => names.map((_, i) => i), values: (u, splits) => {
        const room = Math.max(6, Math.floor(u.bbox.width / uPlot.pxRatio / Math.max(1, names.length) / 6.5)); // ~6.5 px a character
        return splits.map((i) => { const s = names[i] ?? ""; return s.length > room ? s.slice(0, room - 1) + "…" : s; });
      }, gap: 4 },
      { ...AXIS, label: unit, size: 48, values: (u, splits) => splits.map(short) },
    ],
    series: [
      { label: "model", value: (u, i) => names[i] ?? "–" },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length],
        fill: PALETTE[i % PALETTE.length] + "bb",
        width: 0,
        paths: uPlot.paths.bars({ size: [0.8 / n, 60], align: n === 1 ? 0 : i === 0 ? -1 : 1 }),
        points: { show: false },
        value: (u, v) => (v == null ? "–" : `${Number(v).toFixed(s.digits ?? 0)} ${s.unit ?? unit}`),
      })),
    ],
  };
  return place(el, opts, [names.map((_, i) => i), ...series.map((s) => s.values)]);
}

// A canvas with something drawn on it (for the tests and for "no data yet" notes): any non-transparent pixel.
function chartDrawn(el) {
  const c = el.querySelector("canvas");
  if (!c || !c.width || !c.height) return false;
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < px.length; i += 4) if (px[i]) return true;
  return false;
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const [el, u] of charts) if (el.isConnected && el.offsetParent) u.setSize({ width: chartWidth(el), height: u.height });
  }, 150);
});

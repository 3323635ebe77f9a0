// herd dashboard, Trends tab ("what got slower"): requests, tokens/s, time to first token and latency
// percentiles over 1 h / 24 h / 7 d / 30 d, for the whole fleet, one model or one node, from
// /fleet/analytics/series (bucket size chosen by the router from the range).
"use strict";
(() => {
  let hours = 24;
  let filter = ""; // "", "model=<name>" or "node=<id>"

  function query() {
    const q = new URLSearchParams({ hours: String(hours) });
    if (filter) { const [k, v] = filter.split(/=(.*)/s); q.set(k, v); }
    return `/fleet/analytics/series?${q}`;
  }

  function fillFilter(models, nodes) {
    const sel = $("trend-filter");
    const opts = [["", "whole fleet"], ...models.map((m) => [`model=${m}`, `model ${m}`]), ...nodes.map((n) => [`node=${n}`, `node ${n}`])];
    if (filter && !opts.some(([v]) => v === filter)) opts.push([filter, filter.replace("=", " ")]);
    sel.innerHTML = opts.map(([v, label]) => `<option value="${esc(v)}"${v === filter ? " selected" : ""}>${esc(label)}</option>`).join("");
  }

  async function load() {
    const url = query();
    $("trends").dataset.query = url;
    const d = await getJSON(url);
    if (!d || $("trends").dataset.query !== url) return; // a newer query is on its way
    fillFilter(d.models, d.nodes);
    const b = d.buckets;
    const times = b.map((x) => x.t);
    const col = (k) => b.map((x) => (x.requests ? x[k] : null));
    const step = d.step >= 3600 ? `${d.step / 3600} h` : `${d.step / 60} min`;
    const total = b.reduce((a, x) => a + x.requests, 0);
    const errors = b.reduce((a, x) => a + x.errors, 0);
    const tokens = b.reduce((a, x) => a + x.completion_tokens, 0);
    $("trend-summary").textContent = `${total} requests · ${errors} errors · ${tokens} tokens out · one point per ${step}`;
    timeChart($("chart-requests"), { title: `Requests per ${step}`, unit: "requests", times, series: [
      { label: "requests", values: b.map((x) => x.requests), bars: true },
      { label: "errors", values: b.map((x) => x.errors), bars: true, color: "#f85149" },
    ] });
    timeChart($("chart-tps"), { title: "Tokens per second", unit: "tokens/s", times, series: [
      { label: "generation speed (mean)", values: col("gen_tps"), digits: 1 },
      { label: "fleet output", values: col("throughput_tps"), digits: 2 },
    ] });
    const pct = (prefix, label) => [50, 95, 99].map((q) => ({ label: `${label} p${q}`, values: col(`${prefix}p${q}_ms`).map((v) => (v == null ? null : v / 1000)), digits: 2 }));
    timeChart($("chart-ttft"), { title: "Time to first token", unit: "s", times, series: pct("ttft_", "TTFT") });
    timeChart($("chart-latency"), { title: "Latency (whole request)", unit: "s", times, series: pct("", "latency") });
  }

  for (const btn of document.querySelectorAll("#trend-range button")) {
    btn.addEventListener("click", () => {
      hours = Number(btn.dataset.hours);
      document.querySelectorAll("#trend-range button").forEach((b) => b.classList.toggle("on", b === btn));
      load();
    });
  }
  $("trend-filter").addEventListener("change", (e) => { filter = e.target.value; load(); });
  // Other tabs (a model's detail) open Trends on one model or node.
  window.showTrendsFor = (f) => { filter = f; showTab("trends"); };
  loaders.trends = load;
})();

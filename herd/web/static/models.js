// herd dashboard, Models and Apps tabs ("who uses what"): each model's share of requests and tokens (chart and
// table; a click opens the model: its nodes now and per day, its daily history), and each app's (request tag's)
// daily requests over 30 days. Data from /fleet/analytics/models, /usage and /apps.
"use strict";
(() => {
  const DAY = 86400;
  const pctOf = (v, total) => (total ? (100 * v) / total : 0);

  // Daily points over the last `days` days, today included: [day start in seconds], and "YYYY-MM-DD" keys.
  function days(count) {
    const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
    const t = Array.from({ length: count }, (_, i) => today - (count - 1 - i) * DAY);
    return { t, keys: t.map((s) => new Date(s * 1000).toISOString().slice(0, 10)) };
  }

  async function loadModels() {
    const m = await getJSON("/fleet/analytics/models?hours=720");
    const rows = (m && m.models) || [];
    const reqs = rows.reduce((a, r) => a + r.requests, 0);
    const toks = rows.reduce((a, r) => a + (r.prompt_tokens || 0) + (r.completion_tokens || 0), 0);
    for (const r of rows) { r.req_share = pctOf(r.requests, reqs); r.tok_share = pctOf((r.prompt_tokens || 0) + (r.completion_tokens || 0), toks); }
    if (rows.length) {
      barChart($("chart-share"), { title: "Share of the last 30 days", unit: "%", names: rows.map((r) => r.model), series: [
        { label: "requests", values: rows.map((r) => r.req_share), digits: 1 },
        { label: "tokens", values: rows.map((r) => r.tok_share), digits: 1 },
      ] });
    } else $("chart-share").textContent = "no traffic yet";
    table($("models-table"), rows, [
      ["model", (r) => `<a href="#" data-model="${esc(r.model)}">${esc(r.model)}</a>`],
      ["requests", "requests"],
      ["share", (r) => num(r.req_share, 1, "%")],
      ["tokens", (r) => num(r.tok_share, 1, "%")],
      ["errors", (r) => num(100 * r.error_rate, 1, "%")],
      ["p50", (r) => num(r.p50_ms, 0, " ms")],
      ["p95", (r) => num(r.p95_ms, 0, " ms")],
      ["TTFT p50", (r) => num(r.ttft_p50_ms, 0, " ms")],
      ["tok/s", (r) => num(r.tokens_per_s, 1)],
    ]);
    for (const a of $("models-table").querySelectorAll("a[data-model]")) a.onclick = (e) => { e.preventDefault(); showModel(a.dataset.model); };
    const open = $("model-detail").dataset.model;
    if (open && rows.some((r) => r.model === open)) showModel(open);
  }

  async function showModel(model) {
    const box = $("model-detail");
    box.dataset.model = model;
    box.hidden = false;
    $("model-title").textContent = model;
    const u = await getJSON("/fleet/analytics/usage?days=30");
    const rows = ((u && u.rows) || []).filter((r) => r.model === model);
    const now = (lastFleet ? lastFleet.nodes : []).filter((n) => n.models.includes(model));
    const byNode = new Map();
    for (const r of rows) {
      const n = byNode.get(r.node || "—") || { node: r.node || "—", requests: 0, completion_tokens: 0, busy_s: 0, errors: 0 };
      for (const k of ["requests", "completion_tokens", "busy_s", "errors"]) n[k] += r[k];
      byNode.set(n.node, n);
    }
    for (const n of now) if (!byNode.has(n.node_id)) byNode.set(n.node_id, { node: n.node_id, requests: 0, completion_tokens: 0, busy_s: 0, errors: 0 });
    const live = new Map(now.map((n) => [n.node_id, n]));
    table($("model-nodes"), [...byNode.values()], [
      ["node", "node"],
      ["now", (r) => { const n = live.get(r.node); return n ? (n.hot.includes(model) ? '<span class="tag hot">hot</span>' : '<span class="tag warm">warm</span>') + (n.in_flight_models?.[model] ? ` ${n.in_flight_models[model]} running` : "") : "–"; }],
      ["requests (30 d)", "requests"],
      ["tokens out", "completion_tokens"],
      ["busy", (r) => num(r.busy_s, 0, " s")],
      ["errors", "errors"],
    ]);
    const d = days(30);
    const nodes = [...new Set(rows.map((r) => r.node || "—"))];
    const series = nodes.map((node) => ({ label: node, values: d.keys.map((k) => rows.filter((r) => (r.node || "—") === node && r.day === k).reduce((a, r) => a + r.requests, 0)), bars: nodes.length === 1 }));
    if (series.length) timeChart($("chart-model"), { title: `${model}: requests per day and node`, unit: "requests", times: d.t, series });
    else $("chart-model").textContent = "no requests in 30 days";
    $("model-trends").onclick = (e) => { e.preventDefault(); showTrendsFor(`model=${model}`); };
  }

  async function loadApps() {
    const a = await getJSON("/fleet/analytics/apps?hours=720");
    const apps = (a && a.apps) || [];
    const d = days(30);
    if (apps.length) {
      timeChart($("chart-apps"), { title: "Requests per day and app (tag)", unit: "requests", times: d.t, series: apps.slice(0, 8).map((app) => {
        const per = new Map(app.daily.map((x) => [x.day, x.requests]));
        return { label: app.tag, values: d.keys.map((k) => per.get(k) || 0) };
      }) });
    } else $("chart-apps").textContent = "no tagged requests yet (send X-Herd-Tags or metadata.tags)";
    table($("apps-table"), apps, [
      ["app", "tag"], ["requests", "requests"],
      ["errors", (r) => num(100 * r.error_rate, 1, "%")],
      ["p50", (r) => num(r.p50_ms, 0, " ms")], ["p95", (r) => num(r.p95_ms, 0, " ms")], ["p99", (r) => num(r.p99_ms, 0, " ms")],
      ["tokens in", "prompt_tokens"], ["tokens out", "completion_tokens"],
    ]);
  }

  loaders.models = loadModels;
  loaders.apps = loadApps;
})();

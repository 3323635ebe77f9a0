// herd dashboard, Benchmarks and Recommendations tabs ("what should I change"): start a benchmark, follow its
// progress live (benchmark frames on the dashboard WebSocket), cancel it, read its results as a table and a
// chart; the recommendations with their reason, numbers and an Apply button that calls the management route.
// The Recommendations tab button shows how many there are, loaded once at start.
"use strict";
(() => {
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const fmt = (v, digits = 1) => (v === null || v === undefined ? "–" : typeof v === "number" ? v.toFixed(digits) : String(v));
  const names = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
  const status = $("bench-status"), bar = $("bench-progress"), results = $("bench-results"), recs = $("recommendations");
  const start = $("bench-start"), cancel = $("bench-cancel");
  let current = null;

  cancel.addEventListener("click", async () => { if (current) await api(`/fleet/benchmarks/${current}`, { method: "DELETE" }); });
  start.addEventListener("click", async () => {
    const body = { parallel: Number($("bench-parallel").value) || 4 };
    if (names($("bench-nodes").value).length) body.nodes = names($("bench-nodes").value);
    if (names($("bench-models").value).length) body.models = names($("bench-models").value);
    const r = await api("/fleet/benchmarks", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) { status.textContent = (data.error && (data.error.message || data.error)) || `HTTP ${r.status}`; return; }
    current = data.id;
    showRun({ id: data.id, status: data.status, progress: 0, steps_done: 0, steps_total: data.steps_total, results: [] });
  });

  function showResults(rows) {
    const cols = [["node", "node_id", 0], ["model", "model", 0], ["parallel", "parallel", 0], ["TTFT s", "ttft_s", 2],
      ["prompt tok/s", "prompt_tps", 0], ["gen tok/s", "gen_tps", 1], ["total tok/s", "aggregate_tps", 1],
      ["load s", "load_s", 2], ["errors", "errors", 0]];
    results.replaceChildren(el("tr", {}, ...cols.map(([h]) => el("th", {}, h))),
      ...rows.map((r) => el("tr", { "data-node": r.node_id }, ...cols.map(([, k, d]) => el("td", {}, d ? fmt(r[k], d) : fmt(r[k], 0))))));
    const one = rows.filter((r) => r.parallel === 1 && r.gen_tps != null);
    if (!one.length || !$("insight").classList.contains("active")) return;
    const many = new Map(rows.filter((r) => r.parallel > 1).map((r) => [`${r.node_id} ${r.model}`, r]));
    barChart($("chart-bench"), { title: "Generation speed", unit: "tokens/s", names: one.map((r) => `${r.node_id} ${r.model}`), series: [
      { label: "1 request", values: one.map((r) => r.gen_tps), digits: 1 },
      { label: "parallel (total)", values: one.map((r) => many.get(`${r.node_id} ${r.model}`)?.aggregate_tps ?? null), digits: 1 },
    ] });
  }

  function showRun(run) {
    const running = run.status === "queued" || run.status === "running";
    current = running ? run.id : null;
    cancel.disabled = !running;
    start.disabled = running;
    bar.value = run.progress || 0;
    status.textContent = `${run.id}: ${run.status} ${run.steps_done || 0}/${run.steps_total || 0}` +
      (run.current ? ` · ${run.current.node} ${run.current.model} ×${run.current.parallel}` : "") +
      (run.waiting ? ` · paused: ${run.waiting}` : "");
    status.dataset.status = run.status;
    showResults(run.results || []);
  }

  async function loadRecommendations() {
    const r = await api("/fleet/recommendations?days=7");
    const data = r.ok ? await r.json() : { items: [] };
    $("recs-count").textContent = data.items.length ? String(data.items.length) : "";
    if (!data.items.length) { recs.replaceChildren(el("li", {}, "nothing to change")); return; }
    recs.replaceChildren(...data.items.map((item) => {
      const numbers = Object.entries(item.numbers).filter(([, v]) => v !== null).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(" · ");
      const li = el("li", { "data-kind": item.kind, "data-model": item.model, "data-node": item.node || "" },
        el("span", { class: `kind r-${item.kind}` }, item.kind), " ", el("b", {}, item.model), item.node ? ` on ${item.node}` : "",
        el("p", {}, item.reason), el("small", {}, numbers));
      if (item.action) {
        const apply = el("button", { class: "apply", onclick: async () => {
          apply.disabled = true;
          const a = item.action;
          const resp = await api(a.path, { method: a.method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(a.method === "POST" ? { ...a.body, stream: false } : a.body) });
          apply.textContent = resp.ok ? "done" : `failed (HTTP ${resp.status})`;
        } }, "Apply");
        li.append(" ", apply);
      }
      return li;
    }));
  }

  loaders.insight = async () => {
    const r = await api("/fleet/benchmarks");
    const runs = r.ok ? (await r.json()).runs : [];
    if (runs.length) showRun(runs[0]); else showResults([]);
  };
  loaders.recs = loadRecommendations;
  onFrame("benchmark", (run) => { if (!current || run.id === current || run.status === "queued") showRun(run); });
  document.addEventListener("DOMContentLoaded", loadRecommendations);
  document.addEventListener("herd-login", loadRecommendations);
})();

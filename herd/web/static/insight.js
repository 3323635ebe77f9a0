// herd dashboard, Insight tab: benchmarks (start, live progress over /dashboard/ws, cancel, results) and
// recommendations (reason, numbers, an Apply button that calls the management route). Self-contained: it adds
// its own tab button and section, and opens its own WebSocket for `benchmark` frames. No dependencies.
(() => {
  "use strict";
  const tabs = document.getElementById("tabs");
  const main = document.querySelector("main");
  if (!tabs || !main) return;

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

  const button = el("button", { "data-tab": "insight", id: "insight-tab" }, "Insight");
  const status = el("span", { id: "bench-status" }, "no benchmark running");
  const bar = el("progress", { id: "bench-progress", max: "1", value: "0" });
  const nodesIn = el("input", { id: "bench-nodes", placeholder: "nodes (default: all)", size: "18" });
  const modelsIn = el("input", { id: "bench-models", placeholder: "models (default: loaded)", size: "18" });
  const parallelIn = el("input", { id: "bench-parallel", type: "number", min: "1", max: "16", value: "4", style: "width:4em" });
  const results = el("table", { id: "bench-results" });
  const recs = el("ul", { id: "recommendations" });
  let current = null;

  const cancel = el("button", { id: "bench-cancel", disabled: "", onclick: async () => {
    if (current) await api(`/fleet/benchmarks/${current}`, { method: "DELETE" });
  } }, "Cancel");
  const start = el("button", { id: "bench-start", onclick: async () => {
    const body = { parallel: Number(parallelIn.value) || 4 };
    if (names(nodesIn.value).length) body.nodes = names(nodesIn.value);
    if (names(modelsIn.value).length) body.models = names(modelsIn.value);
    const r = await api("/fleet/benchmarks", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) { status.textContent = (data.error && (data.error.message || data.error)) || `HTTP ${r.status}`; return; }
    current = data.id;
    showRun({ id: data.id, status: data.status, progress: 0, steps_done: 0, steps_total: data.steps_total, results: [] });
  } }, "Run benchmark");

  const section = el("section", { id: "insight", class: "tab" },
    el("h2", {}, "Benchmarks"),
    el("div", {}, nodesIn, " ", modelsIn, " parallel ", parallelIn, " ", start, " ", cancel),
    el("div", {}, bar, " ", status),
    el("div", { style: "overflow-x:auto" }, results),
    el("h2", {}, "Recommendations"),
    recs);
  tabs.append(button);
  main.append(section);

  function showResults(rows) {
    const cols = [["node", "node_id", 0], ["model", "model", 0], ["parallel", "parallel", 0], ["TTFT s", "ttft_s", 2],
      ["prompt tok/s", "prompt_tps", 0], ["gen tok/s", "gen_tps", 1], ["total tok/s", "aggregate_tps", 1],
      ["load s", "load_s", 2], ["errors", "errors", 0]];
    results.replaceChildren(el("tr", {}, ...cols.map(([h]) => el("th", {}, h))),
      ...rows.map((r) => el("tr", { "data-node": r.node_id }, ...cols.map(([, k, d]) => el("td", {}, d ? fmt(r[k], d) : fmt(r[k], 0))))));
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
    if (!data.items.length) { recs.replaceChildren(el("li", {}, "nothing to change")); return; }
    recs.replaceChildren(...data.items.map((item) => {
      const numbers = Object.entries(item.numbers).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v}`).join(" · ");
      const li = el("li", { "data-kind": item.kind, "data-model": item.model, "data-node": item.node || "" }, el("b", {}, `${item.kind} ${item.model}`),
        item.node ? ` on ${item.node}: ` : ": ", item.reason, el("br"), el("small", {}, numbers));
      if (item.action) {
        const apply = el("button", { onclick: async () => {
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

  async function load() {
    const r = await api("/fleet/benchmarks");
    const runs = r.ok ? (await r.json()).runs : [];
    if (runs.length) showRun(runs[0]); else showResults([]);
    await loadRecommendations();
  }

  button.addEventListener("click", () => {
    document.querySelectorAll("#tabs button, .tab").forEach((e) => e.classList.remove("active"));
    button.classList.add("active");
    section.classList.add("active");
    load();
  });

  function listen() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/dashboard/ws`);
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "benchmark" && (!current || msg.data.id === current || msg.data.status === "queued")) showRun(msg.data);
    };
    ws.onclose = () => setTimeout(listen, 2000);
  }
  listen();
})();

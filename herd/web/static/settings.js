// herd dashboard, Health, Settings and Traces tabs: health findings; the runtime toggles, every node with its
// agent and backend version (a version that differs from most of the fleet is highlighted) and the read-only
// configuration; the most recent traces.
"use strict";
(() => {
  // The most common value of `key` over the nodes (ties: the first seen); null with fewer than two nodes.
  function usual(nodes, key) {
    if (nodes.length < 2) return null;
    const counts = new Map();
    for (const n of nodes) counts.set(n[key], (counts.get(n[key]) || 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  }

  function renderVersions() {
    const nodes = lastFleet ? lastFleet.nodes : [];
    const rows = nodes.map((n) => ({ ...n, backend_kind: n.backend === "openai" ? "OpenAI-compatible" : "Ollama" }));
    const norm = { agent_version: usual(rows, "agent_version"), backend_version: usual(rows, "backend_version"), backend_kind: usual(rows, "backend_kind") };
    const cell = (key) => (r) => {
      const odd = norm[key] !== null && r[key] !== norm[key];
      return odd ? `<span class="differs" title="most nodes: ${esc(norm[key])}">${esc(r[key] ?? "?")}</span>` : esc(r[key] ?? "?");
    };
    table($("versions"), rows, [["node", "node_id"], ["agent", cell("agent_version")], ["backend", cell("backend_kind")], ["backend version", cell("backend_version")], ["status", "status"]]);
    const odd = rows.filter((r) => Object.keys(norm).some((k) => norm[k] !== null && r[k] !== norm[k])).map((r) => r.node_id);
    $("versions-note").textContent = `router ${lastFleet ? lastFleet.router_version : "?"} · ` +
      (odd.length ? `differs from the rest: ${odd.join(", ")}` : nodes.length > 1 ? "every node runs the same versions" : "");
  }

  loaders.settings = async () => {
    renderVersions();
    const s = await getJSON("/fleet/settings");
    if (!s) return;
    $("vram_fallback").checked = s.toggles.vram_fallback;
    $("auto_pull").checked = s.toggles.auto_pull;
    $("config").textContent = JSON.stringify(s.config, null, 2);
  };
  onFrame("fleet", () => { if (activeTab() === "settings") renderVersions(); });
  for (const key of ["vram_fallback", "auto_pull"]) {
    $(key).addEventListener("change", async (e) => {
      await api("/fleet/settings", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ [key]: e.target.checked }) });
    });
  }

  loaders.health = async () => {
    const h = await getJSON("/fleet/health");
    const f = (h && h.findings) || [];
    $("findings").innerHTML = f.length ? f.map((x) => `<li class="${esc(x.severity)}"><b>${esc(x.title)}</b> — ${esc(x.detail)}. <i>${esc(x.recommendation)}</i></li>`).join("") : "<li>all good</li>";
  };

  loaders.traces = async () => {
    const t = await getJSON("/fleet/traces?limit=100");
    table($("traces-table"), t && t.traces, [
      ["time", (r) => esc(new Date(r.ts * 1000).toLocaleString())], ["dialect", "dialect"], ["model", "model"], ["node", "node"],
      ["status", "status"], ["duration", (r) => num(r.duration, 2, " s")], ["tokens out", "completion_tokens"],
      ["tags", (r) => esc((r.tags || []).join(", "))], ["error", "error"],
    ]);
  };
})();

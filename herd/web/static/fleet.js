// herd dashboard, Fleet tab ("is my fleet healthy, which machine is doing what"): headline figures, the queue per
// model (waiting, estimated wait, running), a card per node with CPU / memory / GPU load and its models (hot or
// warm, running per model, request kinds as badges) and the live request list. Fed by fleet and request frames.
"use strict";
const kindsSeen = new Map(); // "node\tmodel" -> Set of request kinds this page saw served (request frames)

function loadBar(label, pct, cls = "") {
  const p = Math.max(0, Math.min(100, pct || 0));
  return `<div class="load ${cls}"><span class="lbl">${esc(label)}</span><div class="bar"><span style="width:${p.toFixed(0)}%"></span></div><span class="val">${p.toFixed(0)}%</span></div>`;
}

function modelRow(n, m, hot) {
  const kinds = new Set(n.kinds?.[m] || []);
  for (const k of kindsSeen.get(`${n.node_id}\t${m}`) || []) kinds.add(k);
  const running = n.in_flight_models?.[m] || 0;
  return `<li data-model="${esc(m)}" class="${hot ? "hot" : "warm"}"><span class="name">${esc(m)}</span>` +
    `<span class="tag ${hot ? "hot" : "warm"}">${hot ? "hot" : "warm"}</span>` +
    [...kinds].sort().map((k) => `<span class="kind k-${esc(k)}">${esc(k)}</span>`).join("") +
    (running ? `<span class="running">${running} running</span>` : "") + "</li>";
}

function renderFleet(data) {
  const s = data.summary;
  $("summary").textContent = `${s.online} online · ${s.degraded} degraded · ${s.offline} offline · ${s.in_flight} running · ${s.waiting} waiting`;
  renderTiles(data);
  renderQueue(data);
  const box = $("nodes");
  const seen = new Set();
  for (const n of data.nodes) {
    seen.add(n.node_id);
    let card = box.querySelector(`[data-node-id="${CSS.escape(n.node_id)}"]`);
    if (!card) { card = document.createElement("div"); card.dataset.nodeId = n.node_id; box.appendChild(card); }
    const state = n.backend_up ? n.status : "down";
    card.className = `card ${state}`;
    const ejected = n.outlier && n.outlier.ejected; // outlier ejection (on main: fleet_view's "outlier")
    card.dataset.state = n.draining ? "draining" : n.paused ? "paused" : ejected ? "ejected" : state;
    const used = n.host.mem_total ? 100 * (1 - n.host.mem_available / n.host.mem_total) : 0;
    const hot = new Set(n.hot || n.loaded.map((m) => m.name));
    const kind = n.backend === "openai" ? "OpenAI-compatible" : "Ollama";
    const gpus = (n.gpu || []).filter((g) => g.util_percent != null).map((g, i) => loadBar(`GPU${n.gpu.length > 1 ? i : ""}`, g.util_percent, "gpu")).join("");
    const media = (n.media || []).filter((m) => !n.models.includes(m.model)).map((m) => modelRow(n, m.model, true)).join("");
    const order = [...n.models].sort((a, b) => (hot.has(b) - hot.has(a)) || a.localeCompare(b));
    card.innerHTML = `<h3><span>${esc(n.node_id)}</span><span class="state">${esc(card.dataset.state)}</span></h3>
      <div class="meta">${kind} ${esc(n.backend_version || "?")} · ${n.in_flight} running${n.parallel ? ` of ${n.parallel}` : ""} · ${gib(n.host.mem_total)}</div>
      ${n.outlier && n.outlier.recent_failures ? `<div class="meta">${n.outlier.recent_failures} of ${n.outlier.recent_attempts} recent attempts failed${ejected ? ` · ejected for ${Math.ceil(n.outlier.ejected_for_s)} s` : ""}</div>` : ""}
      ${loadBar("CPU", n.host.cpu_percent)}${loadBar("Mem", used)}${gpus}
      <ul class="models">${order.map((m) => modelRow(n, m, hot.has(m))).join("")}${media}</ul>`;
  }
  for (const card of [...box.children]) if (!seen.has(card.dataset.nodeId)) card.remove();
}

function renderTiles(data) {
  const s = data.summary;
  const total = data.nodes.length;
  const hot = new Set(data.nodes.flatMap((n) => n.hot || []));
  const tiles = [
    ["nodes", `${s.online}/${total}`, "online", s.online < total ? "warn" : ""],
    ["running", s.in_flight, "requests in flight", ""],
    ["waiting", s.waiting, "in the queue", s.waiting ? "warn" : ""],
    ["hot", hot.size, "models loaded", ""],
  ];
  const hour = $("tiles").dataset.hour ? JSON.parse($("tiles").dataset.hour) : null;
  if (hour) {
    tiles.push(["hour", hour.requests, "requests, last hour", ""]);
    tiles.push(["errors", num(100 * hour.error_rate, 1, "%"), "errors, last hour", hour.error_rate > 0.05 ? "bad" : ""]);
    tiles.push(["p95", hour.p95_ms == null ? "–" : num(hour.p95_ms / 1000, 1, " s"), "p95 latency", ""]);
  }
  $("tiles").innerHTML = tiles.map(([id, v, label, cls]) => `<div class="tile ${cls}" data-tile="${id}"><b>${esc(v)}</b><span>${esc(label)}</span></div>`).join("");
}

function renderQueue(data) {
  const rows = new Map();
  for (const n of data.nodes) {
    for (const [m, k] of Object.entries(n.in_flight_models || {})) {
      const r = rows.get(m) || { model: m, depth: 0, in_flight: 0, estimated_wait_s: null, nodes: new Set() };
      r.in_flight += k; r.nodes.add(n.node_id); rows.set(m, r);
    }
  }
  for (const q of data.queues || []) {
    const r = rows.get(q.model) || { model: q.model, in_flight: 0, nodes: new Set() };
    Object.assign(r, { depth: q.depth, estimated_wait_s: q.estimated_wait_s, oldest_wait_s: q.oldest_wait_s, capacity: q.capacity });
    rows.set(q.model, r);
  }
  const list = [...rows.values()].sort((a, b) => b.depth - a.depth || b.in_flight - a.in_flight);
  if (!list.length) { $("queue").innerHTML = "<tr><td>nothing running, nobody waiting</td></tr>"; return; }
  table($("queue"), list, [
    ["model", "model"],
    ["running", "in_flight"],
    ["waiting", (r) => (r.depth ? `<span class="qbadge">${r.depth}</span>` : "0")],
    ["est. wait", (r) => (r.depth ? num(r.estimated_wait_s, 1, " s") : "–")],
    ["on", (r) => esc([...r.nodes].join(", ") || "–")],
  ]);
}

function addEvent(r) {
  const li = document.createElement("li");
  const ms = r.duration == null ? "" : ` ${(r.duration * 1000).toFixed(0)} ms`;
  li.className = r.status >= 400 ? "err" : "";
  li.textContent = `${new Date(r.time * 1000).toLocaleTimeString()} ${r.status} ${r.kind || ""} ${r.model} → ${r.node || "—"}${ms}${r.tags && r.tags.length ? " #" + r.tags.join(" #") : ""}${r.error ? " · " + r.error : ""}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
  if (r.node && r.kind) {
    const key = `${r.node}\t${r.model}`;
    if (!kindsSeen.has(key)) kindsSeen.set(key, new Set());
    kindsSeen.get(key).add(r.kind);
  }
}

let tilesAt = 0; // when the last hour's figures were fetched (ms)
onFrame("request", (r) => {
  addEvent(r);
  if (activeTab() === "fleet" && Date.now() - tilesAt > 5000) loaders.fleet(); // at most every 5 s under traffic
});
loaders.fleet = async () => {
  tilesAt = Date.now();
  const o = await getJSON("/fleet/analytics/overview?hours=1");
  $("tiles").dataset.hour = o ? JSON.stringify(o) : "";
  if (lastFleet) renderFleet(lastFleet);
};
setInterval(() => { if (activeTab() === "fleet" && document.visibilityState === "visible") loaders.fleet(); }, 15000);

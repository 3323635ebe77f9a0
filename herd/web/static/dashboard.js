// herd dashboard: live fleet over /dashboard/ws, the other tabs from the JSON API. No dependencies.
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const gib = (b) => (b / 2 ** 30).toFixed(1) + " GiB";

function renderFleet(data) {
  const s = data.summary;
  $("summary").textContent = `${s.online} online · ${s.degraded} degraded · ${s.offline} offline · ${s.in_flight} running · ${s.waiting} waiting`;
  const box = $("nodes");
  const seen = new Set();
  for (const n of data.nodes) {
    seen.add(n.node_id);
    let card = box.querySelector(`[data-node-id="${CSS.escape(n.node_id)}"]`);
    if (!card) { card = document.createElement("div"); card.dataset.nodeId = n.node_id; box.appendChild(card); }
    const state = n.backend_up ? n.status : "down";
    card.className = `card ${state}`;
    const ejected = n.outlier && n.outlier.ejected;
    card.dataset.state = n.draining ? "draining" : n.paused ? "paused" : ejected ? "ejected" : state;
    const used = n.host.mem_total ? 100 * (1 - n.host.mem_available / n.host.mem_total) : 0;
    const hot = new Set(n.hot || n.loaded.map((m) => m.name));
    const kind = n.backend === "openai" ? "OpenAI-compatible" : "Ollama";
    const media = (n.media || []).map((m) => `<span class="media">${esc(m.kind === "image" ? "image" : "speech")}: ${esc(m.model)}</span>`).join("");
    card.innerHTML = `<h3><span>${esc(n.node_id)}</span><span class="meta">${esc(card.dataset.state)}</span></h3>
      <div class="meta">${esc(n.backend_url)} · ${kind} ${esc(n.backend_version || "?")}</div>
      <div class="meta">CPU ${n.host.cpu_percent.toFixed(0)}% · memory ${used.toFixed(0)}% of ${gib(n.host.mem_total)} · ${n.in_flight} in flight</div>
      ${n.outlier && n.outlier.recent_failures ? `<div class="meta">${n.outlier.recent_failures} of ${n.outlier.recent_attempts} recent attempts failed${ejected ? ` · ejected for ${Math.ceil(n.outlier.ejected_for_s)} s` : ""}</div>` : ""}
      <div class="bar"><span style="width:${used.toFixed(0)}%"></span></div>
      <div class="models">${n.models.map((m) => `<span class="${hot.has(m) ? "hot" : ""}">${esc(m)}</span>`).join("")}${media}</div>`;
  }
  for (const card of [...box.children]) if (!seen.has(card.dataset.nodeId)) card.remove();
}

function addEvent(r) {
  const li = document.createElement("li");
  const ms = r.duration == null ? "" : ` ${(r.duration * 1000).toFixed(0)} ms`;
  li.textContent = `${new Date(r.time * 1000).toLocaleTimeString()} ${r.status} ${r.model} → ${r.node || "—"}${ms}${r.error ? " · " + r.error : ""}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
}

// The admin key (when the router has one): asked for once, kept for this tab in sessionStorage, sent as a
// header on every fetch and as the WebSocket's first message.
const KEY = "herd-admin-key";
let adminKey = sessionStorage.getItem(KEY) || "";
const authHeaders = () => (adminKey ? { "X-Herd-Admin-Key": adminKey } : {});

function askKey(wrong) {
  $("conn").textContent = "admin key needed"; $("conn").className = "pill off";
  $("login-note").textContent = wrong ? "That key was refused." : "This router needs its admin key.";
  $("login").hidden = false;
  $("admin-key").focus();
}

$("login").onsubmit = (ev) => {
  ev.preventDefault();
  adminKey = $("admin-key").value.trim();
  sessionStorage.setItem(KEY, adminKey);
  $("login").hidden = true;
  connect();
  const tab = document.querySelector("#tabs button.active");
  if (tab && loaders[tab.dataset.tab]) loaders[tab.dataset.tab]();
};

let delay = 500;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/dashboard/ws`);
  ws.onopen = () => { delay = 500; ws.send(JSON.stringify({ type: "auth", key: adminKey })); };
  ws.onmessage = (ev) => {
    $("conn").textContent = "live"; $("conn").className = "pill";
    const msg = JSON.parse(ev.data);
    if (msg.type === "fleet") renderFleet(msg.data);
    else if (msg.type === "request") addEvent(msg.data);
  };
  ws.onclose = (ev) => {
    if (ev.code === 4401) { askKey(Boolean(adminKey)); return; }
    $("conn").textContent = "reconnecting…"; $("conn").className = "pill off";
    setTimeout(connect, delay); delay = Math.min(delay * 2, 10000);
  };
}

async function api(path, init = {}) {
  const r = await fetch(path, { ...init, headers: { ...(init.headers || {}), ...authHeaders() } });
  if (r.status === 401) askKey(Boolean(adminKey));
  return r;
}

async function getJSON(path) {
  try { const r = await api(path); return r.ok ? await r.json() : null; } catch { return null; }
}

function table(el, rows, cols) {
  if (!rows || !rows.length) { el.innerHTML = "<tr><td>no data yet</td></tr>"; return; }
  el.innerHTML = `<tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>` +
    rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : r[c])}</td>`).join("")}</tr>`).join("");
}

const loaders = {
  async trends() {
    const t = await getJSON("/fleet/analytics/trends?hours=24");
    const o = await getJSON("/fleet/analytics/overview?hours=24");
    const svg = $("chart");
    const b = (t && t.buckets) || [];
    const max = Math.max(1, ...b.map((x) => x.requests));
    const w = 600 / Math.max(1, b.length);
    svg.innerHTML = b.map((x, i) => `<rect x="${i * w + 1}" y="${200 - (180 * x.requests) / max}" width="${w - 2}" height="${(180 * x.requests) / max}" fill="#58a6ff"><title>${esc(x.hour)}: ${x.requests}</title></rect>`).join("");
    $("overview").textContent = o ? `${o.requests} requests · ${(100 * o.error_rate).toFixed(1)}% errors · p50 ${o.p50_ms ?? "–"} ms · p95 ${o.p95_ms ?? "–"} ms · ${o.completion_tokens} tokens out` : "no data yet";
  },
  async models() {
    const m = await getJSON("/fleet/analytics/models?hours=24");
    table($("models-table"), m && m.models, ["model", "requests", "error_rate", "p50_ms", "p95_ms", "ttft_p50_ms", "tokens_per_s"]);
    const n = await getJSON("/fleet/analytics/nodes?hours=24");
    table($("nodes-table"), n && n.nodes, ["node", "requests", "error_rate", "p50_ms", "p95_ms", "tokens_per_s"]);
  },
  async apps() {
    const a = await getJSON("/fleet/analytics/apps?hours=168");
    table($("apps-table"), a && a.apps, ["tag", "requests", "error_rate", "p50_ms", "p95_ms", "p99_ms", "completion_tokens"]);
  },
  async health() {
    const h = await getJSON("/fleet/health");
    const f = (h && h.findings) || [];
    $("findings").innerHTML = f.length ? f.map((x) => `<li class="${x.severity}"><b>${esc(x.title)}</b> — ${esc(x.detail)}. <i>${esc(x.recommendation)}</i></li>`).join("") : "<li>all good</li>";
  },
  async settings() {
    const s = await getJSON("/fleet/settings");
    if (!s) return;
    $("vram_fallback").checked = s.toggles.vram_fallback;
    $("auto_pull").checked = s.toggles.auto_pull;
    $("config").textContent = JSON.stringify(s.config, null, 2);
  },
  async traces() {
    const t = await getJSON("/fleet/traces?limit=100");
    table($("traces-table"), t && t.traces, ["time", "dialect", "model", "node", "status", "duration", "completion_tokens", "error"]);
  },
};

for (const btn of document.querySelectorAll("#tabs button")) {
  btn.onclick = () => {
    document.querySelectorAll("#tabs button, .tab").forEach((e) => e.classList.remove("active"));
    btn.classList.add("active");
    $(btn.dataset.tab).classList.add("active");
    if (loaders[btn.dataset.tab]) loaders[btn.dataset.tab]();
  };
}
for (const key of ["vram_fallback", "auto_pull"]) {
  $(key).onchange = async (e) => {
    await api("/fleet/settings", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ [key]: e.target.checked }) });
  };
}
connect();

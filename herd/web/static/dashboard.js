// herd dashboard, core: helpers, the admin-key login, the live WebSocket (/dashboard/ws) and the tabs. The tab
// scripts (fleet.js, trends.js, models.js, insight.js, settings.js) register a loader per tab in `loaders` and
// a handler per frame type with `onFrame`; charts come from the vendored uPlot (charts.js). No CDN, no build.
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const gib = (b) => (b / 2 ** 30).toFixed(1) + " GiB";
const num = (v, digits = 0, unit = "") => (v === null || v === undefined ? "–" : Number(v).toFixed(digits) + unit);

const loaders = {}; // tab name -> async function that (re)loads the tab's data
const frameHandlers = {}; // frame type -> [function(data)]
const onFrame = (type, fn) => (frameHandlers[type] = frameHandlers[type] || []).push(fn);
let lastFleet = null; // the latest fleet frame, for tabs that need the live nodes

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
  reloadTab();
  document.dispatchEvent(new Event("herd-login")); // for data loaded once at start (the recommendations count)
};

let delay = 500;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/dashboard/ws`);
  ws.onopen = () => { delay = 500; ws.send(JSON.stringify({ type: "auth", key: adminKey })); };
  ws.onmessage = (ev) => {
    $("conn").textContent = "live"; $("conn").className = "pill";
    const msg = JSON.parse(ev.data);
    if (msg.type === "fleet") { lastFleet = msg.data; renderFleet(msg.data); } // fleet.js, wrapped by guest.js
    for (const fn of frameHandlers[msg.type] || []) fn(msg.data);
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

// A table from rows; `cols` are [heading, key or function(row), optional class].
function table(el, rows, cols) {
  if (!rows || !rows.length) { el.innerHTML = "<tr><td>no data yet</td></tr>"; return; }
  const cell = (r, c) => (typeof c[1] === "function" ? c[1](r) : esc(typeof r[c[1]] === "object" && r[c[1]] !== null ? JSON.stringify(r[c[1]]) : r[c[1]] ?? "–"));
  el.innerHTML = `<tr>${cols.map((c) => `<th>${esc(c[0])}</th>`).join("")}</tr>` +
    rows.map((r) => `<tr>${cols.map((c) => `<td class="${c[2] || ""}">${cell(r, c)}</td>`).join("")}</tr>`).join("");
}

const activeTab = () => document.querySelector("#tabs button.active")?.dataset.tab;
function reloadTab() { const t = activeTab(); if (t && loaders[t]) loaders[t](); }

function showTab(name) {
  document.querySelectorAll("#tabs button, .tab").forEach((e) => e.classList.remove("active"));
  document.querySelector(`#tabs button[data-tab="${name}"]`)?.classList.add("active");
  $(name)?.classList.add("active");
  if (loaders[name]) loaders[name]();
}

// Tab buttons get their ids (`<tab>-tab`) once this script listens for their clicks.
$("tabs").addEventListener("click", (ev) => { const b = ev.target.closest("button[data-tab]"); if (b) showTab(b.dataset.tab); });
for (const btn of document.querySelectorAll("#tabs button")) btn.id = `${btn.dataset.tab}-tab`;
document.addEventListener("DOMContentLoaded", () => {
  connect();
  reloadTab();
});

// herd dashboard, good-guest additions: each node card gets its GPU, thermal, battery and owner state and its
// learned week as a heat map (7 days x 24 hours, darker = owner usually busy, the current hour outlined).
// Loaded after dashboard.js; wraps its renderFleet so the cards it draws get one more block.
"use strict";

function guestLine(n) {
  const parts = [];
  for (const g of n.gpu || []) {
    const mem = g.mem_used != null && g.mem_total != null ? ` · ${gib(g.mem_used)} / ${gib(g.mem_total)}`
      : g.mem_used != null ? ` · ${gib(g.mem_used)}` : "";
    parts.push(`GPU ${esc(g.name || "?")} ${g.util_percent != null ? g.util_percent.toFixed(0) + "%" : "?"}${mem}${g.temp_c != null ? " · " + g.temp_c.toFixed(0) + "°C" : ""}`);
  }
  const t = n.thermal;
  if (t) {
    const cls = t.throttling ? "warn" : "";
    parts.push(`<span class="${cls}">thermal ${esc(t.state || "?")}${t.throttling ? " (throttling)" : ""}${t.temp_c != null ? " · " + t.temp_c.toFixed(0) + "°C" : ""}</span>`);
  }
  if (n.on_battery === true) parts.push('<span class="warn">on battery</span>');
  else if (n.on_battery === false) parts.push("on mains");
  const o = n.owner;
  if (o) {
    let s = `owner CPU ${o.cpu_percent != null ? o.cpu_percent.toFixed(0) + "%" : "?"}`;
    if (o.busy_apps && o.busy_apps.length) s += ` · ${o.busy_apps.map(esc).join(", ")}`;
    if (o.in_meeting) s = `<span class="warn">in a meeting (paused)</span> · ${s}`;
    parts.push(s);
  }
  if (n.memory_ceiling != null) parts.push(`herd may use ${gib(n.memory_ceiling)}`);
  return parts.length ? `<div class="meta guest">${parts.join(" · ")}</div>` : "";
}

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

function weekMap(c) {
  if (!c || !c.week || c.week.length !== 168) return "";
  const now = c.now == null ? -1 : Math.floor(c.now);
  const cells = c.week.map((v, i) => {
    const a = (0.08 + 0.92 * Math.max(0, Math.min(1, v))).toFixed(2);
    return `<i class="${i === now ? "now" : ""}" style="opacity:${a}" title="${DAYS[Math.floor(i / 24)]} ${i % 24}:00 · owner load ${(100 * v).toFixed(0)}%"></i>`;
  });
  return `<div class="week" aria-label="the owner's usual week">${cells.join("")}</div>`;
}

(() => {
  const base = renderFleet;
  // eslint-disable-next-line no-global-assign
  renderFleet = function (data) {
    base(data);
    for (const n of data.nodes) {
      const card = $("nodes").querySelector(`[data-node-id="${CSS.escape(n.node_id)}"]`);
      if (!card) continue;
      card.querySelector(".guest-block")?.remove();
      const html = guestLine(n) + weekMap(n.capacity);
      if (!html) continue;
      const block = document.createElement("div");
      block.className = "guest-block";
      block.innerHTML = html;
      card.querySelector(".models").before(block);
    }
  };
})();

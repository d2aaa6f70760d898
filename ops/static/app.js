// chuteflow operations page: polls /api/state every second and redraws what changed.
// Charts are inline SVG drawn here (no library: see ops/server.py). Every text from the
// state goes into the page through textContent, never as HTML.
"use strict";

const POLL_MS = 1000;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];
let lastVersion = null;
let lastState = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

const pct = (x, digits = 2) => (x === null || x === undefined ? "–" : (100 * x).toFixed(digits) + "%");
const num = (x) => (x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US"));
const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "–");

// A line chart: series = [{name, color, points: [[x, y|null], ...], dashed, step}]
function lineChart(title, series, opts) {
  const W = 640, H = 200, L = 52, R = 10, T = 10, B = 28;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).filter((y) => y !== null));
  const box = el("div", { class: "chart" }, el("h3", {}, title));
  if (!xs.length || !ys.length) {
    box.append(el("p", { class: "muted" }, "no data yet"));
    return box;
  }
  const x0 = Math.min(...xs), x1 = Math.max(x0 + 1, ...xs);
  const top = Math.max(opts.minTop || 0, ...ys);
  const y1 = opts.integer ? Math.max(4, Math.ceil((top * 1.1) / 4) * 4) : top * 1.1 || 1;
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => T + (1 - y / y1) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    root.append(svg("line", { x1: L, x2: W - R, y1: py(y), y2: py(y), stroke: "#e6eaee" }));
    const label = svg("text", { x: L - 4, y: py(y) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7785" });
    label.textContent = opts.yFormat(y);
    root.append(label);
  }
  const step = Math.max(1, Math.ceil((x1 - x0) / 12));
  for (let x = Math.ceil(x0); x <= x1; x += step) {
    const label = svg("text", { x: px(x), y: H - 10, "text-anchor": "middle", "font-size": 10, fill: "#6b7785" });
    label.textContent = String(x);
    root.append(label);
  }
  const xl = svg("text", { x: W - R, y: H - 1, "text-anchor": "end", "font-size": 10, fill: "#6b7785" });
  xl.textContent = opts.xLabel || "interval";
  root.append(xl);
  for (const mark of opts.marks || []) {
    root.append(svg("line", { x1: px(mark.x), x2: px(mark.x), y1: T, y2: H - B, stroke: mark.color, "stroke-dasharray": "3 3" }));
    const t = svg("text", { x: px(mark.x) + 3, y: T + 10, "font-size": 10, fill: mark.color });
    t.textContent = mark.label;
    root.append(t);
  }
  const legend = el("div", { class: "legend" });
  for (const s of series) {
    let d = "";
    let pen = false;
    for (const [x, y] of s.points) {
      if (y === null) { pen = false; continue; }
      d += (pen ? "L" : "M") + px(x).toFixed(1) + "," + py(y).toFixed(1);
      pen = true;
    }
    root.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dashed ? "5 3" : "none" }));
    for (const [x, y] of s.points) {
      if (y !== null && s.dots) root.append(svg("circle", { cx: px(x), cy: py(y), r: 3, fill: s.dotColor ? s.dotColor(x, y) : s.color }));
    }
    const swatch = el("i", {});
    swatch.style.background = s.color; // CSSOM, not a style attribute: the CSP allows it
    legend.append(el("span", {}, swatch, s.name));
  }
  box.append(root, legend);
  return box;
}

function colorOf(label, palette) {
  if (!palette.has(label)) palette.set(label, COLORS[palette.size % COLORS.length]);
  return palette.get(label);
}

function policyCell(p) {
  return [el("b", {}, p.label), " ", el("span", { class: "muted" }, `(${p.version})`)];
}

function sinceText(p) {
  const interval = p.since_interval === null ? "not yet decided this day" : `interval ${p.since_interval}`;
  return `since revision ${p.since_revision} (${interval}): ${p.action}${p.reason ? " – " + p.reason : ""}`;
}

function renderRoute(site) {
  const r = site.route;
  if (r.revision === null) return el("p", { class: "muted" }, "no route on the control topic yet");
  const rows = [
    el("tr", { class: "serving" }, el("th", {}, "serves"), el("td", {}, policyCell(r.serving)), el("td", {}, sinceText(r.serving))),
  ];
  for (const s of r.shadows) {
    rows.push(el("tr", { class: "shadow" }, el("th", {}, "shadow"), el("td", {}, policyCell(s)), el("td", {}, sinceText(s))));
  }
  if (!r.shadows.length) rows.push(el("tr", {}, el("th", {}, "shadow"), el("td", { colspan: 2, class: "muted" }, "none")));
  return el("div", {},
    el("table", { class: "route" }, el("tbody", {}, rows)),
    el("p", { class: "muted" },
      `revision ${r.revision} (${r.action}); fallback ${r.fallback}; deadline ${r.deadline_ms === null ? "worker default" : r.deadline_ms + " ms"}`));
}

function renderCanary(site, canary) {
  const ended = canary.ended;
  const status = ended === null
    ? el("span", { class: "badge warn" }, "open")
    : el("span", { class: "badge " + (ended.action === "promote" ? "ok" : "bad"), "data-ended": ended.action }, ended.action === "promote" ? "promoted" : ended.action === "rollback" ? "rolled back" : ended.action);
  const g = canary.gate;
  const head = el("p", {},
    status, " ", el("b", {}, canary.candidate), " against ", el("b", {}, canary.incumbent),
    ` from revision ${canary.started_revision}; gate: ${g.window_intervals} checks, max ratio ${g.max_ratio}, slack ${pct(g.slack)}, ${g.failure_limit} failures roll back, min ${num(g.min_inductions)} inductions`);
  const parts = [head];
  if (ended !== null) {
    parts.push(el("p", { class: "canary-end" }, `revision ${ended.revision} (${ended.action}) at ${when(ended.time)}: ${ended.reason}; ${ended.serving} serves`));
  }
  if (canary.served_intervals.length) {
    const s = canary.served_intervals;
    let text = `candidate served intervals ${s[0]}–${s[s.length - 1]} (${s.length})`;
    if (canary.first_failed_interval !== null) text += `; first failing check after interval ${canary.first_failed_interval}, served ${canary.served_after_first_failure} more after it`;
    parts.push(el("p", {}, text));
  }
  const rows = canary.checks.map((c) => el("tr", { class: "check " + (c.passed === false ? "failed" : c.passed ? "passed" : ""), "data-interval": c.interval },
    el("td", { class: "num" }, c.interval), el("td", { class: "num" }, num(c.inducted)),
    el("td", { class: "num" }, pct(c.canary_rate)), el("td", { class: "num" }, pct(c.incumbent_rate)),
    el("td", { class: "num" }, pct(c.limit)),
    el("td", {}, c.passed === null ? "–" : c.passed ? "pass" : "FAIL"),
    el("td", { class: "muted" }, c.source === "gate" ? (c.outcome || "gate") : "observed only")));
  if (rows.length) {
    const table = el("table", { class: "checks" },
      el("thead", {}, el("tr", {}, ["interval", "inducted", "candidate rate", "incumbent (twin)", "limit", "check", "gate state"].map((h, i) => el("th", { class: i && i < 5 ? "num" : "" }, h)))),
      el("tbody", {}, rows));
    parts.push(el("div", { class: "grid2" }, table, lineChart("gate: candidate's recirculation since it started vs the limit", [
      { name: "candidate (observed)", color: COLORS[1], points: canary.checks.map((c) => [c.interval, c.canary_rate]), dots: true, dotColor: (x) => (canary.checks.find((c) => c.interval === x) || {}).passed === false ? "#b42318" : COLORS[1] },
      { name: "incumbent (counterfactual)", color: COLORS[0], points: canary.checks.map((c) => [c.interval, c.incumbent_rate]), dashed: true },
      { name: "limit", color: "#6b7785", points: canary.checks.map((c) => [c.interval, c.limit]), dashed: true },
    ], { yFormat: (y) => pct(y, 1), minTop: 0.01 })));
  } else {
    parts.push(el("p", { class: "muted" }, "no check yet: the candidate has not served a closed interval"));
  }
  return el("div", { class: "canary card", "data-candidate": canary.candidate, "data-state": ended === null ? "open" : ended.action }, parts);
}

function renderDay(site) {
  const day = site.day;
  if (day === null) return el("p", { class: "muted" }, "no day seen yet");
  const palette = new Map();
  const closed = day.intervals.filter((r) => r.closed);
  const marks = [];
  let prev = null;
  for (const r of day.intervals) {
    if (r.served && prev !== null && r.served !== prev) marks.push({ x: r.interval, label: r.served.split("@")[0], color: colorOf(r.served, palette) });
    if (r.served) prev = r.served;
  }
  const rateChart = lineChart("recirculation rate per interval (floor, under the served policy)", [
    { name: "interval rate", color: "#1d2329", points: closed.map((r) => [r.interval, r.rate]), dots: true, dotColor: (x) => colorOf((day.intervals[x] || {}).served || "?", palette) },
    { name: "day so far", color: COLORS[2], points: closed.map((r) => [r.interval, r.day_rate]), dashed: true },
  ], { yFormat: (y) => pct(y, 1), marks, minTop: 0.01 });
  const shadowSeries = day.shadows.map((label, i) => ({
    name: label, color: COLORS[(i + 3) % COLORS.length],
    points: day.intervals.map((r) => [r.interval, r.shadow_moved[label] === undefined ? null : r.shadow_moved[label]]),
  }));
  const moveChart = lineChart("shadow vs served: chutes the shadow would give elsewhere", shadowSeries, { yFormat: (y) => String(y), integer: true });
  const recent = day.intervals.slice(-12).reverse().map((r) => el("tr", { "data-interval": r.interval },
    el("td", { class: "num" }, r.interval), el("td", {}, r.served || "–"), el("td", { class: "num" }, r.route_revision ?? "–"),
    el("td", { class: "num" }, num(r.inducted)), el("td", { class: "num" }, num(r.recirculated)), el("td", { class: "num" }, pct(r.rate)),
    el("td", {}, Object.entries(r.shadow_moved).map(([k, v]) => `${k}: ${v}`).join(", ") || "–"),
    el("td", {}, r.fallback ? "FALLBACK: " + r.fallback : r.solver_status || "–")));
  return el("div", {},
    el("p", { class: "day", "data-closed-through": day.closed_through }, `day ${day.day_key} from ${when(day.day_start)}, group ${day.day_type_group ?? "forecast by the worker"}; closed through interval ${day.closed_through}; `,
      el("b", {}, `${num(day.inducted)} inducted, ${num(day.recirculated)} recirculated (${pct(day.rate)})`)),
    el("div", { class: "grid2" }, rateChart, moveChart),
    el("h3", {}, "latest intervals"),
    el("table", { class: "intervals" },
      el("thead", {}, el("tr", {}, ["interval", "served", "revision", "inducted", "recirculated", "rate", "shadow: chutes apart", "solver"].map((h) => el("th", {}, h)))),
      el("tbody", {}, recent)));
}

function renderHistory(site) {
  const rows = site.history.slice().reverse().map((h) => el("tr", { class: "route-row", "data-action": h.action, "data-revision": h.revision },
    el("td", { class: "num" }, h.revision), el("td", {}, when(h.time)), el("td", {}, h.action),
    el("td", {}, h.serving), el("td", {}, h.shadows.join(", ") || "–"), el("td", {}, h.reason), el("td", { class: "muted" }, h.issued_by)));
  return el("table", { class: "history" },
    el("thead", {}, el("tr", {}, ["revision", "time", "action", "serves", "shadows", "reason", "by"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function renderActions(site, state) {
  if (!state.actions.enabled) return null;
  const buttons = [];
  if (site.route.canary_open) {
    buttons.push(el("button", { onclick: () => act("promote", site.site_id) }, "promote canary"));
    buttons.push(el("button", { onclick: () => act("abort", site.site_id) }, "abort canary"));
  }
  if (site.route.revision !== null) buttons.push(el("button", { onclick: () => act("rollback", site.site_id) }, "roll back"));
  return el("p", { class: "actions" }, buttons);
}

function renderSites(state) {
  const box = document.getElementById("sites");
  box.replaceChildren();
  if (!state.sites.length) box.append(el("p", { class: "muted" }, "no site has a route or a day on this broker yet"));
  for (const site of state.sites) {
    const canaries = site.canaries.slice(0, 3).map((c) => renderCanary(site, c));
    box.append(el("article", { class: "card site", id: "site-" + site.site_id, "data-site": site.site_id },
      el("h2", {}, "site ", site.site_id),
      renderRoute(site),
      renderActions(site, state),
      el("h3", {}, "canaries"),
      canaries.length ? canaries : el("p", { class: "muted" }, "none"),
      renderDay(site),
      el("h3", {}, "route history"),
      renderHistory(site)));
  }
}

function renderWorkers(state) {
  const box = document.getElementById("workers");
  box.replaceChildren();
  if (!state.workers.length) {
    box.append(el("p", { class: "muted" }, "no worker given (chuteflow ops serve --worker-metrics URL)"));
    return;
  }
  const rows = [];
  for (const w of state.workers) {
    const ready = w.readyz === 200 ? el("span", { class: "badge ok" }, "ready") : el("span", { class: "badge bad" }, w.readyz ? `not ready (${w.readyz})` : "unreachable");
    const sites = Object.entries(w.sites || {}).map(([s, v]) =>
      `${s}: ${v.serving || "?"}, ${num(v.decisions)} decisions, ${num(v.fallbacks || 0)} fallbacks` +
      (v.last_allocation_age_s !== undefined ? `, last allocation ${v.last_allocation_age_s.toFixed(1)} s ago` : "") +
      (v.mean_latency_ms !== undefined ? `, ${v.mean_latency_ms.toFixed(1)} ms mean` : ""));
    rows.push(el("tr", { class: "worker" }, el("td", {}, w.url), el("td", {}, ready), el("td", {}, w.healthz ?? "–"),
      el("td", { class: "num" }, w.lag_total === undefined ? "–" : num(w.lag_total)),
      el("td", {}, sites.map((t) => el("div", {}, t)), w.error ? el("div", { class: "muted" }, w.error) : null)));
  }
  box.append(el("table", {}, el("thead", {}, el("tr", {}, ["worker", "readyz", "healthz", "lag (records)", "sites"].map((h) => el("th", {}, h)))), el("tbody", {}, rows)));
}

function renderDead(state) {
  const d = state.dead_letters;
  const box = document.getElementById("dead");
  box.replaceChildren();
  const kinds = Object.entries(d.by_kind).map(([k, n]) => el("tr", { class: "dead-kind", "data-kind": k }, el("td", {}, k), el("td", { class: "num" }, num(n))));
  box.append(el("div", { class: "grid2" },
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "kind"), el("th", { class: "num" }, `count (${num(d.total)}) since ${d.since_ms ? new Date(d.since_ms).toISOString().slice(0, 16).replace("T", " ") + "Z" : "the page started"}`))), el("tbody", {}, kinds)),
    el("table", {}, el("thead", {}, el("tr", {}, ["latest", "key", "reason"].map((h) => el("th", {}, h)))),
      el("tbody", {}, d.recent.slice(0, 8).map((r) => el("tr", {}, el("td", {}, new Date(r.time_ms).toISOString().slice(11, 19)), el("td", {}, r.key), el("td", {}, r.reason)))))));
}

function renderHeader(state) {
  const feed = document.getElementById("feed");
  const f = state.feed;
  if (f === null) { feed.textContent = "no feed"; feed.className = "badge"; }
  else if (f.error) { feed.textContent = "Kafka: " + f.error; feed.className = "badge bad"; }
  else if (!f.connected) { feed.textContent = "connecting to Kafka…"; feed.className = "badge warn"; }
  else if (!f.caught_up) { feed.textContent = "catching up…"; feed.className = "badge warn"; }
  else { feed.textContent = "live"; feed.className = "badge ok"; }
  document.getElementById("updated").textContent = `${num(state.records)} records read; updated ${new Date().toLocaleTimeString()}`;
  document.getElementById("actions-state").textContent = state.actions.enabled ? "actions enabled (token required)" : state.actions.why_disabled;
  document.getElementById("token-box").hidden = !state.actions.enabled;
}

function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 8000);
}

async function act(action, site) {
  const typed = window.prompt(`${action} on site ${site}: this changes what the floor is told from the next interval.\nType the site id to confirm:`);
  if (typed === null) return;
  const reason = window.prompt("Reason (written into the route):", `${action} from the operations page`) || "";
  const token = document.getElementById("token").value;
  const response = await fetch(`/api/actions/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ site, confirm: typed, reason }),
  });
  const body = await response.json().catch(() => ({}));
  toast(body.error ? `${action} refused: ${body.error}` : `${action} exit ${body.exit_code}: ${body.output}`);
  lastVersion = null;
}

async function poll() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    const state = await response.json();
    renderHeader(state);
    renderWorkers(state);
    if (state.version !== lastVersion) {
      renderSites(state);
      renderDead(state);
      lastVersion = state.version;
    }
    lastState = state;
    document.body.dataset.version = String(state.version);
  } catch (error) {
    const feed = document.getElementById("feed");
    feed.textContent = "page server unreachable";
    feed.className = "badge bad";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();

// contprof web UI: plain JavaScript, no dependencies, no inline code (the
// pages are served with a strict Content-Security-Policy). Each page is a
// full page load; the path picks the view. Data comes from the JSON API on
// the same origin, so the browser's credentials for it apply.
"use strict";

const POLL_MS = 3000;
const SVGNS = "http://www.w3.org/2000/svg";
const TARGET_COLOURS = { on_cpu: "#e4572e", off_cpu: "#3f88c5", network: "#7b4fb0" };
// Timeline marks of tasks that ended without finishing (the same colours as
// the state texts and legend swatches of app.css).
const STATE_COLOURS = { failed: "#c62828", cancelled: "#9e9e9e", interrupted: "#795548" };
const FRAME_TYPES = ["kernel", "native", "go", "jvm", "v8js", "cpython"];
const MONITOR_UNITS = {
  process_cpu: "%", process_thread_count: "threads", system_load: "load",
  http_error_rate: "% errors", http_avg_response_time: "ms",
};

// ---- DOM helpers (text only through textContent: nothing from the API is
// ever parsed as HTML) ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, kids) {
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

const $ = (sel) => document.querySelector(sel);

// fill replaces el's children with kids (arrays flattened, null skipped).
function fill(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
}

async function api(path, opts) {
  const resp = await fetch(path, Object.assign({ headers: { Accept: "application/json" } }, opts || {}));
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!resp.ok) {
    const err = new Error((body && body.error) || resp.status + " " + resp.statusText);
    err.status = resp.status;
    err.body = body;
    throw err;
  }
  return body;
}

function setLive(ok) {
  const el = $("#live");
  if (el) { el.classList.toggle("stale", !ok); el.title = ok ? "live: updated " + new Date().toLocaleTimeString() : "update failed"; }
}

// poll runs fn now and every ms until the page goes away; fn returning
// false stops it.
function poll(fn, ms) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try { again = (await fn()) !== false; setLive(true); } catch (e) { setLive(false); console.error(e); }
    if (again && !stopped) setTimeout(tick, ms || POLL_MS);
  };
  tick();
  return () => { stopped = true; };
}

// ---- formatting ----

const fmtTime = (t) => (t && !t.startsWith("0001-")) ? new Date(t).toLocaleString() : "";
const fmtClock = (t) => (t && !t.startsWith("0001-")) ? new Date(t).toLocaleTimeString() : "";
function fmtNum(v, digits) {
  if (v === undefined || v === null) return "";
  if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toFixed(digits === undefined ? 1 : digits);
}
function fmtValue(v, unit) {
  if (unit === "nanoseconds") {
    if (v >= 1e9) return (v / 1e9).toFixed(2) + " s";
    if (v >= 1e6) return (v / 1e6).toFixed(1) + " ms";
    return (v / 1e3).toFixed(0) + " µs";
  }
  return fmtNum(v) + " " + (unit || "");
}
function ago(t) {
  if (!t || t.startsWith("0001-")) return "";
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  if (s < 60) return Math.max(0, Math.round(s)) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 172800) return (s / 3600).toFixed(1) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

// processKey matches control.Process.Key: host/pid/start-unix-nanoseconds.
function processKey(p) {
  let nanos = "0";
  const st = p.start_time || "";
  if (st && !st.startsWith("0001-")) {
    const m = st.match(/^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/);
    if (m) {
      const secs = BigInt(Math.floor(Date.parse(m[1] + m[3]) / 1000));
      const frac = BigInt((m[2] || "").padEnd(9, "0").slice(0, 9));
      nanos = (secs * 1000000000n + frac).toString();
    }
  }
  return (p.host || "") + "/" + p.pid + "/" + nanos;
}
const attr = (p, k) => (p && p.attributes && p.attributes[k] !== undefined) ? String(p.attributes[k]) : "";
const serviceOf = (p) => attr(p, "service.name");
const exeOf = (p) => attr(p, "process.executable.name");
function procLabel(p) {
  const svc = serviceOf(p), exe = exeOf(p);
  return "pid " + p.pid + (svc ? " · " + svc : "") + (exe && exe !== svc ? " · " + exe : "");
}
const processLink = (p) => h("a", { href: "/process?key=" + encodeURIComponent(processKey(p)), text: procLabel(p) });
function itemText(it) {
  let t = it.monitor + " ≥ " + it.threshold + " in " + it.count + " of " + it.period + "s";
  if (it.uri_regex) t += " (uri ~ " + it.uri_regex + ")";
  if (it.uri_list && it.uri_list.length) t += " (uri in " + it.uri_list.join(", ") + ")";
  return t;
}
function selectorText(sel) {
  if (!sel) return "(all processes)";
  return Object.entries(sel).map(([k, m]) => k + (m.regex ? " ~ /" + m.regex + "/" : " = " + (m.exact !== undefined ? m.exact : JSON.stringify(m)))).join(", ");
}
function causeText(c) {
  return c.monitor + " ≥ " + c.threshold + " in " + c.count + " of " + c.period + "s; values: " + (c.values || []).map((v) => fmtNum(v)).join(", ");
}
const stateEl = (st) => h("span", { class: "state-" + st, text: st });

// ---- a virtualized, sortable table: only the visible rows are in the DOM ----

class VTable {
  constructor(parent, cols, opts) {
    this.cols = cols;
    this.rowH = 24;
    this.rows = [];
    this.view = [];
    this.sortCol = (opts && opts.sortCol) || null;
    this.sortDir = (opts && opts.sortDir) || 1;
    this.filter = null;
    this.scroller = h("div", { class: "vscroll" });
    this.table = h("table");
    const tr = h("tr");
    this.ths = cols.map((c) => {
      const th = h("th", { class: (c.num ? "num " : "") + (c.sort ? "sortable" : ""), text: c.label, title: c.title || c.label });
      if (c.width) th.style.width = c.width;
      if (c.sort) th.addEventListener("click", () => { this.sortBy(c); });
      tr.appendChild(th);
      return th;
    });
    this.table.appendChild(h("thead", {}, tr));
    this.tbody = h("tbody");
    this.table.appendChild(this.tbody);
    this.scroller.appendChild(this.table);
    this.count = h("div", { class: "muted" });
    parent.appendChild(this.scroller);
    parent.appendChild(this.count);
    this.scroller.addEventListener("scroll", () => this.schedule());
    this.markSort();
  }
  sortBy(c) {
    if (this.sortCol === c.key) this.sortDir = -this.sortDir; else { this.sortCol = c.key; this.sortDir = c.num ? -1 : 1; }
    this.markSort();
    this.refresh();
  }
  markSort() {
    this.cols.forEach((c, i) => {
      this.ths[i].classList.toggle("sorted-asc", c.key === this.sortCol && this.sortDir > 0);
      this.ths[i].classList.toggle("sorted-desc", c.key === this.sortCol && this.sortDir < 0);
    });
  }
  setRows(rows) { this.rows = rows; this.refresh(); }
  setFilter(fn) { this.filter = fn; this.refresh(); }
  refresh() {
    let v = this.filter ? this.rows.filter(this.filter) : this.rows.slice();
    const c = this.cols.find((x) => x.key === this.sortCol);
    if (c && c.sort) {
      const d = this.sortDir;
      v = v.map((r) => [c.sort(r), r]);
      v.sort((a, b) => (a[0] < b[0] ? -d : a[0] > b[0] ? d : 0));
      v = v.map((x) => x[1]);
    }
    this.view = v;
    this.count.textContent = v.length + (v.length === this.rows.length ? "" : " of " + this.rows.length) + " rows";
    this.render();
  }
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }
  render() {
    const n = this.view.length;
    const visible = Math.ceil((this.scroller.clientHeight || 420) / this.rowH) + 1;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / this.rowH) - 5);
    const last = Math.min(n, first + visible + 10);
    const out = [];
    const spacer = (px) => { const tr = h("tr"); tr.style.height = px + "px"; return tr; };
    if (first > 0) out.push(spacer(first * this.rowH));
    for (let i = first; i < last; i++) {
      const r = this.view[i];
      out.push(h("tr", {}, this.cols.map((c) => {
        const v = c.render(r);
        const td = h("td", { class: c.num ? "num" : "" }, v);
        if (typeof v === "string") td.title = v;
        return td;
      })));
    }
    if (last < n) out.push(spacer((n - last) * this.rowH));
    fill(this.tbody, ...out);
  }
}

// ---- the task timeline: one canvas, one mark per task ----

class Timeline {
  constructor(parent) {
    this.canvas = h("canvas", { id: "timeline" });
    this.wrap = h("div", { class: "timeline-wrap" }, this.canvas);
    parent.appendChild(h("div", { class: "legend" },
      Object.keys(TARGET_COLOURS).map((t) => h("span", {}, h("span", { class: "sw " + t }), t)),
      h("span", {}, h("span", { class: "sw st-running" }), "running"),
      h("span", {}, h("span", { class: "sw st-failed" }), "failed / cancelled (red / grey)"),
      h("span", {}, h("span", { class: "sw st-interrupted" }), "interrupted (collector stopped)")));
    parent.appendChild(this.wrap);
    this.tasks = [];
    this.marks = [];
    this.canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    this.canvas.addEventListener("mouseleave", () => hideTip());
    this.canvas.addEventListener("click", (ev) => {
      const m = this.hit(ev);
      if (m) location.href = "/tasks/" + encodeURIComponent(m.task.id);
    });
    window.addEventListener("resize", () => this.draw());
    // Tests and people in the console can reach the marks.
    window.__contprof = Object.assign(window.__contprof || {}, { timeline: this });
  }
  setTasks(tasks) { this.tasks = tasks; this.draw(); }
  draw() {
    const t0 = performance.now();
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth || 800, H = c.clientHeight || 150;
    c.width = W * dpr; c.height = H * dpr;
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const now = Date.now();
    let from = now - 3600e3;
    for (const t of this.tasks) from = Math.min(from, new Date(t.created).getTime());
    from -= (now - from) * 0.02;
    const left = 70, right = W - 10, axisY = H - 18;
    const x = (ms) => left + (ms - from) / (now - from) * (right - left);
    const lanes = Object.keys(TARGET_COLOURS);
    const laneH = (axisY - 8) / lanes.length;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#6b7280";
    lanes.forEach((l, i) => { g.fillText(l, 4, 8 + laneH * i + laneH / 2 + 4); });
    // axis
    g.strokeStyle = "#c7ccd6"; g.beginPath(); g.moveTo(left, axisY); g.lineTo(right, axisY); g.stroke();
    const span = now - from;
    const steps = [60e3, 300e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];
    const step = steps.find((s) => span / s <= 8) || 86400e3;
    for (let tk = Math.ceil(from / step) * step; tk <= now; tk += step) {
      const px = x(tk);
      g.beginPath(); g.moveTo(px, axisY); g.lineTo(px, axisY + 4); g.stroke();
      const d = new Date(tk);
      const label = step >= 86400e3 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      g.fillText(label, px - 14, H - 4);
    }
    this.marks = [];
    for (const t of this.tasks) {
      const lane = Math.max(0, lanes.indexOf(t.target));
      const start = new Date(t.started && !t.started.startsWith("0001-") ? t.started : t.created).getTime();
      const end = t.ended && !t.ended.startsWith("0001-") ? new Date(t.ended).getTime() : now;
      const x0 = x(start), x1 = Math.max(x(end), x0 + 3);
      const y = 8 + laneH * lane + laneH * 0.2, hh = laneH * 0.6;
      g.fillStyle = STATE_COLOURS[t.state] || TARGET_COLOURS[t.target] || "#555";
      g.globalAlpha = t.state === "pending" ? 0.5 : 0.85;
      g.fillRect(x0, y, x1 - x0, hh);
      if (t.state === "running") { g.globalAlpha = 1; g.strokeStyle = "#222"; g.lineWidth = 2; g.strokeRect(x0, y, x1 - x0, hh); g.lineWidth = 1; }
      this.marks.push({ x0, x1, y, y1: y + hh, task: t });
    }
    g.globalAlpha = 1;
    this.lastDrawMs = performance.now() - t0;
    window.__contprof = Object.assign(window.__contprof || {}, { timelineMs: this.lastDrawMs, timelineTasks: this.tasks.length, timelineAt: performance.now() });
  }
  hit(ev) {
    const r = this.canvas.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    let best = null, bestD = 6;
    for (const m of this.marks) {
      if (py < m.y - 2 || py > m.y1 + 2) continue;
      const d = px < m.x0 ? m.x0 - px : px > m.x1 ? px - m.x1 : 0;
      if (d < bestD || (d === 0 && best && m.x0 > best.x0)) { best = m; bestD = d; }
    }
    return best;
  }
  hover(ev) {
    const m = this.hit(ev);
    this.canvas.style.cursor = m ? "pointer" : "default";
    if (!m) { hideTip(); return; }
    const t = m.task;
    const lines = [t.id + " · " + t.target + " · " + t.state, (t.policy ? "policy " + t.policy : "manual task"),
      (t.processes || []).map(procLabel).join("; "), "created " + fmtTime(t.created)];
    for (const c of t.causes || []) lines.push("cause: " + causeText(c));
    if (t.error) lines.push("error: " + t.error);
    showTip(ev, lines.join("\n"));
  }
}

function showTip(ev, text) {
  const tip = $("#tip");
  tip.textContent = text;
  tip.hidden = false;
  const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
  tip.style.left = x + "px"; tip.style.top = y + "px";
}
function hideTip() { const tip = $("#tip"); if (tip) tip.hidden = true; }

// ---- manual task form ----

function manualForm(pid) {
  const target = h("select", { name: "target" }, ["on_cpu", "off_cpu", "network"].map((t) => h("option", { value: t, text: t })));
  const pidIn = h("input", { type: "number", name: "pid", min: 1, placeholder: "pid", value: pid || "" });
  const dur = h("input", { type: "text", name: "duration", value: "30s", size: 6 });
  const out = h("span", { class: "muted" });
  const form = h("form", { class: "manual", id: "manual-task" }, "Profile process", pidIn, "target", target, "for", dur,
    h("button", { class: "primary", type: "submit", text: "Start task" }), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.className = "muted"; out.textContent = "requesting…";
    try {
      const r = await api("/api/v1/tasks", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ target: target.value, pid: Number(pidIn.value), duration: dur.value }) });
      fill(out, "started ", ...r.tasks.map((t) => h("a", { href: "/tasks/" + t.id, text: t.id })));
    } catch (e) {
      out.className = "err"; out.textContent = e.message;
    }
  });
  return form;
}

// ---- overview ----

function overview(app) {
  const banner = h("div");
  const polSec = h("section"), procSec = h("section"), tlSec = h("section"), taskSec = h("section");
  fill(app, h("h1", { text: "Overview" }), banner,
    h("h2", { text: "Policies" }), polSec,
    h("h2", { text: "Task timeline" }), tlSec,
    h("h2", { text: "Monitored processes" }), procSec,
    h("h2", { text: "Tasks" }), taskSec);

  const timeline = new Timeline(tlSec);
  tlSec.appendChild(h("p", { class: "muted", text: "One mark per task (start to end) in the 48 hours kept; hover for the cause, click to open." }));

  const svcSel = h("select", { id: "service-filter" }, h("option", { value: "", text: "all services" }));
  const textIn = h("input", { type: "text", id: "process-filter", placeholder: "filter (pid, name, attribute)" });
  procSec.appendChild(h("div", { class: "controls" }, "Service", svcSel, textIn));
  const monitors = Object.keys(MONITOR_UNITS);
  const procTable = new VTable(procSec, [
    { key: "pid", label: "PID", num: true, width: "70px", sort: (r) => r.pid, render: (r) => h("a", { href: "/process?key=" + encodeURIComponent(processKey(r)), text: String(r.pid) }) },
    { key: "service", label: "service.name", sort: serviceOf, render: serviceOf },
    { key: "exe", label: "executable", sort: exeOf, render: exeOf },
    { key: "host", label: "host", sort: (r) => r.host, render: (r) => r.host },
    { key: "policies", label: "policies", sort: (r) => (r.policies || []).join(","), render: (r) => (r.policies || []).join(", ") },
    ...monitors.map((m) => ({ key: m, label: m.replace("process_", "").replace("http_", "http ").replace(/_/g, " "), title: m + " (" + MONITOR_UNITS[m] + ")", num: true,
      sort: (r) => (r.latest && r.latest[m] !== undefined ? r.latest[m] : -1), render: (r) => (r.latest ? fmtNum(r.latest[m]) : "") })),
    { key: "tasks", label: "tasks 48h", num: true, sort: (r) => r.tasks_48h || 0, render: (r) => String(r.tasks_48h || 0) },
    { key: "last", label: "last trigger", sort: (r) => r.last_trigger || "", render: (r) => ago(r.last_trigger) },
  ], { sortCol: "tasks", sortDir: -1 });
  procTable.table.id = "processes";
  const applyFilter = () => {
    const svc = svcSel.value, q = textIn.value.trim().toLowerCase();
    procTable.setFilter((r) => (!svc || serviceOf(r) === svc) &&
      (!q || String(r.pid).includes(q) || JSON.stringify(r.attributes || {}).toLowerCase().includes(q)));
  };
  svcSel.addEventListener("change", applyFilter);
  textIn.addEventListener("input", applyFilter);

  taskSec.appendChild(manualForm());
  const taskTable = new VTable(taskSec, [
    { key: "id", label: "task", width: "150px", sort: (r) => r.id, render: (r) => h("a", { href: "/tasks/" + encodeURIComponent(r.id), text: r.id }) },
    { key: "created", label: "created", sort: (r) => r.created, render: (r) => fmtTime(r.created) },
    { key: "policy", label: "policy", sort: (r) => r.policy || "", render: (r) => r.policy || (r.manual ? "(manual)" : "") },
    { key: "target", label: "target", sort: (r) => r.target, render: (r) => r.target },
    { key: "state", label: "state", sort: (r) => r.state, render: (r) => stateEl(r.state) },
    { key: "process", label: "processes", sort: (r) => (r.processes[0] || {}).pid || 0, render: (r) => (r.processes || []).map(procLabel).join("; ") },
    { key: "cause", label: "cause", sort: (r) => (r.causes && r.causes[0] ? r.causes[0].monitor : ""), render: (r) => (r.causes || []).map(causeText).join(" | ") },
  ], { sortCol: "created", sortDir: -1 });
  taskTable.table.id = "tasks";

  let lastTasks = "", lastProcs = "", lastPols = "";
  poll(async () => {
    const [pols, procs, tasks] = await Promise.all([api("/api/v1/policies"), api("/api/v1/processes"), api("/api/v1/tasks")]);
    const pj = JSON.stringify(pols);
    if (pj !== lastPols) { lastPols = pj; renderPolicies(polSec, banner, pols); }
    const prj = JSON.stringify(procs);
    if (prj !== lastProcs) {
      lastProcs = prj;
      const list = procs.processes || [];
      const services = [...new Set(list.map(serviceOf).filter(Boolean))].sort();
      const cur = svcSel.value;
      fill(svcSel, h("option", { value: "", text: "all services" }), ...services.map((v) => h("option", { value: v, text: v })));
      svcSel.value = services.includes(cur) ? cur : "";
      procTable.setRows(list);
    }
    const tj = JSON.stringify(tasks);
    if (tj !== lastTasks) {
      lastTasks = tj;
      timeline.setTasks(tasks.tasks || []);
      taskTable.setRows(tasks.tasks || []);
    }
  });
}

function renderPolicies(sec, banner, pols) {
  fill(banner);
  if (pols.last_error) banner.appendChild(h("div", { class: "banner", id: "policy-error", text: "Last policy load error (the last good policies stay in force):\n" + pols.last_error }));
  const sources = (pols.sources || []).map((s) => (s.kind || "") + " " + (s.location || "")).join("; ");
  const rows = (pols.policies || []).map((p) => h("tr", {},
    h("td", {}, h("strong", { text: p.name })), h("td", { text: p.source || "" }), h("td", { text: selectorText(p.selector), title: selectorText(p.selector) }),
    h("td", { text: p.target }), h("td", { text: p.duration + " / " + p.silence }),
    h("td", {}, (p.items || []).map((it) => h("div", { text: itemText(it) }))),
    h("td", { class: "num", text: String((p.processes || []).reduce((n, x) => n + x.tasks_48h, 0)) })));
  fill(sec, 
    h("div", { class: "muted", text: "version " + (pols.version || "") + " · loaded " + fmtTime(pols.loaded_at) + (sources ? " · sources: " + sources : "") }),
    rows.length ? h("table", { id: "policies" }, h("thead", {}, h("tr", {}, ["name", "source", "selector", "target", "duration / silence", "items", "tasks 48h"].map((x) => h("th", { text: x })))), h("tbody", {}, rows))
      : h("p", { class: "muted", text: "No policies are loaded." }));
}

// ---- task page ----

function taskPage(app, id) {
  const head = h("section"), causes = h("section"), flameSec = h("section"), netSec = h("section");
  fill(app, h("h1", {}, "Task ", h("span", { id: "task-id", text: id })), head, causes, flameSec, netSec);
  let flame = null, lastProfiles = -1;
  poll(async () => {
    let t;
    try { t = await api("/api/v1/tasks/" + encodeURIComponent(id)); } catch (e) {
      if (e.status === 404) { fill(head, h("p", { class: "err", text: e.message })); return false; }
      throw e;
    }
    fill(head, h("dl", { class: "kv" },
      h("dt", { text: "state" }), h("dd", {}, stateEl(t.state), t.error ? h("span", { class: "err", text: " " + t.error }) : null),
      h("dt", { text: "policy" }), h("dd", { text: t.policy || (t.manual ? "manual (API)" : "") }),
      h("dt", { text: "target" }), h("dd", { text: t.target + " for " + t.duration + (t.silence ? ", silence " + t.silence : "") }),
      h("dt", { text: "created" }), h("dd", { text: fmtTime(t.created) }),
      h("dt", { text: "started" }), h("dd", { text: fmtTime(t.started) }),
      h("dt", { text: "ended" }), h("dd", { text: fmtTime(t.ended) }),
      h("dt", { text: "processes" }), h("dd", {}, (t.processes || []).map((p) => h("div", {}, processLink(p)))),
      h("dt", { text: "profile" }), h("dd", {}, t.profile && t.profile.url
        ? h("span", {}, h("a", { href: t.profile.url, id: "pprof-link", download: "contprof-" + t.id + ".pb.gz", text: "download pprof" }),
          " (" + Math.round(t.profile.bytes / 1024) + " KB, " + t.profile.profiles + " report intervals; go tool pprof -http=: FILE)")
        : (t.profile && (t.profile.error || (t.profile.dropped ? "dropped to stay within profile_store_bytes" : ""))) || (t.target === "network" ? "none: network tasks report flows (below)" : "none yet"))));
    fill(causes, h("h2", { text: "Causes" }), (t.causes && t.causes.length) ? t.causes.map((c) => h("div", { class: "cause" },
      h("strong", { text: c.monitor }), " ≥ " + c.threshold + " in at least " + c.count + " of " + c.period + " seconds, completed " + fmtClock(c.at),
      h("div", { class: "values" }, "per-second values: " + (c.values || []).map((v) => fmtNum(v, 2)).join(", ")))) : [h("p", { class: "muted", text: t.manual ? "Started by hand." : "No cause recorded." })]);
    if (t.target === "network") {
      await renderNetwork(netSec, t);
    } else if (t.profile && t.profile.url && t.profile.profiles !== lastProfiles) {
      lastProfiles = t.profile.profiles;
      if (!flame) flame = new FlameView(flameSec, id);
      await flame.load();
    } else if (!flame && !(t.profile && t.profile.url)) {
      fill(flameSec, h("h2", { text: "Flame graph" }), h("p", { class: "muted", text: t.state === "running" || t.state === "pending" ? "Waiting for the first report interval…" : "This task has no profile." }));
    }
    return !(t.state === "finished" || t.state === "failed" || t.state === "cancelled" || t.state === "interrupted");
  });
}

async function renderNetwork(sec, t) {
  const r = await api("/api/v1/tasks/" + encodeURIComponent(t.id) + "/flows");
  const flows = r.flows || [];
  const bytes = (n) => n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";
  const peerName = (f) => f.peer_service ? f.peer_service + (f.peer_pid ? " (pid " + f.peer_pid + ")" : "") : f.peer + (f.peer_port ? ":" + f.peer_port : "");
  const rows = flows.map((f) => h("tr", {},
    h("td", { text: "pid " + f.pid + (f.local_port ? " :" + f.local_port : "") }), h("td", { text: f.role }), h("td", { text: peerName(f), title: f.peer }),
    h("td", { class: "num", text: bytes(f.tx_bytes) }), h("td", { class: "num", text: bytes(f.rx_bytes) }), h("td", { class: "num", text: String(f.retransmits) }),
    h("td", { class: "num", text: f.rtt_seconds ? (f.rtt_seconds * 1000).toFixed(2) + " ms" : "" }),
    h("td", { class: "num", text: f.opened + " / " + f.closed + " / " + f.active }),
    h("td", { class: "num", text: f.http_requests ? f.http_requests + (f.http_errors ? " (" + f.http_errors + " 5xx)" : "") : "" }),
    h("td", { class: "num", text: f.http_requests ? (f.http_seconds / f.http_requests * 1000).toFixed(1) + " ms" : "" })));
  // Topology: the service instance in the middle, one node per peer.
  const peers = new Map();
  for (const f of flows) {
    const k = f.peer_service || f.peer;
    const p = peers.get(k) || { name: k, bytes: 0, roles: new Set(), retrans: 0 };
    p.bytes += f.tx_bytes + f.rx_bytes; p.roles.add(f.role); p.retrans += f.retransmits;
    peers.set(k, p);
  }
  const list = [...peers.values()].sort((a, b) => b.bytes - a.bytes).slice(0, 24);
  const W = 720, H = 300, cx = W / 2, cy = H / 2, maxB = Math.max(1, ...list.map((p) => p.bytes));
  const svg = s("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, id: "topology" });
  list.forEach((p, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, list.length) - Math.PI / 2, x = cx + Math.cos(a) * 280, y = cy + Math.sin(a) * 115;
    svg.appendChild(s("line", { x1: cx, y1: cy, x2: x, y2: y, "stroke-width": (1 + 5 * p.bytes / maxB).toFixed(1), class: p.retrans ? "retrans" : "" }));
    svg.appendChild(s("circle", { cx: x, cy: y, r: 8 }, s("title", { text: p.name + ": " + bytes(p.bytes) + ", " + [...p.roles].join("/") + (p.retrans ? ", " + p.retrans + " retransmits" : "") })));
    svg.appendChild(s("text", { x: x + (x < cx ? -10 : 10), y: y + 4, "text-anchor": x < cx ? "end" : "start", text: p.name }));
  });
  svg.appendChild(s("circle", { cx, cy, r: 16, class: "self" }));
  svg.appendChild(s("text", { x: cx, y: cy + 30, "text-anchor": "middle", text: serviceOf((t.processes || [])[0] || {}) || "service instance" }));
  fill(sec, h("h2", { text: "Network flows" }),
    flows.length ? h("table", { id: "flows" }, h("thead", {}, h("tr", {}, ["local", "role", "peer", "sent", "received", "retransmits", "RTT", "conns opened / closed / open", "HTTP", "HTTP avg"].map((x) => h("th", { text: x })))), h("tbody", {}, rows))
      : h("p", { class: "muted", text: t.state === "running" || t.state === "pending" ? "Waiting for the first report interval…" : "No flows were seen." }),
    r.dropped ? h("p", { class: "note", text: r.dropped + " further flows were left out (bound per task)." }) : null,
    h("h2", { text: "Topology" }), h("div", { class: "topo" }, svg),
    h("p", { class: "muted", text: "Per-flow metrics and sampled HTTP exchange logs also leave through the pipelines, stamped contprof.task.id=" + t.id + "." }));
}

// ---- flame graph: one SVG, icicle layout (root on top) ----

class FlameView {
  constructor(parent, id) {
    this.id = id;
    this.interval = "";
    this.query = "";
    this.intervalSel = h("select", { id: "flame-interval" }, h("option", { value: "", text: "whole task" }));
    this.search = h("input", { type: "text", id: "flame-search", placeholder: "search function (text or /regex/)", size: 32 });
    this.info = h("span", { class: "muted", id: "flame-info" });
    this.box = h("div", { id: "flame" });
    const reset = h("button", { type: "button", id: "flame-reset", text: "reset zoom" });
    fill(parent, h("h2", { text: "Flame graph" }),
      h("div", { class: "flame-controls" }, this.intervalSel, this.search, reset, this.info),
      h("div", { class: "legend" }, FRAME_TYPES.map((t) => h("span", {}, h("span", { class: "sw ft-" + t }), t))),
      this.box);
    this.intervalSel.addEventListener("change", () => { this.interval = this.intervalSel.value; this.load(); });
    let timer = null;
    this.search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { this.query = this.search.value; this.highlight(); }, 150); });
    reset.addEventListener("click", () => { this.focus = this.tree.root; this.draw(); });
    window.addEventListener("resize", () => this.draw());
  }
  async load() {
    const q = this.interval ? "?interval=" + this.interval : "";
    const tree = await api("/api/v1/tasks/" + encodeURIComponent(this.id) + "/flame" + q);
    const link = (n, p) => { n.p = p; for (const c of n.c || []) link(c, n); };
    link(tree.root, null);
    this.tree = tree;
    this.focus = tree.root;
    const cur = this.intervalSel.value;
    fill(this.intervalSel, h("option", { value: "", text: "whole task" }),
      ...(tree.intervals || []).map((iv) => h("option", { value: String(Math.floor(new Date(iv).getTime() / 1000)), text: "interval from " + fmtClock(iv) })));
    this.intervalSel.value = cur;
    this.draw();
  }
  draw() {
    if (!this.tree) return;
    const W = this.box.clientWidth || 1000, rowH = 17;
    const focus = this.focus, total = this.tree.root.v;
    const ancestors = [];
    for (let a = focus.p; a; a = a.p) ancestors.unshift(a);
    const minW = 0.4;
    const items = [];
    let depth = 0;
    ancestors.forEach((a, i) => items.push({ n: a, x: 0, w: W, d: i, above: true }));
    const base = ancestors.length;
    const walk = (n, x, d) => {
      const w = n.v / focus.v * W;
      if (w < minW) return;
      items.push({ n, x, w, d: base + d });
      depth = Math.max(depth, base + d);
      let cx = x;
      for (const c of n.c || []) { walk(c, cx, d + 1); cx += c.v / focus.v * W; }
    };
    walk(focus, 0, 0);
    depth = Math.max(depth, base);
    const svg = s("svg", { viewBox: "0 0 " + W + " " + (depth + 1) * rowH, height: (depth + 1) * rowH, id: "flame-svg" });
    const unit = this.tree.unit;
    this.groups = [];
    for (const it of items) {
      const n = it.n;
      const g = s("g", { class: "ft-" + (n.t || "root") + (it.above ? " above" : "") });
      g.appendChild(s("rect", { x: it.x.toFixed(1), y: it.d * rowH, width: Math.max(0.5, it.w - 0.5).toFixed(1), height: rowH - 1 }));
      if (it.w > 28) {
        const chars = Math.floor((it.w - 6) / 6.7);
        g.appendChild(s("text", { x: (it.x + 3).toFixed(1), y: it.d * rowH + 12, text: n.n.length > chars ? n.n.slice(0, Math.max(1, chars - 1)) + "…" : n.n }));
      }
      g.appendChild(s("title", { text: n.n + "\n" + fmtValue(n.v, unit) + " (" + (100 * n.v / total).toFixed(2) + "% of all)" + (n.t ? "\nframe type: " + n.t : "") }));
      g.dataset.name = n.n;
      g.addEventListener("click", () => { this.focus = n; this.draw(); });
      this.groups.push({ g, n });
      svg.appendChild(g);
    }
    fill(this.box, svg);
    this.highlight();
  }
  highlight() {
    if (!this.groups) return;
    const q = this.query.trim();
    let re = null;
    if (q) {
      try { re = q.length > 2 && q.startsWith("/") && q.endsWith("/") ? new RegExp(q.slice(1, -1), "i") : new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i"); } catch (e) { re = null; }
    }
    let n = 0;
    for (const { g, n: node } of this.groups) {
      const m = !!re && re.test(node.n);
      g.classList.toggle("match", m);
      if (m) n++;
    }
    // Matched share: count each matching path once (top-most match).
    let matched = 0;
    const walk = (node, inMatch) => {
      const m = !!re && re.test(node.n);
      if (m && !inMatch) matched += node.v;
      for (const c of node.c || []) walk(c, inMatch || m);
    };
    if (re) walk(this.tree.root, false);
    const total = this.tree.root.v;
    this.info.textContent = (re ? n + " frames match, " + (100 * matched / Math.max(1, total)).toFixed(1) + "% of the total · " : "") +
      "total " + fmtValue(total, this.tree.unit) + " · " + this.tree.nodes + " nodes" + (this.tree.folded ? " (" + this.tree.folded + " small paths folded)" : "");
  }
}

// ---- process page: per-second charts of the watched monitors ----

function processPage(app) {
  const key = new URLSearchParams(location.search).get("key") || "";
  const head = h("section"), charts = h("section"), tasksSec = h("section");
  fill(app, h("h1", {}, "Process ", h("span", { id: "process-key", text: key })), head, h("h2", { text: "Last 15 minutes, per second" }), charts, h("h2", { text: "Tasks" }), tasksSec);
  const pid = Number(key.split("/")[1]) || "";
  tasksSec.appendChild(manualForm(pid));
  const taskList = h("div");
  tasksSec.appendChild(taskList);
  poll(async () => {
    const [procs, pols, tasks] = await Promise.all([api("/api/v1/processes"), api("/api/v1/policies"), api("/api/v1/tasks")]);
    let hist = null, histErr = "";
    try { hist = await api("/api/v1/processes/history?key=" + encodeURIComponent(key)); } catch (e) { histErr = e.message; }
    const st = (procs.processes || []).find((p) => processKey(p) === key);
    const mine = (tasks.tasks || []).filter((t) => (t.processes || []).some((p) => processKey(p) === key));
    fill(head, st ? h("dl", { class: "kv" },
      h("dt", { text: "process" }), h("dd", { text: procLabel(st) }),
      h("dt", { text: "policies" }), h("dd", { text: (st.policies || []).join(", ") || "none" }),
      h("dt", { text: "latest" }), h("dd", { text: Object.entries(st.latest || {}).map(([m, v]) => m + " " + fmtNum(v) + " " + MONITOR_UNITS[m]).join(" · ") }),
      h("dt", { text: "tasks 48h" }), h("dd", { text: String(st.tasks_48h || 0) + (st.last_trigger ? ", last " + ago(st.last_trigger) : "") }),
      h("dt", { text: "attributes" }), h("dd", {}, Object.entries(st.attributes || {}).map(([k, v]) => h("div", { class: "values", text: k + " = " + v }))))
      : h("p", { class: "muted", text: "This process is not monitored now." }));
    const items = [];
    for (const p of pols.policies || []) if (st && (st.policies || []).includes(p.name)) for (const it of p.items || []) items.push({ policy: p.name, it });
    if (!hist) { fill(charts, h("p", { class: "muted", text: histErr })); }
    else {
      const watched = new Set(items.map((x) => x.it.monitor));
      const series = hist.series.filter((sr) => watched.size === 0 || watched.has(sr.monitor));
      fill(charts, ...(series.length ? series.map((sr) => chart(sr, hist, items.filter((x) => x.it.monitor === sr.monitor), mine))
        : [h("p", { class: "muted", text: "No data for the monitors its policies watch yet." })]));
    }
    fill(taskList, mine.length ? h("table", {}, h("thead", {}, h("tr", {}, ["task", "created", "policy", "target", "state", "cause"].map((x) => h("th", { text: x })))),
      h("tbody", {}, mine.slice().reverse().map((t) => h("tr", {}, h("td", {}, h("a", { href: "/tasks/" + t.id, text: t.id })), h("td", { text: fmtTime(t.created) }),
        h("td", { text: t.policy || "(manual)" }), h("td", { text: t.target }), h("td", {}, stateEl(t.state)), h("td", { text: (t.causes || []).map(causeText).join(" | ") })))))
      : h("p", { class: "muted", text: "No tasks in the last 48 hours." }));
  }, 5000);
}

function chart(sr, hist, items, tasks) {
  const canvas = h("canvas", { class: "series", "data-monitor": sr.monitor });
  const box = h("div", { class: "chart" }, h("h3", { text: sr.monitor + " (" + MONITOR_UNITS[sr.monitor] + ")" }), canvas,
    h("div", { class: "muted", text: items.map((x) => x.policy + ": " + itemText(x.it)).join(" · ") }));
  requestAnimationFrame(() => {
    const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth || 900, H = canvas.clientHeight || 140;
    canvas.width = W * dpr; canvas.height = H * dpr;
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const start = new Date(hist.start).getTime(), end = new Date(hist.end).getTime() + 1000;
    const vals = sr.values;
    let top = 0;
    for (const v of vals) if (v !== null && v > top) top = v;
    for (const x of items) top = Math.max(top, x.it.threshold);
    top = top * 1.1 || 1;
    const left = 40, right = W - 6, topY = 6, bot = H - 16;
    const X = (ms) => left + (ms - start) / (end - start) * (right - left);
    const Y = (v) => bot - v / top * (bot - topY);
    g.font = "10px system-ui, sans-serif"; g.fillStyle = "#6b7280";
    g.fillText(fmtNum(top), 2, topY + 8); g.fillText("0", 2, bot);
    for (let m = 0; m <= 15; m += 5) { const t = end - m * 60e3; g.fillText(m ? "-" + m + "m" : "now", X(t) - 10, H - 3); }
    // tasks: shaded from start to end, a line at creation
    for (const t of tasks) {
      const c = new Date(t.created).getTime();
      const e = t.ended && !t.ended.startsWith("0001-") ? new Date(t.ended).getTime() : Date.now();
      if (e < start) continue;
      g.fillStyle = "rgba(228,87,46,0.12)"; g.fillRect(X(Math.max(c, start)), topY, X(e) - X(Math.max(c, start)), bot - topY);
      if (c >= start) { g.strokeStyle = "#e4572e"; g.beginPath(); g.moveTo(X(c), topY); g.lineTo(X(c), bot); g.stroke(); g.fillStyle = "#e4572e"; g.fillText(t.id.slice(0, 8), X(c) + 2, topY + 18); }
    }
    // values
    g.strokeStyle = "#2f6fde"; g.lineWidth = 1.5; g.beginPath();
    let pen = false;
    vals.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const px = X(start + i * 1000), py = Y(v);
      if (pen) g.lineTo(px, py); else g.moveTo(px, py);
      pen = true;
    });
    g.stroke(); g.lineWidth = 1;
    // thresholds
    g.setLineDash([5, 4]); g.strokeStyle = "#c62828";
    for (const x of items) { const y = Y(x.it.threshold); g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke(); g.fillStyle = "#c62828"; g.fillText(x.policy + " ≥ " + x.it.threshold, right - 140, y - 3); }
    g.setLineDash([]);
  });
  return box;
}

// ---- policy editor with dry-run ----

function editorPage(app) {
  const doc = h("textarea", { id: "policy-doc", spellcheck: "false" });
  const minutes = h("input", { type: "number", id: "dry-minutes", min: 1, max: 1440, value: 15, size: 4 });
  const run = h("button", { class: "primary", id: "dry-run", type: "button", text: "Dry-run" });
  const errs = h("div", { id: "policy-errors" });
  const results = h("div", { id: "dry-results" });
  fill(app, h("h1", { text: "Policy editor" }),
    h("p", { class: "note", text: "Dry-run only: this page validates a policy document with the collector's own decoder and replays it on the processor's live per-second history, starting nothing. " +
      "It does not apply policies: they come from sources the extension does not own (the collector configuration, policy_file, policy_url). To apply, put the document in the watched policy_file (or your policy_url) and it loads within seconds." }),
    h("div", { class: "editor" },
      h("div", {}, h("div", { class: "controls" }, "Replay the last", minutes, "minutes", run), doc, errs),
      h("div", {}, results)));
  let timer = null, seq = 0;
  const go = async () => {
    const my = ++seq;
    try {
      const r = await api("/api/v1/policies/dryrun?minutes=" + encodeURIComponent(minutes.value), { method: "POST", headers: { "Content-Type": "application/yaml", Accept: "application/json" }, body: doc.value });
      if (my !== seq) return;
      doc.classList.remove("invalid");
      fill(errs);
      renderDryRun(results, r);
    } catch (e) {
      if (my !== seq) return;
      const list = (e.body && e.body.errors) || [e.message];
      doc.classList.add("invalid");
      fill(errs, h("ul", { class: "errors" }, list.map((x) => h("li", { text: x }))));
    }
  };
  doc.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(go, 600); });
  run.addEventListener("click", go);
  fetch("/api/v1/policies/document").then((r) => r.text()).then((t) => { if (!doc.value) doc.value = t; });
}

function renderDryRun(box, r) {
  fill(box, h("div", { class: "muted", text: "replayed " + r.lookback + (r.history_span ? " (history kept: " + r.history_span + ")" : "") }),
    r.note ? h("div", { class: "note", text: r.note }) : null,
    ...(r.policies || []).map((p) => h("div", { class: "dry-policy", "data-policy": p.name },
      h("h3", { text: p.name + " · " + p.target }),
      h("details", { open: p.selects.length <= 10 }, h("summary", { text: "selects now: " + p.selects.length + " monitored process" + (p.selects.length === 1 ? "" : "es") }),
        h("ul", { class: "selects" }, p.selects.slice(0, 200).map((x) => h("li", {}, processLink(x))))),
      p.fired.length ? h("div", { class: "fired", text: "would have triggered on " + p.fired.length + " process" + (p.fired.length === 1 ? "" : "es") + ":" })
        : h("div", { class: "muted", text: "would not have triggered (" + p.evaluated + " processes with history replayed)" }),
      h("ul", { class: "firings" }, p.fired.map((f) => {
        const pid = f.process.split("/")[1];
        const pr = { pid, host: f.process.split("/")[0], attributes: f.attributes };
        return h("li", {}, h("a", { href: "/process?key=" + encodeURIComponent(f.process), text: procLabel(pr) }),
          ": " + f.triggers + " task" + (f.triggers === 1 ? "" : "s") + " (silence honoured), first " + fmtClock(f.first) + ", last " + fmtClock(f.last) + ", " + f.seconds + " seconds met; ",
          h("span", { class: "values", text: (f.causes || []).map(causeText).join(" | ") }));
      })),
      (p.notes || []).map((n) => h("div", { class: "note", text: n })))));
}

// ---- router ----

function main() {
  const app = $("#app");
  const path = location.pathname;
  let m;
  if (path === "/") overview(app);
  else if ((m = path.match(/^\/tasks\/([^/]+)$/))) taskPage(app, decodeURIComponent(m[1]));
  else if (path === "/process") processPage(app);
  else if (path === "/policies/edit") editorPage(app);
  else fill(app, h("p", { class: "err", text: "No such page: " + path }));
}

document.addEventListener("DOMContentLoaded", main);

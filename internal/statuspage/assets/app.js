// observe status page: plain ES2020, no build step, no external requests.
// Everything is built with DOM calls and textContent (never innerHTML):
// what the service logged or put in a span is shown, never run.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const SIGNED_IN = !!document.querySelector('form[action="signout"]'); // a token is configured
const REFRESH_MS = 5000;
let timer = null;
let current = "";

// ---- helpers -------------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}
async function api(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, opts || {}));
  if (res.status === 401) { location.reload(); throw new Error("signed out"); }
  let body = null;
  const text = await res.text();
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!res.ok) throw new Error((body && body.error) || res.status + " " + res.statusText);
  return body;
}
function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 10) return ms.toFixed(1) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
}
function fmtRate(r) {
  if (r === null || r === undefined) return "–";
  if (r === 0) return "0";
  if (r < 0.1) return r.toFixed(3);
  if (r < 10) return r.toFixed(2);
  return r.toFixed(1);
}
function fmtPct(x) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "0%";
  const p = x * 100;
  if (p >= 99.95) return "100%";
  return (p < 0.1 ? p.toFixed(3) : p < 10 ? p.toFixed(2) : p.toFixed(1)) + "%";
}
function fmtBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(1) + " MiB";
}
function fmtTime(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function statusPill(s, isErr) {
  const cls = isErr || /^5/.test(s) || s === "error" ? "err" : /^4/.test(s) ? "warn" : "ok";
  return h("span", { class: "pill " + cls }, s);
}
function spark(values, cls) {
  const el = svg("svg", { class: "spark", viewBox: "0 0 120 26", preserveAspectRatio: "none" });
  const vs = (values || []).map((v) => (v === null || Number.isNaN(v) ? 0 : v));
  if (vs.length < 2) return el;
  const max = Math.max(...vs) || 1;
  const pts = vs.map((v, i) => (i * 120 / (vs.length - 1)).toFixed(1) + "," + (24 - (v / max) * 22).toFixed(1)).join(" ");
  const line = svg("polyline", { points: pts });
  if (cls) line.setAttribute("class", cls);
  el.append(line);
  return el;
}
function card(title, ...kids) { return h("section", { class: "card" }, h("h2", {}, title), ...kids); }
function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter((p) => p[1] !== undefined && p[1] !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
function setLive(ok) { document.getElementById("live").classList.toggle("stale", !ok); }
function schedule(fn) { clearTimeout(timer); timer = setTimeout(fn, REFRESH_MS); }

// ---- overview ------------------------------------------------------------
async function overview(first) {
  const app = document.getElementById("app");
  let status, red, anomalies;
  try {
    [status, red, anomalies] = await Promise.all([api("debug/status"), api("debug/red"),
      api("debug/anomalies").catch(() => null)]); // off (404) or older: no card
    setLive(true);
  } catch (e) {
    setLive(false);
    if (first) app.replaceChildren(h("p", { class: "banner err" }, "Could not load the status: " + e.message));
    schedule(() => overview(false));
    return;
  }
  if (current !== "overview") return;
  const focus = document.activeElement && document.activeElement.id;
  const keep = {};
  for (const id of ["level-logger", "level-select", "level-ttl"]) {
    const el = document.getElementById(id);
    if (el) keep[id] = el.value;
  }
  const id = status.identity, hl = status.health;
  const grid = h("div", { class: "grid" },
    card("Service", kv([
      ["name", id.service], ["version", id.version], ["environment", id.environment], ["instance", id.instance],
      ["uptime", id.uptime], ["Go", id.go_version], ["module", id.module ? id.module + " " + (id.module_version || "") : ""],
      ["observe", id.observe_version],
    ])),
    card("Health", healthView(hl)),
    card("observe itself", selfView(status.self)),
  );
  const active = new Set(((anomalies && anomalies.active) || []).map((a) => a.transport + " " + a.route));
  app.replaceChildren(
    grid,
    anomalies && anomalies.enabled ? card("Anomalies", anomalyView(anomalies)) : "",
    card("Routes · RED", redView(red, active)),
    h("div", { class: "grid" }, card("Log levels", levelsView(status.levels)), card("Profiling", profilingView(status.profiling))),
  );
  for (const [k, v] of Object.entries(keep)) { const el = document.getElementById(k); if (el) el.value = v; }
  if (focus) { const el = document.getElementById(focus); if (el) el.focus(); }
  schedule(() => overview(false));
}

function healthView(hl) {
  const rows = [
    h("tr", {}, h("td", {}, "startup"), h("td", {}, h("span", { class: "pill " + (hl.started ? "ok" : "warn") }, hl.started ? "started" : "starting"))),
    h("tr", {}, h("td", {}, "readiness"), h("td", {}, h("span", { class: "pill " + (hl.ready ? "ok" : "err") }, hl.ready ? "ready" : "not ready"))),
  ];
  for (const c of hl.checks || []) {
    rows.push(h("tr", {}, h("td", {}, "check ", h("code", {}, c.name)),
      h("td", {}, h("span", { class: "pill " + (c.ok ? "ok" : "err") }, c.ok ? "ok" : "failing"), " ",
        h("span", { class: "muted small" }, fmtMs(c.duration_ms)), c.error ? h("div", { class: "error small" }, c.error) : null)));
  }
  if (!(hl.checks || []).length) rows.push(h("tr", {}, h("td", { colspan: 2, class: "muted small" }, "no readiness checks registered")));
  return h("table", {}, h("tbody", {}, rows));
}

function selfView(s) {
  const fails = Object.entries(s.export_failures || {}).filter(([, n]) => n > 0);
  const red = Object.entries(s.redactions || {}).filter(([, n]) => n > 0);
  const pairs = [
    ["spans dropped", String(s.spans_dropped)],
    ["logs dropped", String(s.logs_dropped)],
    ["profiles dropped", String(s.profiles_dropped)],
    ["export failures", fails.length ? fails.map(([k, n]) => k + " " + n).join(", ") : "none"],
    ["redactions", red.length ? red.map(([k, n]) => k + " " + n).join(", ") : "none"],
    ["series overflow", Object.keys(s.metric_overflows || {}).length ? Object.entries(s.metric_overflows).map(([k, n]) => k + " " + n).join(", ") : "none"],
  ];
  if (s.trace_store) pairs.push(["trace store", s.trace_store.spans + " / " + s.trace_store.capacity + " spans, " + s.trace_store.traces + " traces, " + s.trace_store.evicted + " evicted"]);
  if (s.log_ring) pairs.push(["log ring", s.log_ring.lines + " lines (" + fmtBytes(s.log_ring.max_bytes) + " max), " + s.log_ring.evicted + " evicted"]);
  if (s.cpu_profiles) {
    const c = s.cpu_profiles;
    pairs.push(["CPU profiles", c.profiles + " / " + c.max_profiles + " (" + fmtBytes(c.bytes) + " of " + fmtBytes(c.max_bytes) + "), " + c.evicted + " evicted" + (c.too_large ? ", " + c.too_large + " too large" : "")]);
  }
  if (s.red) pairs.push(["RED history", s.red.routes + " routes, " + s.red.evicted + " not tracked"]);
  pairs.push(["heap", fmtBytes(s.heap_bytes) + ", " + s.goroutines + " goroutines"]);
  const out = [kv(pairs)];
  for (const n of s.notes || []) out.push(h("p", { class: "muted small" }, n));
  return out;
}

function anomalyValue(a, v) {
  if (a.unit === "seconds") return fmtMs(v * 1000);
  if (a.unit === "ratio") return fmtPct(v);
  if (a.unit === "req/s") return fmtRate(v);
  return String(Math.round(v * 1000) / 1000) + " " + (a.unit || "");
}

function anomalyRow(a, ended) {
  const q = new URLSearchParams({ route: a.route });
  const links = [h("a", { href: "#/traces?" + q.toString() }, "traces")];
  if (a.profile) links.push(" · ", h("a", { href: "debug/anomalies/profiles/" + encodeURIComponent(a.profile) + "/cpu", title: "the CPU profile burst taken when it started (pprof)" }, "cpu profile"));
  return h("tr", { class: "anomaly" },
    h("td", {}, h("span", { class: "pill " + (ended ? "ok" : "err") }, ended ? "ended" : "active"), " ", h("code", {}, a.kind)),
    h("td", {}, h("div", { class: "kind" }, a.transport.replace("_", " ")), h("code", {}, a.route || "(unmatched)")),
    h("td", { class: "num" }, anomalyValue(a, a.baseline)), h("td", { class: "num" }, anomalyValue(a, ended ? a.last_observed : a.observed)),
    h("td", { class: "num" }, (a.peak_score || a.score).toFixed(1)),
    h("td", { class: "small" }, fmtTime(a.since), ended ? " → " + fmtTime(a.ended) : ""),
    h("td", { class: "small" }, a.version ? h("code", {}, a.version) : ""),
    h("td", { class: "small" }, links));
}

function anomalyView(an) {
  const rows = an.active.map((a) => anomalyRow(a, false)).concat(an.recent.slice(0, 5).map((a) => anomalyRow(a, true)));
  if (!rows.length) return h("p", { class: "empty" }, "No anomaly: every watched route is within its own recent behaviour.");
  const head = h("tr", {}, h("th", {}, "state"), h("th", {}, "route"), h("th", { class: "num" }, "baseline"), h("th", { class: "num" }, "observed"),
    h("th", { class: "num" }, "score"), h("th", {}, "since"), h("th", {}, "version"), h("th", {}, ""));
  return h("div", { class: "scroll" }, h("table", { id: "anomaly-table" }, h("thead", {}, head), h("tbody", {}, rows)));
}

function redView(red, active) {
  if (red.note) return h("p", { class: "muted" }, red.note);
  if (!red.routes || !red.routes.length) return h("p", { class: "empty" }, "No requests yet. Routes appear here once the service has served traffic (sampled every " + red.interval_seconds + " s).");
  const head = h("tr", {}, h("th", {}, "route"), h("th", { class: "num" }, "req/s 1m"), h("th", { class: "num" }, "errors 1m"),
    h("th", { class: "num" }, "p50 1m"), h("th", { class: "num" }, "p95 1m"), h("th", { class: "num" }, "p99 1m"),
    h("th", { class: "num" }, "req/s 5m"), h("th", { class: "num" }, "errors 5m"), h("th", { class: "num" }, "p95 5m"), h("th", { class: "num" }, "p99 5m"),
    h("th", {}, "rate · 15m"), h("th", {}, "p95 · 15m"), h("th", {}, "traces"));
  const rows = red.routes.map((r) => {
    const m1 = r.m1, m5 = r.m5;
    const q = new URLSearchParams({ route: r.route });
    const links = [];
    if (r.slowest_trace) links.push(h("a", { href: "#/trace/" + r.slowest_trace, class: "slowest", title: "the slowest trace held for this route" }, "slowest"), " · ");
    links.push(h("a", { href: "#/traces?" + q.toString() }, "all"));
    if (r.errors_5m_traces) links.push(" · ", h("a", { href: "#/traces?" + new URLSearchParams({ route: r.route, error: "true" }) }, "errors"));
    for (const ex of (r.exemplars || []).slice(0, 2)) links.push(" · ", h("a", { href: "#/trace/" + ex.trace_id, title: "exemplar: " + fmtMs(ex.value_ms) }, "ex " + fmtMs(ex.value_ms)));
    return h("tr", { "data-route": r.route, "data-kind": r.kind },
      h("td", {}, h("div", { class: "kind" }, r.kind.replace("_", " ")), h("code", {}, r.route || "(unmatched)"),
        active && active.has(r.kind + " " + r.route) ? [" ", h("span", { class: "pill err", title: "an anomaly is active on this route" }, "anomaly")] : ""),
      h("td", { class: "num" }, fmtRate(m1.rate)), h("td", { class: "num " + (m1.error_ratio > 0 ? "error" : "") }, fmtPct(m1.error_ratio)),
      h("td", { class: "num" }, fmtMs(m1.p50_ms)), h("td", { class: "num" }, fmtMs(m1.p95_ms)), h("td", { class: "num" }, fmtMs(m1.p99_ms)),
      h("td", { class: "num" }, fmtRate(m5.rate)), h("td", { class: "num " + (m5.error_ratio > 0 ? "error" : "") }, fmtPct(m5.error_ratio)),
      h("td", { class: "num" }, fmtMs(m5.p95_ms)), h("td", { class: "num" }, fmtMs(m5.p99_ms)),
      h("td", {}, spark(r.spark.rate)), h("td", {}, spark(r.spark.p95_ms, "err")),
      h("td", { class: "small" }, links));
  });
  return h("div", { class: "scroll" }, h("table", { id: "red-table" }, h("thead", {}, head), h("tbody", {}, rows)));
}

function levelsView(lv) {
  const rows = [h("tr", { "data-logger": "" }, h("td", {}, h("em", {}, "global")), h("td", {}, h("span", { class: "pill" }, lv.level)), h("td", {}))];
  for (const [name, level] of Object.entries(lv.loggers || {}).sort()) {
    const rv = lv.reverts && lv.reverts[name];
    rows.push(h("tr", { "data-logger": name }, h("td", {}, h("code", {}, name)), h("td", {}, h("span", { class: "pill" }, level)),
      h("td", { class: "muted small" }, rv ? "reverts to " + rv.to + " at " + fmtTime(rv.at) : "")));
  }
  const sel = h("select", { id: "level-select" }, ["debug", "info", "warn", "error"].map((l) => h("option", { value: l }, l)));
  const form = h("form", { class: "levels-form", id: "level-form", onsubmit: setLevel },
    h("div", {}, h("label", { for: "level-logger" }, "logger (empty: global)"), h("input", { id: "level-logger", placeholder: "db.pool", size: 16 })),
    h("div", {}, h("label", { for: "level-select" }, "level"), sel),
    h("div", {}, h("label", { for: "level-ttl" }, "for (optional)"), h("input", { id: "level-ttl", placeholder: "10m", size: 6 })),
    h("button", { id: "level-apply", type: "submit" }, "Apply"),
    h("span", { id: "level-result", class: "small " + levelResult.cls }, levelResult.text));
  return [h("table", { id: "levels-table" }, h("tbody", {}, rows)), form];
}

let levelResult = { cls: "", text: "" }; // kept across refreshes of the overview

async function setLevel(ev) {
  ev.preventDefault();
  const body = { level: document.getElementById("level-select").value };
  const logger = document.getElementById("level-logger").value.trim();
  const ttl = document.getElementById("level-ttl").value.trim();
  if (logger) body.logger = logger;
  if (ttl) body.ttl = ttl;
  try {
    await api("loglevel", { method: "PUT", body: JSON.stringify(body), headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF, Accept: "application/json" } });
    levelResult = { cls: "ok", text: "set " + (logger || "global") + " to " + body.level };
  } catch (e) {
    levelResult = { cls: "error", text: e.message };
  }
  overview(false);
}

function profilingView(p) {
  const links = [["goroutines", "debug/pprof/goroutine?debug=1"], ["heap", "debug/pprof/heap"], ["CPU 10 s", "debug/pprof/profile?seconds=10"],
    ["allocs", "debug/pprof/allocs"], ["mutex", "debug/pprof/mutex"], ["block", "debug/pprof/block"], ["execution trace 1 s", "debug/pprof/trace?seconds=1"]];
  const out = [h("p", {}, links.map(([n, u], i) => [i ? " · " : "", h("a", { href: u }, n)]))];
  out.push(kv([
    ["continuous profiling", p.pushing ? "pushing to " + p.pyroscope + " as " + p.app : "off (no PYROSCOPE_SERVER_ADDRESS)"],
    ["span ↔ profile links", p.span_profile_links ? "on: a trace's root span carries " + p.span_attribute : "off (OBSERVE_PROFILE_LINKS=on to turn on)"],
    ["profile of a trace", p.trace_profiles ? "on: recent CPU profiles are kept; a trace view shows its own samples" : "off (needs span ↔ profile links)"],
  ]));
  out.push(h("p", { class: "muted small" }, "Read a profile with ", h("code", {}, "go tool pprof -http=: <url>"), "."));
  return out;
}

// ---- traces --------------------------------------------------------------
async function traces(params) {
  const app = document.getElementById("app");
  const q = new URLSearchParams(params);
  const field = (name, label, attrs) => h("div", {}, h("label", { for: "f-" + name }, label), h("input", Object.assign({ id: "f-" + name, name, value: q.get(name) || "" }, attrs)));
  const form = h("form", { class: "filters", id: "trace-filters", onsubmit: (ev) => {
    ev.preventDefault();
    const out = new URLSearchParams();
    for (const el of ev.target.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") { if (el.checked) out.set(el.name, "true"); } else if (el.value.trim()) out.set(el.name, el.value.trim());
    }
    location.hash = "#/traces?" + out.toString();
  } },
    field("route", "route", { placeholder: "/users/{id}", size: 22 }),
    field("status", "status", { placeholder: "5xx, 404, error", size: 10 }),
    field("min_duration", "min duration", { placeholder: "250ms", size: 8 }),
    field("limit", "limit", { placeholder: "100", size: 5 }),
    h("div", { class: "check" }, h("input", { type: "checkbox", id: "f-error", name: "error", checked: q.get("error") === "true" }), h("label", { for: "f-error" }, "errors only")),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "#/traces", class: "small" }, "clear"));
  let doc;
  try {
    doc = await api("debug/traces?" + q.toString());
    setLive(true);
  } catch (e) {
    app.replaceChildren(card("Recent traces", form, h("p", { class: "banner err" }, e.message)));
    return;
  }
  if (current !== "traces") return;
  const max = Math.max(1, ...doc.traces.map((t) => t.duration_ms));
  const rows = doc.traces.map((t) => h("tr", { "data-trace": t.trace_id },
    h("td", { class: "mono small" }, fmtTime(t.start)),
    h("td", {}, h("a", { href: "#/trace/" + t.trace_id }, t.name), " ", h("span", { class: "kind" }, t.kind)),
    h("td", {}, h("code", {}, t.route)),
    h("td", {}, statusPill(t.status, t.error)),
    h("td", { class: "num" }, t.spans),
    h("td", { class: "num" }, durBar(t.duration_ms, max)),
    h("td", { class: "mono small" }, h("a", { href: "#/trace/" + t.trace_id }, t.trace_id.slice(0, 16) + "…"))));
  const table = doc.traces.length
    ? h("div", { class: "scroll" }, h("table", { id: "traces-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "start"), h("th", {}, "root span"), h("th", {}, "route"), h("th", {}, "status"), h("th", { class: "num" }, "spans"), h("th", { class: "num" }, "duration"), h("th", {}, "trace"))),
      h("tbody", {}, rows)))
    : h("p", { class: "empty" }, doc.note || "No trace matches.");
  const st = doc.store;
  app.replaceChildren(card("Recent traces", form, table,
    st ? h("p", { class: "muted small" }, "Held: " + st.spans + " of " + st.capacity + " spans, " + st.traces + " traces; " + st.evicted + " spans evicted so far.") : null));
}
function durBar(ms, max) {
  const bar = h("span", { class: "bar" });
  bar.style.width = Math.max(2, Math.round((ms / max) * 90)) + "px";
  return h("span", { class: "dur" }, bar, fmtMs(ms));
}

// ---- one trace -----------------------------------------------------------
function anyValue(v) {
  if (!v) return "";
  if ("stringValue" in v) return v.stringValue;
  if ("intValue" in v) return v.intValue;
  if ("doubleValue" in v) return String(v.doubleValue);
  if ("boolValue" in v) return String(v.boolValue);
  if ("arrayValue" in v) return "[" + (v.arrayValue.values || []).map(anyValue).join(", ") + "]";
  return JSON.stringify(v);
}
function attrTable(attrs) {
  if (!attrs || !attrs.length) return h("p", { class: "muted small" }, "none");
  return h("table", { class: "attrs" }, h("tbody", {}, attrs.map((a) => h("tr", {}, h("td", {}, a.key), h("td", {}, anyValue(a.value))))));
}
const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];

async function traceView(id) {
  const app = document.getElementById("app");
  let otlp, lines;
  try {
    [otlp, lines] = await Promise.all([api("debug/traces/" + encodeURIComponent(id)), api("debug/logs?trace_id=" + encodeURIComponent(id))]);
  } catch (e) {
    app.replaceChildren(h("p", { class: "banner err" }, e.message), h("p", {}, h("a", { href: "#/traces" }, "← recent traces")));
    return;
  }
  if (current !== "trace") return;
  const spans = [];
  for (const rs of otlp.resourceSpans) {
    const svc = (rs.resource.attributes.find((a) => a.key === "service.name") || {}).value;
    for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push(Object.assign({ service: anyValue(svc), scope: ss.scope.name, resource: rs.resource.attributes }, s));
  }
  for (const s of spans) { s.start = BigInt(s.startTimeUnixNano); s.end = BigInt(s.endTimeUnixNano); }
  const t0 = spans.reduce((m, s) => (s.start < m ? s.start : m), spans[0].start);
  const t1 = spans.reduce((m, s) => (s.end > m ? s.end : m), spans[0].end);
  const total = Number(t1 - t0) || 1;
  // Tree order: children under their parent, by start time.
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) {
      if (!kids.has(s.parentSpanId)) kids.set(s.parentSpanId, []);
      kids.get(s.parentSpanId).push(s);
    } else roots.push(s);
  }
  const order = [];
  const walk = (s, depth) => {
    s.depth = depth; order.push(s);
    (kids.get(s.spanId) || []).sort((a, b) => (a.start < b.start ? -1 : 1)).forEach((c) => walk(c, depth + 1));
  };
  roots.sort((a, b) => (a.start < b.start ? -1 : 1)).forEach((r) => walk(r, 0));
  const root = order[0];

  const detail = h("div", { id: "span-detail" });
  const rows = order.map((s) => {
    const left = (Number(s.start - t0) / total) * 100;
    const width = (Number(s.end - s.start) / total) * 100;
    const kind = KINDS[s.kind] || "";
    const bar = h("div", { class: "wf-bar " + kind + (s.status && s.status.code === 2 ? " error" : "") });
    bar.style.left = left.toFixed(3) + "%";
    bar.style.width = Math.max(width, 0.2).toFixed(3) + "%";
    const track = h("div", { class: "wf-track" }, bar);
    for (const e of s.events || []) {
      const m = h("div", { class: "wf-ev", title: e.name });
      m.style.left = ((Number(BigInt(e.timeUnixNano) - t0) / total) * 100).toFixed(3) + "%";
      track.append(m);
    }
    const name = h("div", { class: "wf-name", title: s.name }, s.name, h("span", { class: "svc" }, s.service));
    name.style.paddingLeft = s.depth * 14 + "px";
    const row = h("div", { class: "wf-row span-row", "data-span": s.spanId, onclick: () => select(s, row) }, name, track, h("div", { class: "wf-dur" }, fmtMs(Number(s.end - s.start) / 1e6)));
    return row;
  });
  function select(s, row) {
    for (const r of document.querySelectorAll(".wf-row.selected")) r.classList.remove("selected");
    row.classList.add("selected");
    const status = s.status && s.status.code === 2 ? h("span", { class: "pill err" }, "error" + (s.status.message ? ": " + s.status.message : "")) : h("span", { class: "pill ok" }, s.status && s.status.code === 1 ? "ok" : "unset");
    detail.replaceChildren(
      h("h2", {}, "Span · " + s.name),
      kv([["span id", s.spanId], ["parent", s.parentSpanId || "(root)"], ["kind", KINDS[s.kind]], ["service", s.service], ["scope", s.scope],
        ["start", "+" + fmtMs(Number(s.start - t0) / 1e6)], ["duration", fmtMs(Number(s.end - s.start) / 1e6)]]),
      h("p", {}, status),
      h("h2", {}, "Attributes"), attrTable(s.attributes),
      h("h2", {}, "Events"),
      (s.events || []).length ? (s.events || []).map((e) => h("div", {}, h("p", {}, h("strong", {}, e.name), " ", h("span", { class: "muted small" }, "+" + fmtMs(Number(BigInt(e.timeUnixNano) - t0) / 1e6))), attrTable(e.attributes))) : h("p", { class: "muted small" }, "none"),
    );
  }
  const ticks = h("div", { class: "ticks" }, [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", {}, fmtMs((total * f) / 1e6))));
  const wf = h("div", { class: "waterfall", id: "waterfall" }, h("div", { class: "wf-axis" }, h("div", {}, "span"), ticks, h("div", { class: "wf-dur" }, "duration")), rows);

  const logs = h("div", { class: "logs", id: "trace-logs" }, lines.length ? lines.map(logLine) : h("p", { class: "muted small" }, "No log line of this trace is held."));
  const route = (root.attributes || []).find((a) => a.key === "http.route" || a.key === "rpc.method");
  const profileId = spans.map((s) => (s.attributes || []).find((a) => a.key === "pyroscope.profile.id")).find(Boolean);
  const err = root.status && root.status.code === 2;
  app.replaceChildren(
    h("div", { class: "trace-head" },
      h("h1", {}, root.name),
      h("span", {}, statusPill(err ? "error" : "ok", err)),
      h("span", { class: "muted" }, fmtMs(total / 1e6) + " · " + spans.length + " spans"),
      route ? h("a", { href: "#/traces?" + new URLSearchParams({ route: anyValue(route.value) }) }, "other traces of " + anyValue(route.value)) : null,
      h("span", { class: "mono small muted" }, id),
      h("a", { class: "small", href: "debug/traces/" + id, target: "_blank" }, "OTLP/JSON"),
      h("a", { class: "small", href: "debug/logs?trace_id=" + id, target: "_blank" }, "log lines JSON")),
    h("section", { class: "card" }, wf),
    h("div", { class: "detail-grid" },
      h("section", { class: "card" }, detail),
      h("div", {}, card("Log lines of this trace (" + lines.length + ")", logs))),
    profileCard(id, profileId, root, total));
  select(root, rows[0]);
}

function logLine(text) {
  let rec = null;
  try { rec = JSON.parse(text); } catch (e) { /* text format: shown as written */ }
  if (!rec || typeof rec !== "object") return h("div", { class: "log-line" }, h("span", {}), h("span", {}), h("span", { class: "fields" }, text));
  const skip = new Set(["time", "level", "msg", "trace_id", "span_id", "service.name", "service.version", "deployment.environment"]);
  const fields = Object.entries(rec).filter(([k]) => !skip.has(k)).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(" ");
  return h("div", { class: "log-line", title: text },
    h("span", { class: "muted" }, rec.time ? fmtTime(rec.time) : ""),
    h("span", { class: "lvl " + rec.level }, rec.level),
    h("span", {}, h("span", { class: "msg" }, rec.msg), h("span", { class: "fields" }, fields)));
}

// ---- the profile of a trace ---------------------------------------------
// GET debug/traces/{id}/profile?format=json: the CPU samples of the trace's
// spans (span_id pprof label), as top functions and a flame graph.
function profileCard(id, profileAttr, root, totalNs) {
  const body = h("div", { id: "trace-profile-body" }, h("p", { class: "muted small" }, "Loading the profile of this trace…"));
  const el = h("section", { class: "card", id: "trace-profile" }, h("h2", {}, "Profile of this trace"), body);
  loadProfile(id, profileAttr, root, totalNs, body, 0);
  return el;
}
async function loadProfile(id, profileAttr, root, totalNs, body, tries) {
  const url = "debug/traces/" + encodeURIComponent(id) + "/profile";
  let res, doc;
  try {
    res = await fetch(url + "?format=json", { credentials: "same-origin", headers: { Accept: "application/json" } });
    doc = await res.json();
  } catch (e) {
    body.replaceChildren(h("p", { class: "banner err" }, "profile: " + e.message));
    return;
  }
  if (current !== "trace" || !body.isConnected) return;
  const abs = new URL(url, location.href).href;
  const cmd = h("p", { class: "small" }, h("a", { href: url, id: "profile-download" }, "download pprof"), " · read it with ",
    h("code", { id: "profile-cmd" }, "go tool pprof -http=: " + (SIGNED_IN ? "trace.pb.gz" : abs)),
    SIGNED_IN ? h("span", { class: "muted" }, " (the download needs the token: ", h("code", {}, "curl -H \"Authorization: Bearer $OBSERVE_ADMIN_TOKEN\" -o trace.pb.gz " + abs), ")") : null);
  if (res.ok) {
    body.replaceChildren(...[profileSummary(doc, totalNs), cmd, flameGraph(doc.flame), topTable(doc.top, doc.cpu_ns),
      doc.truncated ? h("p", { class: "muted small" }, "Frames under 0.2% of the time are left out of the graph; the pprof file has them all.") : null,
      doc.partial ? h("p", { class: "muted small", id: "profile-partial" }, "The end of this trace is in a profile still being collected: more samples may come (reload the trace).") : null].filter(Boolean));
    return;
  }
  const reason = doc && doc.reason;
  const msg = (doc && doc.error) || res.status + " " + res.statusText;
  if (reason === "pending" && tries < 12) {
    const wait = Math.min(Math.max(doc.retry_after_ms || 2000, 1000), 15000);
    body.replaceChildren(h("p", { class: "empty", id: "profile-pending" }, "Collecting: " + msg + ". Trying again in " + Math.round(wait / 1000) + " s…"));
    setTimeout(() => loadProfile(id, profileAttr, root, totalNs, body, tries + 1), wait);
    return;
  }
  const out = [h("p", { class: "empty", id: "profile-empty", "data-reason": reason || "" }, msg + ".")];
  if (reason === "no_samples") {
    out.push(h("p", { class: "muted small" }, "The CPU profiler samples 100 times per CPU-second; this trace's spans were not running on a CPU at any of those instants (waiting on I/O, locks or sleeps takes no CPU). Slow traces that compute show here."));
  }
  if (profileAttr) {
    out.push(h("p", { class: "muted small" }, "The root span carries ", h("code", {}, "pyroscope.profile.id=" + anyValue(profileAttr.value)),
      ": in Pyroscope or a profile of your own, focus with ", h("code", {}, "go tool pprof -tagfocus=span_id=" + anyValue(profileAttr.value) + " <file>"), "."));
  }
  const secs = Math.max(5, Math.min(60, Math.ceil(totalNs / 1e9) * 2));
  out.push(h("p", { class: "small" }, h("a", { href: "debug/pprof/profile?seconds=" + secs, id: "profile-link" }, "CPU profile now (" + secs + " s)"), " · ", h("a", { href: "debug/pprof/goroutine?debug=1" }, "goroutines")));
  body.replaceChildren(...out);
}
function profileSummary(doc, totalNs) {
  const cpuMs = doc.cpu_ns / 1e6;
  return h("p", { id: "profile-summary" }, h("strong", {}, doc.samples + " CPU sample" + (doc.samples === 1 ? "" : "s")),
    " · " + fmtMs(cpuMs) + " on CPU over " + fmtMs(totalNs / 1e6) + " of trace (" + fmtPct(Math.min(1, cpuMs / (totalNs / 1e6))) + ")",
    h("span", { class: "muted small" }, " · from " + doc.profiles_searched + " profile" + (doc.profiles_searched === 1 ? "" : "s") + ", span " + doc.span_ids.join(", ")));
}
function shortFn(name) {
  const slash = name.lastIndexOf("/");
  return slash >= 0 ? name.slice(slash + 1) : name;
}
function fnColor(name) {
  const pkg = shortFn(name).split(".")[0];
  let x = 2166136261; // FNV-1a: neighbouring names get different colours
  for (let i = 0; i < pkg.length; i++) x = Math.imul(x ^ pkg.charCodeAt(i), 16777619) >>> 0;
  return "fc" + (x % 6);
}
// An icicle graph: callers above callees, widths in proportion to CPU
// time; a click zooms into a frame, "all" zooms out.
function flameGraph(rootNode) {
  const box = h("div", { class: "flame", id: "flame" });
  const show = (node) => {
    const total = node.value || 1;
    const rows = [];
    const level = (nodes, depth, offsets) => {
      if (!nodes.length || depth > 40) return;
      const row = rows[depth] || (rows[depth] = h("div", { class: "fl-row" }));
      const next = [], nextOff = [];
      nodes.forEach((n, i) => {
        let x = offsets[i];
        const w = n.value / total;
        if (w < 0.004) return;
        const cell = h("div", { class: "fl-cell " + (depth === 0 ? "fl-root" : fnColor(n.name)), title: n.name + " — " + fmtMs(n.value / 1e6) + " (" + fmtPct(n.value / total) + ")",
          onclick: () => show(depth === 0 ? rootNode : n) }, w > 0.03 ? (depth === 0 ? n.name : shortFn(n.name)) : "");
        cell.style.left = (x * 100).toFixed(3) + "%";
        cell.style.width = (w * 100).toFixed(3) + "%";
        row.append(cell);
        for (const c of n.children || []) { next.push(c); nextOff.push(x); x += c.value / total; }
      });
      level(next, depth + 1, nextOff);
    };
    level([node], 0, [0]);
    box.replaceChildren(...rows);
  };
  show(rootNode);
  return box;
}
function topTable(top, cpuNs) {
  if (!top || !top.length) return null;
  const cell = (v) => (v > 0 ? fmtMs(v / 1e6) + " · " + fmtPct(v / (cpuNs || 1)) : "—");
  return h("div", { class: "scroll" }, h("table", { id: "profile-top", class: "small" },
    h("thead", {}, h("tr", {}, h("th", {}, "function"), h("th", { class: "num" }, "self"), h("th", { class: "num" }, "cumulative"))),
    h("tbody", {}, top.slice(0, 12).map((f) => h("tr", {},
      h("td", { class: "mono", title: f.file || "" }, f.name),
      h("td", { class: "num" }, cell(f.self_ns)),
      h("td", { class: "num" }, cell(f.cum_ns)))))));
}

// ---- routing -------------------------------------------------------------
function route() {
  clearTimeout(timer);
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", path === "/" ? a.dataset.nav === "overview" : path.startsWith("/trace") && a.dataset.nav === "traces");
  if (path.startsWith("/trace/")) { current = "trace"; traceView(path.slice(7)); }
  else if (path === "/traces") { current = "traces"; traces(query || ""); }
  else { current = "overview"; overview(true); }
  window.scrollTo(0, 0);
}

function initTheme() {
  const saved = localStorage.getItem("observe-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById("theme").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme ? document.documentElement.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("observe-theme", next);
  });
}

initTheme();
window.addEventListener("hashchange", route);
route();

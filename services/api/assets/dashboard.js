// Beacon's dashboard: reads the same Stats API (v1) an API client would, with the sign-in cookie.
"use strict";

const NUMBERS = [
  ["visitors", "Unique visitors", (v) => v.toLocaleString()],
  ["visits", "Total visits", (v) => v.toLocaleString()],
  ["pageviews", "Total pageviews", (v) => v.toLocaleString()],
  ["views_per_visit", "Views per visit", (v) => v.toFixed(2)],
  ["bounce_rate", "Bounce rate", (v) => v + "%"],
  ["visit_duration", "Visit duration", duration],
];
const PANELS = [
  ["event:page", "Top pages", "page"],
  ["visit:source", "Sources", "source"],
  ["visit:entry_page", "Entry pages", "entry_page"],
  ["visit:country", "Countries", "country"],
  ["visit:browser", "Browsers", "browser"],
  ["visit:os", "Operating systems", "os"],
  ["visit:device", "Devices", "device"],
  ["event:goal", "Goals", "goal"],
];

const state = { site: null, period: "30d", filter: null, withImported: false };

function duration(s) {
  if (s == null) return "–";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

const SVG_TAGS = new Set(["polyline", "circle", "title", "text", "line"]);

function el(tag, attrs = {}, ...children) {
  const e = SVG_TAGS.has(tag) ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

async function api(path, params) {
  const query = new URLSearchParams({ site_id: state.site, period: state.period, ...params });
  if (state.filter && !("filters" in params)) query.set("filters", `${state.filter.property}==${state.filter.value}`);
  if (state.withImported) query.set("with_imported", "true");
  const response = await fetch(`${path}?${query}`, { credentials: "same-origin" });
  if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.get("site")) state.site = p.get("site");
  if (p.get("period")) state.period = p.get("period");
  state.filter = p.get("property") ? { property: p.get("property"), value: p.get("value") || "" } : null;
  state.withImported = p.get("imported") === "1";
}

function writeHash() {
  const p = new URLSearchParams({ site: state.site, period: state.period });
  if (state.filter) { p.set("property", state.filter.property); p.set("value", state.filter.value); }
  if (state.withImported) p.set("imported", "1");
  history.replaceState(null, "", "#" + p);
}

async function loadNumbers() {
  const box = document.getElementById("numbers");
  const metrics = state.filter && state.filter.property.startsWith("event:")
    ? NUMBERS.filter(([m]) => ["visitors", "pageviews"].includes(m))
    : NUMBERS;
  const body = await api("/api/v1/stats/aggregate", { metrics: metrics.map(([m]) => m).join(","), compare: "previous_period" });
  showImportsNote(body.meta);
  box.replaceChildren(...metrics.map(([metric, label, format]) => {
    const { value, change } = body.results[metric];
    const better = metric === "bounce_rate" ? change < 0 : change > 0;
    const changeText = change === 0 ? "no change" : `${change > 0 ? "↑" : "↓"} ${Math.abs(change)}${metric === "bounce_rate" ? " pts" : "%"}`;
    return el("div", { class: "number" },
      el("div", { class: "label" }, label),
      el("div", { class: "value", "data-metric": metric, "data-value": String(value) }, format(value)),
      el("div", { class: `change ${change === 0 ? "" : better ? "up" : "down"}` }, changeText));
  }));
}

// Says whether imported aggregates are in the numbers, and what their visitors are.
function showImportsNote(meta) {
  const note = document.getElementById("imports-note");
  note.hidden = !state.withImported || !meta;
  if (note.hidden) return;
  if (meta.imports_included) note.textContent = `Includes imported data. ${meta.imports_note}`;
  else if (meta.imports_warning) note.textContent = meta.imports_warning;
  else note.textContent = "No imported data in this period.";
  note.dataset.included = String(Boolean(meta.imports_included));
}

// A value axis's top: 1, 2 or 5 times a power of ten, at or above `max`.
function niceMax(max) {
  const power = 10 ** Math.floor(Math.log10(Math.max(1, max)));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= max);
}

// "2026-11-03" → "Nov 3"; "2026-11-03 14:00:00" → "14:00"; a month series' "2026-11-01" → "Nov 2026".
function axisLabel(date, monthly) {
  if (date.length > 10) return date.slice(11, 16);
  const d = new Date(`${date}T00:00:00Z`);
  const options = monthly ? { month: "short", year: "numeric", timeZone: "UTC" } : { month: "short", day: "numeric", timeZone: "UTC" };
  return d.toLocaleDateString("en", options);
}

async function loadChart() {
  const body = await api("/api/v1/stats/timeseries", { metrics: "visitors,pageviews" });
  const points = body.results;
  const svg = document.getElementById("chart");
  const [left, right, top, bottom] = [52, 10, 14, 218];
  const top_value = niceMax(Math.max(1, ...points.map((p) => Math.max(p.visitors, p.pageviews))));
  const x = (i) => (points.length < 2 ? (left + 800 - right) / 2 : left + (i / (points.length - 1)) * (800 - left - right));
  const y = (v) => bottom - (v / top_value) * (bottom - top);
  const axis = [];
  for (const v of [0, top_value / 2, top_value]) {
    axis.push(el("line", { x1: left, x2: 800 - right, y1: y(v), y2: y(v), stroke: "#e3e6ef" }));
    axis.push(el("text", { x: left - 8, y: y(v) + 4, "text-anchor": "end", "font-size": 12, fill: "#555", "data-axis": "value" }, v.toLocaleString()));
  }
  // Up to seven dates or hours along the time axis, evenly spread.
  const monthly = points.length > 1 && points[1].date.slice(8, 10) === "01" && points[0].date.slice(8, 10) === "01";
  const step = Math.max(1, Math.ceil(points.length / 7));
  for (let i = 0; i < points.length; i += step) {
    axis.push(el("text", { x: x(i), y: bottom + 18, "text-anchor": "middle", "font-size": 12, fill: "#555", "data-axis": "time" }, axisLabel(points[i].date, monthly)));
  }
  const line = (key, color, dash) => el("polyline", {
    points: points.map((p, i) => `${x(i)},${y(p[key])}`).join(" "),
    fill: "none", stroke: color, "stroke-width": "2.5", "stroke-dasharray": dash,
    "data-series": key,
  });
  svg.replaceChildren(...axis, line("pageviews", "#adb5d6", "5 4"), line("visitors", "#4c6ef5", ""));
  for (const [i, p] of points.entries()) {
    // Hover shows the interval's values.
    const dot = el("circle", { cx: x(i), cy: y(p.visitors), r: 4, fill: "#4c6ef5", tabindex: "0" });
    dot.append(el("title", {}, `${p.date}: ${p.visitors} visitors, ${p.pageviews} pageviews`));
    svg.append(dot);
  }
}

async function loadPanel([property, title, key]) {
  const panel = el("div", { class: "panel", "data-panel": property }, el("h2", {}, title));
  try {
    const goals = property === "event:goal";
    // Goals show their conversion rate: the share of the period's visitors who completed them.
    const params = goals ? { property, limit: "10", metrics: "visitors,conversion_rate" } : { property, limit: "10" };
    if (state.filter && state.filter.property !== property) {
      panel.append(el("p", { class: "note" }, `Not available while filtering by ${state.filter.property}: Beacon's rollups break down one property at a time.`));
      return panel;
    }
    const body = await api("/api/v1/stats/breakdown", params);
    if (body.results.length === 0) panel.append(el("p", { class: "note" }, goals ? "No conversions (goals are set with `beacon goal add`)" : "Nothing yet"));
    const top = Math.max(1, ...body.results.map((r) => r.visitors));
    for (const row of body.results) {
      const line = el("div", { class: "row", "data-property": property, "data-value": row[key], "data-visitors": String(row.visitors), title: "Filter by this" },
        el("div", { class: "bar", style: `width:${(100 * row.visitors) / top}%` }),
        el("span", {}, row[key]),
        el("span", {}, goals ? `${row.visitors.toLocaleString()} · ${row.conversion_rate}%` : row.visitors.toLocaleString()));
      if (goals) line.dataset.conversionRate = String(row.conversion_rate);
      line.addEventListener("click", () => {
        // Shown names ("(none)", "Direct / None") are valid filter values too.
        state.filter = { property, value: row[key] };
        writeHash();
        refresh();
      });
      panel.append(line);
    }
  } catch (e) {
    panel.append(el("p", { class: "note" }, e.message));
  }
  return panel;
}

async function loadRealtime() {
  if (!state.site) return;
  try {
    const response = await fetch(`/api/v1/stats/realtime/visitors?site_id=${encodeURIComponent(state.site)}`);
    if (response.ok) document.querySelector('[data-metric="realtime"]').textContent = String(await response.json());
  } catch (_) { /* the next tick tries again */ }
}

async function refresh() {
  const error = document.getElementById("error");
  error.hidden = true;
  const filter = document.getElementById("filter");
  filter.hidden = !state.filter;
  if (state.filter) document.getElementById("filter-label").textContent = `${state.filter.property} = ${state.filter.value}`;
  document.body.dataset.loading = "true";
  try {
    const panels = await Promise.all(PANELS.map(loadPanel));
    document.getElementById("panels").replaceChildren(...panels);
    await Promise.all([loadNumbers(), loadChart(), loadRealtime()]);
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
  document.body.dataset.loading = "false";
}

async function start() {
  const sites = await (await fetch("/api/sites")).json();
  document.getElementById("pipeline-link").hidden = !sites.operator;
  // Read the hash only now: it may have changed while the sites loaded, before the hashchange
  // listener below exists.
  readHash();
  const picker = document.getElementById("site");
  picker.replaceChildren(...sites.sites.map((s) => el("option", { value: s.domain }, s.domain)));
  if (!state.site && sites.sites.length) state.site = sites.sites[0].domain;
  if (!state.site) { document.getElementById("error").textContent = "No sites yet: add one with `beacon site add DOMAIN --owner EMAIL`."; document.getElementById("error").hidden = false; return; }
  picker.value = state.site;
  document.getElementById("period").value = state.period;
  const imported = document.getElementById("with-imported");
  imported.checked = state.withImported;
  imported.addEventListener("change", () => { state.withImported = imported.checked; writeHash(); refresh(); });
  picker.addEventListener("change", () => { state.site = picker.value; state.filter = null; writeHash(); refresh(); });
  document.getElementById("period").addEventListener("change", (e) => { state.period = e.target.value; writeHash(); refresh(); });
  document.getElementById("clear-filter").addEventListener("click", () => { state.filter = null; writeHash(); refresh(); });
  window.addEventListener("hashchange", () => {
    readHash();
    picker.value = state.site;
    document.getElementById("period").value = state.period;
    imported.checked = state.withImported;
    refresh();
  });
  writeHash();
  await refresh();
  setInterval(loadRealtime, 10000);
}

start();

// The lag dashboard: the pipeline now (/api/pipeline), the last hour (/api/pipeline/history, kept
// by the server) as charts with time and value axes, and the dead letters with a Retry button.
"use strict";

// A consumer this far behind (seconds) is shown as behind.
const BEHIND_SECONDS = 60;
const COLORS = ["#4c6ef5", "#e8590c", "#2b8a3e", "#ae3ec9"];
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "polyline", "line", "text", "g", "title", "circle"].includes(tag);
  const e = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

async function get(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// "beacon-aggregator" → "aggregator" (the namespace is the same for all).
const short = (name) => name.split(/[-_]/).pop();
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const seconds = (s) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`);

// A line chart: series [{name, points: [[ms, value]]}], a time axis and a value axis in `unit`.
function chart(id, title, unit, series, format = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1))) {
  const [w, h, left, bottom] = [640, 200, 56, 24];
  const all = series.flatMap((s) => s.points);
  // From the first sample (at least the last 5 minutes, at most the hour kept) to now.
  const t1 = Date.now();
  const t0 = Math.max(t1 - 3600_000, Math.min(t1 - 300_000, ...all.map((p) => p[0])));
  const max = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (w - left - 8);
  const y = (v) => h - bottom - (v / max) * (h - bottom - 12);
  const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": `${title}, ${unit}`, "data-chart": id });
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    svg.append(el("line", { x1: left, x2: w - 8, y1: y(v), y2: y(v), stroke: "#e3e6ef" }));
    svg.append(el("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#555" }, format(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    svg.append(el("text", { x: x(t), y: h - 6, "text-anchor": "middle", "font-size": 11, fill: "#555" }, clock(t)));
  }
  series.forEach((s, i) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : 0;
    const line = el("polyline", {
      points: s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
      fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2,
      "data-series": s.name, "data-points": String(s.points.length), "data-last": String(last),
    });
    line.append(el("title", {}, `${s.name}: ${format(last)} ${unit} now`));
    svg.append(line);
  });
  const legend = el("p", { class: "legend" }, ...series.map((s, i) => el("span", { style: `color:${COLORS[i % COLORS.length]}` }, `● ${s.name.replace(/^\S+?[-_](?=[a-z]+( out)?$)/, "")} `)));
  return el("figure", { class: "chart" }, el("figcaption", {}, `${title} (${unit})`), svg, legend);
}

function perConsumer(samples, field) {
  const names = [...new Set(samples.flatMap((s) => s.consumers.map((c) => c.name)))];
  return names.map((name) => ({
    name,
    points: samples.flatMap((s) => s.consumers.filter((c) => c.name === name).map((c) => [s.at, c[field]])),
  }));
}

// Events per second between samples: into the stream, and acknowledged by each consumer.
function rates(samples) {
  const rate = (pick) => samples.slice(1).map((s, i) => {
    const prev = samples[i];
    const dt = (s.at - prev.at) / 1000;
    return [s.at, dt > 0 ? Math.max(0, (pick(s) - pick(prev)) / dt) : 0];
  });
  const names = [...new Set(samples.flatMap((s) => s.consumers.map((c) => c.name)))];
  return [{ name: "into the stream", points: rate((s) => s.last_sequence) }].concat(names.map((name) => ({
    name: `${name} out`,
    points: rate((s) => (s.consumers.find((c) => c.name === name) || { ack_floor: 0 }).ack_floor),
  })));
}

function showNow(now) {
  const st = now.stream;
  document.getElementById("stream").textContent =
    `Stream ${st.name}: ${st.messages.toLocaleString()} events kept (sequences ${st.first_sequence}–${st.last_sequence}), ${now.dead_letters} dead letters.`;
  document.getElementById("consumers").replaceChildren(...now.consumers.map((c) => {
    const behind = c.lag_seconds > BEHIND_SECONDS;
    const through = c.complete_through_ms ? new Date(c.complete_through_ms).toLocaleString() : "–";
    return el("div", { class: `consumer ${behind ? "behind" : "healthy"}`, "data-consumer": c.name, "data-state": behind ? "behind" : "healthy", "data-lag": String(c.lag_seconds), "data-pending": String(c.pending) },
      el("h2", {}, `${short(c.name)}: ${behind ? "behind" : "healthy"}`),
      el("p", {}, `lag ${seconds(c.lag_seconds)} · ${c.pending.toLocaleString()} pending · ${c.ack_pending} awaiting ack · ${c.redelivered} redelivering`),
      el("p", { class: "note" }, `complete through ${through}`));
  }));
  document.getElementById("backfills").replaceChildren(...(now.backfills.length ? now.backfills.map((b) =>
    el("li", {}, `${b.kind} ${b.site}: ${b.done}${b.total ? ` of ${b.total}` : ""} ${b.unit}`)) : [el("li", {}, "none")]));
}

function showHistory(history) {
  const s = history.samples;
  document.getElementById("charts").replaceChildren(
    chart("lag", "Lag in time: age of the oldest unacknowledged event", "seconds", perConsumer(s, "lag_seconds"), seconds),
    chart("pending", "Pending: stored, not yet delivered", "events", perConsumer(s, "pending")),
    chart("rates", "Throughput", "events/s", rates(s), (v) => v.toFixed(v < 10 ? 1 : 0)),
    chart("redelivered", "Being redelivered", "events", perConsumer(s, "redelivered")),
    chart("dead-letters", "Dead letters stored", "events", [{ name: "dead letters", points: s.map((x) => [x.at, x.dead_letters]) }]),
  );
}

function showDeadLetters(body) {
  document.getElementById("dead-letters-note").textContent = body.total
    ? `${body.total} stored; the newest ${body.dead_letters.length} below. Retry republishes one to the events stream after a fix.`
    : "None.";
  document.getElementById("dead-letters").replaceChildren(...body.dead_letters.map((d) => {
    const button = el("button", { type: "button", "data-retry": String(d.sequence) }, "Retry");
    button.addEventListener("click", async () => {
      button.disabled = true;
      const response = await fetch(`/api/pipeline/dead-letters/${d.sequence}/retry`, { method: "POST", credentials: "same-origin" });
      button.textContent = response.ok ? "Retried" : "Failed";
      refresh();
    });
    return el("tr", { "data-dead-letter": String(d.sequence) }, el("td", {}, String(d.sequence)), el("td", {}, d.time),
      el("td", {}, short(d.consumer)), el("td", {}, d.reason), el("td", {}, button));
  }));
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [now, history, dead] = await Promise.all([get("/api/pipeline"), get("/api/pipeline/history"), get("/api/pipeline/dead-letters")]);
    showNow(now);
    showHistory(history);
    showDeadLetters(dead);
    error.hidden = true;
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
  document.body.dataset.loaded = "true";
}

refresh();
setInterval(refresh, 5000);

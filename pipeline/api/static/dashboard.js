// finsent dashboard: one page over the HTTP API (/api/v1), no library and no build step.
// The page holds no data of its own: everything comes from the API with the token the user typed,
// kept in sessionStorage (gone when the tab closes) and sent as `Authorization: Bearer`.
// Text from the API is only ever set through textContent, never as HTML (headlines are untrusted).
"use strict";

const TOKEN_KEY = "finsent-api-token";
const SVG_NS = "http://www.w3.org/2000/svg";
// Mirrored in dashboard.css; the browser test counts pixels of CURVE and SPAN in a screenshot.
const COLOURS = { curve: "#1f5fbf", share: "#c2410c", bars: "#d5dae1", span: "#ffd88a", spanEdge: "#d08a00", grid: "#eceef2", axis: "#6b7280" };

const state = { order: "active", entity: null, alerts: [], series: null, entityAlerts: [] };

const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `${response.status} ${response.statusText}`;
    if (response.status === 401) askForToken("The API needs a valid token (401): enter a read or write token.");
    if (response.status === 403) askForToken("This token may only read (403): enter a write token to ack or silence.");
    throw new ApiError(response.status, detail);
  }
  return body;
}

/** The token field appears when the API refuses (401, or 403 for a read token on a write): a server
 * started without tokens on loopback never asks for one. */
function askForToken(message) {
  const form = $("#token-form");
  const wasHidden = form.hidden;
  form.hidden = false;
  form.classList.add("needed");
  $("#token-change").hidden = true;
  $("#token-message").textContent = message;
  if (wasHidden) $("#token-input").focus();
}

function tokenAccepted() {
  const form = $("#token-form");
  form.classList.remove("needed");
  form.hidden = true;
  $("#token-change").hidden = false;
  $("#token-message").textContent = "";
}

function report(error) {
  $("#status").textContent = error instanceof Error ? error.message : String(error);
}

// ---- formatting ---------------------------------------------------------------------------------

function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ");
}

function number(value, digits = 2) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined && value !== "") search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ---- entities -----------------------------------------------------------------------------------

async function loadEntities() {
  const page = await api(`/api/v1/entities${query({ order: state.order, limit: 50 })}`);
  const body = $("#entities tbody");
  body.replaceChildren();
  for (const item of page.items) {
    const row = document.createElement("tr");
    row.dataset.entity = item.entity;
    row.setAttribute("data-testid", `entity-${item.entity}`);
    if (item.entity === state.entity) row.classList.add("selected");
    cell(row, item.entity);
    cell(row, item.articles, "num");
    cell(row, item.negative_share === null ? "–" : `${(100 * item.negative_share).toFixed(0)}%`, "num");
    cell(row, number(item.emotion_index), "num");
    cell(row, item.firing_alerts || "", item.firing_alerts ? "num state-firing" : "num");
    row.addEventListener("click", () => selectEntity(item.entity));
    body.appendChild(row);
  }
  return page.items;
}

function selectEntity(entity) {
  state.entity = entity;
  for (const row of document.querySelectorAll("#entities tbody tr")) row.classList.toggle("selected", row.dataset.entity === entity);
  loadChart().catch(report);
}

// ---- chart --------------------------------------------------------------------------------------

const CHART = { width: 960, height: 380, left: 64, right: 64, top: 34, bottom: 48 };

function svg(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.appendChild(element);
  return element;
}

function svgText(parent, x, y, text, attributes = {}) {
  const element = svg("text", { x, y, ...attributes }, parent);
  element.textContent = text;
  return element;
}

const TICK_STEPS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

function timeTicks(start, end, wanted = 8) {
  const step = TICK_STEPS.find((s) => (end - start) / s <= wanted) || TICK_STEPS[TICK_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return { ticks, step };
}

function tickLabel(t, step, previous) {
  const iso = new Date(t).toISOString();
  const clock = iso.slice(11, 16);
  const day = iso.slice(0, 10);
  if (step >= 86400000) return day;
  return previous === null || new Date(previous).toISOString().slice(0, 10) !== day ? `${day.slice(5)} ${clock}` : clock;
}

/** Where an alert's span starts on the chart's (event) time axis: the bucket it fired in.
 * fired_at is when the detection pass stored it (wall clock), which for replayed news lies after the data. */
function spanStart(alert) {
  const first = alert.evidence && alert.evidence.first;
  return alert.bucket_start || (first && first.bucket_start) || alert.fired_at;
}

function drawChart(series, alerts) {
  const box = $("#chart");
  box.replaceChildren();
  // The default window reaches back two days; buckets before the entity's first news carry nothing to draw.
  const all = series.items || [];
  const first = all.findIndex((i) => i.article_count > 0 || (i.emotion_index !== null && i.emotion_index !== undefined));
  const items = first < 0 ? [] : all.slice(first);
  if (!items.length) {
    box.textContent = "No buckets in this window.";
    return;
  }
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const widthMs = series.width_seconds * 1000;
  const t0 = Date.parse(items[0].bucket_start);
  const t1 = Date.parse(items[items.length - 1].bucket_start) + widthMs;
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1)) * plotW;
  const yIndex = (v) => top + ((1 - v) / 2) * plotH; // -1..+1
  const yShare = (v) => top + (1 - v) * plotH; // 0..1
  const maxCount = Math.max(1, ...items.map((i) => i.article_count || 0));
  const barH = (n) => (n / maxCount) * plotH * 0.35;

  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${series.entity} emotion index` });
  const grid = svg("g", { stroke: COLOURS.grid }, root);
  for (const v of [-1, -0.5, 0, 0.5, 1]) svg("line", { x1: left, x2: left + plotW, y1: yIndex(v), y2: yIndex(v) }, grid);

  // Alert spans first, so bars and lines are drawn over them.
  const spans = svg("g", {}, root);
  for (const alert of alerts) {
    const start = Math.max(Date.parse(spanStart(alert)), t0);
    const end = Math.min(alert.resolved_at ? Date.parse(alert.resolved_at) : t1, t1);
    if (!(end > start)) continue;
    const group = svg("g", { "data-testid": "alert-span", "data-alert-id": alert.id }, spans);
    const rect = svg("rect", {
      x: x(start), y: top, width: Math.max(x(end) - x(start), 3), height: plotH,
      fill: COLOURS.span, stroke: COLOURS.spanEdge, "stroke-width": 1,
    }, group);
    svg("title", {}, rect).textContent = `${alert.rule} (${alert.severity}), ${alert.state}: click for evidence`;
    // Labels of spans in the right part of the chart end at the span's right edge, so they stay inside.
    const late = x(start) > left + plotW * 0.7;
    svgText(group, late ? x(end) - 3 : x(start) + 3, top - 6, `${alert.rule} · ${alert.severity}`,
      { class: "span-label", "data-testid": "alert-span-label", "text-anchor": late ? "end" : "start" });
    group.addEventListener("click", () => showEvidence(alert));
    group.addEventListener("mouseenter", () => showEvidence(alert));
  }

  const bars = svg("g", { fill: COLOURS.bars }, root);
  const barWidth = Math.max(plotW * (widthMs / Math.max(t1 - t0, 1)) - 1, 1);
  for (const item of items) {
    if (!item.article_count) continue;
    const h = barH(item.article_count);
    svg("rect", { x: x(Date.parse(item.bucket_start)), y: top + plotH - h, width: barWidth, height: h }, bars);
  }

  const line = (key, scale) => {
    const parts = [];
    let pen = "M";
    for (const item of items) {
      const value = item[key];
      if (value === null || value === undefined) {
        pen = "M";
        continue;
      }
      const mid = Date.parse(item.bucket_start) + widthMs / 2;
      parts.push(`${pen}${x(mid).toFixed(1)},${scale(value).toFixed(1)}`);
      pen = "L";
    }
    return parts.join(" ");
  };
  svg("path", { d: line("negative_share", yShare), fill: "none", stroke: COLOURS.share, "stroke-width": 1.5, "stroke-dasharray": "5 3",
    "data-testid": "negative-share-curve" }, root);
  svg("path", { d: line("emotion_index", yIndex), fill: "none", stroke: COLOURS.curve, "stroke-width": 2.5, "stroke-linejoin": "round",
    "data-testid": "emotion-curve" }, root);

  // Axes: left emotion index, right negative share, bottom time.
  const axes = svg("g", { stroke: COLOURS.axis, "stroke-width": 1 }, root);
  svg("line", { x1: left, x2: left, y1: top, y2: top + plotH }, axes);
  svg("line", { x1: left + plotW, x2: left + plotW, y1: top, y2: top + plotH }, axes);
  svg("line", { x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH }, axes);
  for (const v of [-1, -0.5, 0, 0.5, 1]) {
    svg("line", { x1: left - 4, x2: left, y1: yIndex(v), y2: yIndex(v) }, axes);
    svgText(root, left - 7, yIndex(v) + 4, v.toFixed(1), { "text-anchor": "end" });
  }
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg("line", { x1: left + plotW, x2: left + plotW + 4, y1: yShare(v), y2: yShare(v) }, axes);
    svgText(root, left + plotW + 7, yShare(v) + 4, v.toFixed(2));
  }
  const { ticks, step } = timeTicks(t0, t1);
  let previous = null;
  for (const t of ticks) {
    svg("line", { x1: x(t), x2: x(t), y1: top + plotH, y2: top + plotH + 4 }, axes);
    svgText(root, x(t), top + plotH + 17, tickLabel(t, step, previous), { "text-anchor": "middle", "data-testid": "time-tick" });
    previous = t;
  }
  svgText(root, left + plotW / 2, height - 8, "time (UTC)", { "text-anchor": "middle", class: "axis-title" });
  svgText(root, 0, 0, "emotion index (decayed, −1…+1)", {
    class: "axis-title", "text-anchor": "middle", transform: `translate(16 ${top + plotH / 2}) rotate(-90)`, "data-testid": "left-axis-label" });
  svgText(root, 0, 0, "negative share", {
    class: "axis-title", "text-anchor": "middle", transform: `translate(${width - 14} ${top + plotH / 2}) rotate(90)`, "data-testid": "right-axis-label" });
  box.appendChild(root);
}

async function loadChart() {
  const entity = state.entity;
  if (!entity) return;
  $("#chart-title").textContent = entity;
  $("#evidence").hidden = true;
  const path = encodeURIComponent(entity);
  const [series, alerts] = await Promise.all([
    api(`/api/v1/entities/${path}/series${query({ fill: "true" })}`),
    api(`/api/v1/alerts${query({ entity, limit: 500 })}`),
  ]);
  if (state.entity !== entity) return; // another entity was clicked meanwhile
  state.series = series;
  state.entityAlerts = alerts.items;
  drawChart(series, alerts.items);
}

function showEvidence(alert) {
  const panel = $("#evidence");
  panel.replaceChildren();
  const title = document.createElement("h3");
  title.textContent = `${alert.entity}: ${alert.rule} (${alert.severity}), ${alert.state}`;
  panel.appendChild(title);
  const evidence = alert.evidence || {};
  const first = evidence.first || evidence;
  const meta = document.createElement("p");
  meta.className = "meta";
  const parts = [`from ${time(spanStart(alert))}`, alert.resolved_at ? `to ${time(alert.resolved_at)}` : "still firing",
    `value ${number(alert.value)} vs baseline ${number(alert.baseline)}`];
  if (alert.horizon) parts.push(`horizon ${alert.horizon}`);
  if (first.tail_probability !== undefined && first.tail_probability !== null) parts.push(`tail probability ${Number(first.tail_probability).toExponential(1)}`);
  meta.textContent = parts.join(" · ");
  panel.appendChild(meta);
  const seen = new Set();
  const list = document.createElement("ul");
  list.setAttribute("data-testid", "evidence-headlines");
  for (const moment of [evidence.first, evidence.peak, evidence.latest, evidence]) {
    for (const article of (moment && Array.isArray(moment.top_negative) ? moment.top_negative : [])) {
      if (seen.has(article.id)) continue;
      seen.add(article.id);
      const li = document.createElement("li");
      li.textContent = `${article.headline} (${time(article.published_at)}, p_negative ${number(article.p_negative)})`;
      list.appendChild(li);
    }
  }
  if (!seen.size) {
    const li = document.createElement("li");
    li.textContent = "No headlines stored with this alert.";
    list.appendChild(li);
  }
  panel.appendChild(list);
  panel.hidden = false;
}

// ---- alerts -------------------------------------------------------------------------------------

function alertRow(alert) {
  const row = document.createElement("tr");
  row.setAttribute("data-testid", `alert-${alert.id}`);
  row.dataset.alertId = alert.id;
  cell(row, alert.state, `state-${alert.state}`);
  const entity = cell(row, alert.entity);
  entity.style.cursor = "pointer";
  entity.addEventListener("click", () => selectEntity(alert.entity));
  cell(row, alert.rule);
  cell(row, alert.severity + (alert.silenced ? " (silenced)" : ""));
  // Fired: the bucket it fired in, on the same (event) time axis as the chart and resolved_at;
  // fired_at, when the detection pass stored it, is in the cell's tooltip.
  cell(row, time(spanStart(alert))).title = `detected at ${time(alert.fired_at)}`;
  cell(row, time(alert.resolved_at));
  cell(row, time(alert.acknowledged_at)).setAttribute("data-testid", `acked-${alert.id}`);
  const actions = document.createElement("td");
  const ack = document.createElement("button");
  ack.type = "button";
  ack.setAttribute("data-testid", `ack-${alert.id}`);
  ack.textContent = alert.acknowledged_at ? "Acked" : "Ack";
  ack.disabled = Boolean(alert.acknowledged_at);
  ack.addEventListener("click", () => acknowledge(alert.id, row).catch(report));
  actions.appendChild(ack);
  row.appendChild(actions);
  return row;
}

async function loadAlerts() {
  const page = await api(`/api/v1/alerts${query({ state: $("#alert-state").value, limit: 100 })}`);
  state.alerts = page.items;
  $("#alerts tbody").replaceChildren(...page.items.map(alertRow));
  return page.items;
}

async function acknowledge(id, row) {
  const alert = await api(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
  row.replaceWith(alertRow(alert));
  state.alerts = state.alerts.map((a) => (a.id === alert.id ? alert : a));
  $("#status").textContent = "";
}

// ---- silences -----------------------------------------------------------------------------------

async function loadSilences() {
  const page = await api(`/api/v1/silences${query({ limit: 100 })}`);
  const body = $("#silences tbody");
  body.replaceChildren();
  for (const silence of page.items) {
    const row = document.createElement("tr");
    row.setAttribute("data-testid", `silence-${silence.id}`);
    cell(row, silence.entity_glob);
    cell(row, time(silence.ends_at));
    cell(row, silence.reason);
    cell(row, time(silence.created_at));
    cell(row, silence.active ? "yes" : "no");
    const actions = document.createElement("td");
    if (silence.active) {
      const end = document.createElement("button");
      end.type = "button";
      end.textContent = "End";
      end.addEventListener("click", () => endSilence(silence.id).catch(report));
      actions.appendChild(end);
    }
    row.appendChild(actions);
    body.appendChild(row);
  }
}

async function createSilence(event) {
  event.preventDefault();
  const form = event.target;
  const body = { entity: form.entity.value.trim(), reason: form.reason.value.trim() };
  if (form.duration.value.trim()) body.duration = form.duration.value.trim();
  const silence = await api("/api/v1/silences", { method: "POST", body: JSON.stringify(body) });
  const matched = Array.isArray(silence.matched_entities) ? silence.matched_entities : [];
  $("#silence-message").textContent = `Silenced ${silence.entity_glob} until ${time(silence.ends_at)}`
    + (matched.length ? ` (matches ${matched.join(", ")})` : " (matches no entity yet)");
  await loadSilences();
}

async function endSilence(id) {
  await api(`/api/v1/silences/${encodeURIComponent(id)}`, { method: "DELETE" });
  await loadSilences();
}

// ---- wiring -------------------------------------------------------------------------------------

async function refresh() {
  $("#status").textContent = "";
  try {
    const [entities, alerts] = await Promise.all([loadEntities(), loadAlerts(), loadSilences()]);
    tokenAccepted();
    if (!state.entity) {
      const firing = alerts.find((a) => a.state === "firing");
      const pick = firing ? firing.entity : entities.length ? entities[0].entity : null;
      if (pick) selectEntity(pick);
    } else {
      await loadChart();
    }
  } catch (error) {
    report(error);
  }
}

function start() {
  $("#token-input").value = token();
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
    refresh();
  });
  $("#refresh").addEventListener("click", refresh);
  $("#token-change").addEventListener("click", () => askForToken("Enter another read or write token."));
  for (const button of document.querySelectorAll(".toggle button")) {
    button.addEventListener("click", () => {
      state.order = button.dataset.order;
      for (const b of document.querySelectorAll(".toggle button")) b.classList.toggle("selected", b === button);
      loadEntities().catch(report);
    });
  }
  $("#alert-state").addEventListener("change", () => loadAlerts().catch(report));
  $("#silence-form").addEventListener("submit", (event) => createSilence(event).catch(report));
  refresh();
}

start();

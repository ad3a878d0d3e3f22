// The trajstore viewer: one page, two views (the episode table at /, an episode at
// /episode/ID). Plain DOM and inline SVG, no build step. Reads only the JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showError(e) {
  $("error").hidden = false;
  $("error").textContent = String(e.message || e);
}

function fmt(v) {
  if (v === null || v === undefined) return "\u2014";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  return String(v);
}

// ---- table view -------------------------------------------------------------------------

let tableCutoff = null;

function filterQuery() {
  const params = new URLSearchParams();
  for (const el of $("filters").elements) if (el.name && el.value !== "") params.set(el.name, el.value);
  return params.toString();
}

function fillSelect(select, values) {
  const current = select.value;
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of values) {
    if (!have.has(v)) {
      const o = document.createElement("option");
      o.value = o.textContent = v;
      select.appendChild(o);
    }
  }
  select.value = current;
}

async function loadTable() {
  const q = filterQuery();
  const data = await getJSON("/api/episodes" + (q ? "?" + q : ""));
  tableCutoff = data.cutoff;
  for (const name of ["user", "env", "outcome", "tag"]) fillSelect($("filters").elements[name], data.filters[name]);
  $("count").textContent = `${data.episodes.length} of ${data.total} episodes`;
  const body = $("episodes").tBodies[0];
  body.replaceChildren();
  for (const e of data.episodes) {
    const tr = document.createElement("tr");
    tr.dataset.episode = e.episode;
    const cells = [[e.episode, "num"], [e.user], [e.env], [e.steps, "num"], [fmt(e.return), "num"], [e.outcome], [e.tags.join(", ")], [e.started_at]];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (cls === "num" && text === e.episode) {
        const a = document.createElement("a");
        a.href = "/episode/" + e.episode;
        a.textContent = text;
        td.appendChild(a);
      } else td.textContent = text;
      tr.appendChild(td);
    }
    tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.href = "/episode/" + e.episode; });
    body.appendChild(tr);
  }
}

async function pollTable() {
  try {
    const s = await getJSON("/api/status");
    $("live").textContent = `live: ${s.episodes} episodes`;
    if (s.cutoff !== tableCutoff) await loadTable();
  } catch (e) { $("live").textContent = "offline"; }
}

function tableView() {
  $("table-view").hidden = false;
  const params = new URLSearchParams(location.search);
  for (const el of $("filters").elements) if (el.name && params.has(el.name)) {
    if (el.tagName === "SELECT") fillSelect(el, [params.get(el.name)]);
    el.value = params.get(el.name);
  }
  $("filters").addEventListener("change", () => {
    const q = filterQuery();
    history.replaceState(null, "", "/" + (q ? "?" + q : ""));
    loadTable().catch(showError);
  });
  $("filters").addEventListener("submit", (ev) => ev.preventDefault());
  loadTable().catch(showError);
  setInterval(pollTable, POLL_MS);
}

// ---- episode view -----------------------------------------------------------------------

const state = { ep: null, step: 0, field: null, timer: null, images: [] };

function seriesAt(name, t) {
  const s = state.ep.series[name];
  if (!s || t < 0 || t * s.components >= s.values.length) return null;
  const v = s.values.slice(t * s.components, (t + 1) * s.components);
  return s.components === 1 ? v[0] : v;
}

function showStep(step) {
  const ep = state.ep;
  const last = ep.steps; // observations 0..T
  step = Math.max(0, Math.min(last, step));
  state.step = step;
  $("scrubber").value = step;
  $("step").textContent = step;
  if (state.field) $("frame").src = `/api/episode/${ep.episode}/frame/${step}.png?field=${encodeURIComponent(state.field)}`;
  // Gymnasium order: from observation t the agent takes action[t] and receives reward[t].
  $("reward").textContent = fmt(seriesAt("reward", step));
  const a = seriesAt("action", step);
  $("action").textContent = Array.isArray(a) ? a.map(fmt).join(", ") : fmt(a);
  const info = ep.infos[step] || {};
  $("info").textContent = Object.keys(info).length ? JSON.stringify(info, null, 1) : "(none)";
  for (const line of document.querySelectorAll(".cursor")) {
    const n = Number(line.dataset.n);
    const x = plotX(step, n);
    line.setAttribute("x1", x);
    line.setAttribute("x2", x);
  }
}

const PW = 360, PH = 80, PAD = 4;
function plotX(t, n) { return PAD + (n <= 1 ? 0 : (t * (PW - 2 * PAD)) / (n - 1)); }

function plot(name, s) {
  const n = s.values.length / s.components;
  const finite = s.values.filter((v) => v !== null);
  // A loop, not Math.min(...values): long episodes exceed the engine's argument limit.
  let lo = Infinity, hi = -Infinity;
  for (const v of finite) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!finite.length) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 0.5; lo -= 0.5; }
  const y = (v) => PH - PAD - ((v - lo) * (PH - 2 * PAD)) / (hi - lo);
  const colours = ["#2a7", "#e80", "#27e", "#c3a", "#777", "#a52", "#5aa", "#aa5"];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", PW);
  svg.setAttribute("height", PH);
  svg.setAttribute("viewBox", `0 0 ${PW} ${PH}`);
  if (lo < 0 && hi > 0) {
    const z = document.createElementNS(ns, "line");
    for (const [k, v] of [["x1", 0], ["x2", PW], ["y1", y(0)], ["y2", y(0)], ["stroke", "#ccc"]]) z.setAttribute(k, v);
    svg.appendChild(z);
  }
  for (let c = 0; c < s.components; c++) {
    const pts = [];
    for (let t = 0; t < n; t++) {
      const v = s.values[t * s.components + c];
      if (v !== null) pts.push(`${plotX(t, n).toFixed(1)},${y(v).toFixed(1)}`);
    }
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", pts.join(" "));
    pl.setAttribute("fill", "none");
    pl.setAttribute("stroke", colours[c % colours.length]);
    pl.setAttribute("stroke-width", "1.2");
    svg.appendChild(pl);
  }
  const cur = document.createElementNS(ns, "line");
  cur.setAttribute("class", "cursor");
  cur.dataset.n = n;
  for (const [k, v] of [["y1", 0], ["y2", PH], ["stroke", "#d22"], ["stroke-width", "1"]]) cur.setAttribute(k, v);
  svg.appendChild(cur);
  svg.addEventListener("click", (ev) => {
    const r = svg.getBoundingClientRect();
    showStep(Math.round(((ev.clientX - r.left - PAD) / (PW - 2 * PAD)) * (n - 1)));
  });
  const box = document.createElement("div");
  box.className = "plot";
  box.dataset.field = name;
  const h = document.createElement("h3");
  h.textContent = `${name}  [${fmt(lo)} .. ${fmt(hi)}]`;
  box.append(h, svg);
  return box;
}

function setPlaying(on) {
  clearInterval(state.timer);
  state.timer = null;
  if (on) {
    if (state.step >= state.ep.steps) showStep(0);
    state.timer = setInterval(() => {
      if (state.step >= state.ep.steps) setPlaying(false);
      else showStep(state.step + 1);
    }, 100);
  }
  $("play").textContent = on ? "pause" : "play";
}

async function episodeView(id) {
  $("episode-view").hidden = false;
  const ep = await getJSON("/api/episode/" + id);
  state.ep = ep;
  document.title = `episode ${ep.episode} \u2014 trajstore`;
  $("title").textContent = `episode ${ep.episode}: ${ep.user} on ${ep.env}`;
  $("meta").textContent = `${ep.steps} steps \u00b7 return ${fmt(ep.return)} \u00b7 ${ep.outcome} \u00b7 tags ${ep.tags.join(", ") || "none"} \u00b7 started ${ep.started_at}`;
  state.images = ep.fields.filter((f) => f.image);
  const select = $("field");
  for (const f of state.images) {
    const o = document.createElement("option");
    o.value = f.name;
    o.textContent = `${f.name} (${f.shape.join("x")})`;
    select.appendChild(o);
  }
  $("field-choice").hidden = state.images.length < 2;
  const frame = $("frame");
  if (state.images.length) {
    state.field = state.images[0].name;
    const [h, w] = state.images[0].shape;
    const scale = Math.max(1, Math.floor(384 / Math.max(w, h)));
    frame.width = w * scale;
    frame.height = h * scale;
  } else frame.hidden = true;
  select.addEventListener("change", () => { state.field = select.value; showStep(state.step); });
  $("scrubber").max = ep.steps;
  $("last-step").textContent = ep.steps;
  $("scrubber").addEventListener("input", () => showStep(Number($("scrubber").value)));
  $("play").addEventListener("click", () => setPlaying(!state.timer));
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
    if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
      ev.preventDefault();
      setPlaying(false);
      showStep(state.step + (ev.key === "ArrowRight" ? 1 : -1));
    } else if (ev.key === "Home" || ev.key === "End") {
      ev.preventDefault();
      setPlaying(false);
      showStep(ev.key === "Home" ? 0 : state.ep.steps);
    } else if (ev.key === " ") {
      ev.preventDefault();
      setPlaying(!state.timer);
    }
  });
  const plots = $("plots");
  const order = Object.keys(ep.series).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  for (const name of order) plots.appendChild(plot(name, ep.series[name]));
  showStep(0);
  setInterval(async () => {
    try { const s = await getJSON("/api/status"); $("live").textContent = `live: ${s.episodes} episodes`; }
    catch (e) { $("live").textContent = "offline"; }
  }, POLL_MS);
}

function rank(name) { return name === "reward" ? 0 : name === "action" ? 1 : 2; }

window.addEventListener("DOMContentLoaded", () => {
  const m = location.pathname.match(/^\/episode\/(\d+)$/);
  (m ? episodeView(m[1]) : Promise.resolve(tableView())).catch(showError);
});

// The status page: polls /status and /status/history once a second, draws tables and an SVG chart,
// and uploads through the form with progress. Written for this project; no libraries, no network
// beyond this daemon. Caps appear only in this page's own upload result, never from /status.
"use strict";

const POLL_MS = 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2a6fdb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285", "#c92a2a",
  "#5c940d", "#364fc7", "#a61e4d", "#1098ad", "#862e9c"];

const state = {
  history: { seq: [], t: [], network: [], workers: {}, servers: {}, capacity: 300, lastSeq: 0 },
  mine: null, // {tag, phase} while this page's own upload runs
  lastStatus: null,
  // how the page keeps up, on <body data-…> for tests and benchmarks: updates, the longest wait
  // between two, and how long the last poll took from asking to drawn
  meter: { updates: 0, last: null, maxGapMs: 0, lastPollMs: 0 },
};

function meter(started) {
  const m = state.meter;
  const now = performance.now();
  if (m.last !== null) m.maxGapMs = Math.max(m.maxGapMs, now - m.last);
  m.last = now;
  m.updates += 1;
  m.lastPollMs = now - started;
  document.body.dataset.updates = String(m.updates);
  document.body.dataset.maxGapMs = String(Math.round(m.maxGapMs));
  document.body.dataset.lastPollMs = String(Math.round(m.lastPollMs));
}

// Start the page's meter over (a benchmark calls this when its load begins).
window.resetMeter = () => { state.meter = { updates: 0, last: null, maxGapMs: 0, lastPollMs: 0 }; };

// ---- formatting ---------------------------------------------------------------------------------
function bytes(n) {
  if (n === null || n === undefined || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
}
function rate(n) { return n === null || n === undefined ? "–" : bytes(Math.round(n)) + "/s"; }
function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}
function percent(f) { return (Math.floor(f * 1000) / 10).toFixed(f >= 1 ? 0 : 1) + "%"; }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// ---- polling ------------------------------------------------------------------------------------
async function getJSON(url) {
  const resp = await fetch(url, { cache: "no-store" });
  if (!resp.ok) throw new Error(url + " answered " + resp.status);
  return resp.json();
}

async function poll() {
  const live = document.getElementById("live");
  const started = performance.now();
  try {
    const [status, hist] = await Promise.all([
      getJSON("/status"),
      getJSON("/status/history?since=" + state.history.lastSeq),
    ]);
    state.lastStatus = status;
    mergeHistory(hist);
    render(status);
    live.textContent = "live";
    live.classList.remove("stale");
    meter(started);
  } catch (err) {
    live.textContent = "no answer from the daemon (" + err.message + "); retrying";
    live.classList.add("stale");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function mergeHistory(h) {
  const H = state.history;
  if (h.last_seq < H.lastSeq) { // the daemon restarted: start over, all of its history next poll
    H.seq = []; H.t = []; H.network = []; H.workers = {}; H.servers = {};
    H.lastSeq = 0;
    return;
  }
  const old = H.seq.length;
  for (const [group, incoming] of [["workers", h.workers], ["servers", h.servers]]) {
    for (const key of Object.keys(incoming)) {
      if (!(key in H[group])) H[group][key] = new Array(old).fill(null);
    }
    for (const key of Object.keys(H[group])) {
      const add = incoming[key] || new Array(h.seq.length).fill(null);
      H[group][key].push(...add);
    }
  }
  H.seq.push(...h.seq);
  H.t.push(...h.t);
  H.network.push(...h.network);
  H.capacity = h.capacity;
  H.lastSeq = h.last_seq;
  const extra = H.seq.length - H.capacity;
  if (extra > 0) {
    H.seq.splice(0, extra);
    H.t.splice(0, extra);
    H.network.splice(0, extra);
    for (const group of ["workers", "servers"]) {
      for (const key of Object.keys(H[group])) {
        H[group][key].splice(0, extra);
        if (H[group][key].every((v) => v === null)) delete H[group][key];
      }
    }
  }
}

// ---- rendering ----------------------------------------------------------------------------------
function render(status) {
  document.getElementById("uptime").textContent = "up " + seconds(status.uptime_s) +
    (status.draining ? " — shutting down, taking no new uploads" : "");
  const active = status.transfers.active.length;
  document.getElementById("totals").textContent = active + " active, " +
    status.transfers.recent.length + " recent";
  renderTransfers(status.transfers);
  renderServers(status.servers);
  renderWorkers(status.workers, status.network_process);
  renderConfig(status.settings);
  drawChart();
  followMine(status.transfers);
}

function renderTransfers(transfers) {
  const body = document.querySelector("#transfers tbody");
  const rows = [...transfers.active, ...transfers.recent];
  document.getElementById("no-transfers").hidden = rows.length > 0;
  body.replaceChildren(...rows.map((t) => {
    const tr = el("tr");
    tr.dataset.id = t.id;
    tr.className = t.stage + (state.mine && t.tag === state.mine.tag ? " mine" : "");
    tr.append(
      el("td", t.id),
      el("td", t.name || (t.kind === "download" ? "(download)" : "(no name)")),
      el("td", t.storage_index || "–", "si"),
      el("td", bytes(t.size), "num"),
      el("td", bytes(t.bytes_done), "num"),
    );
    const cell = el("td");
    if (t.progress !== null && t.progress !== undefined) {
      const bar = el("progress");
      bar.max = 1;
      bar.value = t.progress;
      cell.append(bar, " " + percent(t.progress));
    } else {
      cell.textContent = "–";
    }
    tr.append(cell, el("td", rate(t.rate), "num"), el("td", t.stage), el("td", seconds(t.eta_s), "num"),
      el("td", t.error || "", "error"));
    return tr;
  }));
}

function renderServers(servers) {
  const body = document.querySelector("#servers tbody");
  body.replaceChildren(...servers.map((s) => {
    const tr = el("tr");
    tr.dataset.name = s.name;
    if (s.state !== "connected") {
      tr.className = "failed";
      tr.append(el("td", s.name), el("td", s.state), el("td", s.error || "", "error"));
      tr.lastChild.colSpan = 5;
      return tr;
    }
    tr.append(
      el("td", s.name),
      el("td", s.state),
      el("td", bytes(s.in_flight_bytes), "num"),
      el("td", rate(s.rate), "num"),
      el("td", s.latency_ms === null ? "–" : s.latency_ms.toFixed(1) + " ms", "num"),
      el("td", s.failures, "num"),
      el("td", bytes(s.bytes_sent), "num"),
    );
    return tr;
  }));
}

function renderWorkers(workers, network) {
  const parts = Object.entries(workers.utilisation).map(([w, f]) => "worker " + w + ": " + percent(f));
  document.getElementById("workers-summary").textContent =
    workers.live + " of " + workers.configured + " workers live. Busy over the last second — " +
    (parts.length ? parts.join(", ") : "no samples yet") +
    ". Network process CPU: " + percent(network.utilisation) +
    "; its event loop ran the last tick " + (network.loop_lag_ms || 0).toFixed(1) + " ms late.";
}

const CONFIG_LABELS = [
  ["workers", "workers", (v) => v],
  ["shares_needed", "k (shares needed)", (v) => v],
  ["shares_total", "N (shares total)", (v) => v],
  ["shares_happy", "happy (servers of happiness)", (v) => v],
  ["max_segment_size", "segment size", bytes],
  ["pipeline_depth", "pipeline depth (bytes in flight per server)", bytes],
  ["window", "window (segments in flight per upload)", (v) => v],
  ["erasure_backend", "erasure backend", (v) => v],
  ["stock_mode", "stock (stop-and-wait) mode", (v) => (v ? "on" : "off")],
  ["max_uploads", "uploads encoding at once", (v) => v],
];

function renderConfig(settings) {
  const dl = document.getElementById("config");
  const items = [];
  for (const [key, label, fmt] of CONFIG_LABELS) {
    if (!(key in settings)) continue;
    const dt = el("dt", label);
    const dd = el("dd", fmt(settings[key]));
    dd.dataset.key = key;
    items.push(dt, dd);
  }
  dl.replaceChildren(...items);
}

// ---- the chart ----------------------------------------------------------------------------------
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart() {
  const chart = document.getElementById("chart");
  const H = state.history;
  const W = 960, left = 64, right = 12, top = 10, gap = 34, bottom = 26;
  const panelH = (420 - top - gap - bottom) / 2;
  const plotW = W - left - right;
  const nodes = [];
  const now = H.t.length ? H.t[H.t.length - 1] : 0;
  // seconds shown: the data so far, at least a minute, at most what the daemon keeps
  const span = Math.min(H.capacity, Math.max(60, H.t.length ? now - H.t[0] : 0));
  const tick = span <= 120 ? 10 : 60;
  const x = (t) => left + plotW * (1 - (now - t) / span);
  const panels = [
    { group: "workers", y0: top, max: 1, label: (v) => Math.round(v * 100) + "%", title: "busy: each worker, and the network process's CPU" },
    { group: "servers", y0: top + panelH + gap, max: 1, label: (v) => rate(v), title: "bytes/s per server" },
  ];
  let peak = 0;
  for (const series of Object.values(H.servers)) for (const v of series) if (v !== null && v > peak) peak = v;
  panels[1].max = niceMax(peak);
  const legend = [];
  const counts = { workers: 0, servers: 0 };
  panels.forEach((p) => {
    for (let i = 0; i <= 4; i += 1) {
      const y = p.y0 + panelH * (1 - i / 4);
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      if (i % 2 === 0) nodes.push(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, p.label(p.max * i / 4)));
    }
    nodes.push(svg("text", { x: left, y: p.y0 - 1 }, p.title));
    nodes.push(svg("line", { x1: left, x2: left, y1: p.y0, y2: p.y0 + panelH, class: "axis" }));
    if (p.group === "workers" && H.network.length) {
      const pts = H.network.map((v, j) => x(H.t[j]).toFixed(1) + "," +
        (p.y0 + panelH * (1 - Math.min(v, 1))).toFixed(1));
      nodes.push(svg("polyline", { points: pts.join(" "), stroke: "#868e96", "stroke-dasharray": "4 3",
        class: "series network" }));
      legend.push(["#868e96", "network process CPU (dashed)"]);
    }
    const keys = Object.keys(H[p.group]);
    keys.forEach((key, i) => {
      const color = PALETTE[(p.group === "workers" ? i : i + 6) % PALETTE.length];
      const pts = [];
      H[p.group][key].forEach((v, j) => {
        if (v === null || v === undefined) return;
        const y = p.y0 + panelH * (1 - Math.min(v, p.max) / p.max);
        pts.push(x(H.t[j]).toFixed(1) + "," + y.toFixed(1));
      });
      if (!pts.length) return;
      counts[p.group] += pts.length;
      const line = svg("polyline", { points: pts.join(" "), stroke: color, class: "series " + p.group });
      line.dataset.key = key;
      line.dataset.points = String(pts.length);
      nodes.push(line);
      legend.push([color, (p.group === "workers" ? "worker " : "server ") + key]);
    });
  });
  const axisY = 420 - bottom;
  nodes.push(svg("line", { x1: left, x2: W - right, y1: axisY, y2: axisY, class: "axis" }));
  for (let s = 0; s <= span; s += tick) {
    const xx = left + plotW * (1 - s / span);
    const label = s === 0 ? "now" : tick < 60 ? "−" + s + " s" : "−" + s / 60 + " min";
    nodes.push(svg("line", { x1: xx, x2: xx, y1: top, y2: axisY, class: "grid" }));
    nodes.push(svg("text", { x: xx, y: axisY + 16, "text-anchor": "middle" }, label));
  }
  chart.replaceChildren(...nodes);
  chart.dataset.workerPoints = String(counts.workers);
  chart.dataset.serverPoints = String(counts.servers);
  const box = document.getElementById("legend");
  box.replaceChildren(...legend.map(([color, name]) => {
    const item = el("span");
    const sw = el("span", null, "swatch");
    sw.style.background = color;
    item.append(sw, name);
    return item;
  }));
}

// ---- the upload form ----------------------------------------------------------------------------
function randomTag() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return "page-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function showProgress(fraction, stage) {
  document.getElementById("upload-bar").value = fraction;
  document.getElementById("upload-percent").textContent = percent(fraction);
  document.getElementById("upload-stage").textContent = stage;
}

// While the daemon works on our upload, its row in /status (found by our tag) tells how far it is.
function followMine(transfers) {
  const mine = state.mine;
  if (!mine || mine.phase !== "daemon") return;
  const t = [...transfers.active, ...transfers.recent].find((x) => x.tag === mine.tag);
  if (!t) return;
  const stages = { queued: "waiting for a free upload slot", hashing: "computing the key (first pass)",
    encoding: "key computed; encoding the first segments",
    uploading: "encoding and sending shares", receiving: "receiving", done: "stored" };
  const fraction = t.progress === null || t.progress === undefined ? 0 : t.progress;
  const eta = t.eta_s === null || t.eta_s === undefined ? "" : ", about " + seconds(t.eta_s) + " left";
  if (t.stage !== "done" && fraction < 1) {
    showProgress(fraction, "daemon: " + (stages[t.stage] || t.stage) + " — " + rate(t.rate) + eta);
  }
}

function upload(ev) {
  ev.preventDefault();
  const input = document.getElementById("upload-file");
  if (!input.files.length) return;
  const file = input.files[0];
  const tag = randomTag();
  state.mine = { tag, phase: "sending" };
  const button = document.getElementById("upload-button");
  button.disabled = true;
  document.getElementById("upload-status").hidden = false;
  document.getElementById("upload-result").hidden = true;
  const errorBox = document.getElementById("upload-error");
  errorBox.hidden = true;
  showProgress(0, "sending " + file.name + " (" + bytes(file.size) + ") to the daemon");
  const form = new FormData();
  form.append("t", "upload");
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/uri?t=upload");
  xhr.setRequestHeader("X-Uploader-Tag", tag);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable && e.total > 0) {
      showProgress(e.loaded / e.total, "sending to the daemon: " + bytes(e.loaded) + " of " + bytes(e.total));
    }
  };
  xhr.upload.onload = () => {
    state.mine.phase = "daemon";
    showProgress(0, "sent; the daemon is uploading it to the grid");
  };
  const finish = () => { button.disabled = false; state.mine.phase = "finished"; };
  xhr.onload = () => {
    finish();
    const text = xhr.responseText.trim();
    if (xhr.status === 200) {
      showProgress(1, "done: stored on the grid");
      const cap = document.getElementById("upload-cap");
      cap.value = text;
      document.getElementById("upload-download").href = "/uri/" + encodeURIComponent(text);
      document.getElementById("upload-download").setAttribute("download", file.name);
      document.getElementById("upload-result").hidden = false;
    } else {
      document.getElementById("upload-stage").textContent = "failed";
      errorBox.textContent = "The upload failed (" + xhr.status + "): " + (text || xhr.statusText);
      errorBox.hidden = false;
    }
  };
  xhr.onerror = () => {
    finish();
    document.getElementById("upload-stage").textContent = "failed";
    errorBox.textContent = "The connection to the daemon was lost; the upload may not have finished.";
    errorBox.hidden = false;
  };
  xhr.send(form);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("upload-form").addEventListener("submit", upload);
  poll();
});

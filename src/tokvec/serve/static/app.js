// tokvec serve: the page. Plain JS, no build step, no network beyond this server.
// Every string from the server or the user goes into the page through textContent or an attribute,
// never parsed as HTML, so a token like "</textarea><script>" is shown, not run.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], run: null, compare: "", attn: null, query: null, gen: null, timers: {}, aborts: {} };

function el(tag, props = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function visible(piece) {  // whitespace made visible; the raw piece stays in data-piece
  return piece.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/\r/g, "\u240d");
}

function decodeArray(obj) {  // {"shape", "dtype": "float32", "data": base64 little-endian}
  const bin = atob(obj.data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return { shape: obj.shape, data: new Float32Array(bytes.buffer) };
}

function showError(message) {
  const box = $("error");
  box.hidden = !message;
  box.textContent = message || "";
}

// One request per panel at a time: a newer one aborts the older.
async function api(panel, path, body) {
  if (state.aborts[panel]) state.aborts[panel].abort();
  const ctrl = new AbortController();
  state.aborts[panel] = ctrl;
  const init = body === undefined ? { signal: ctrl.signal }
    : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: ctrl.signal };
  const res = await fetch(path, init);
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function debounce(name, ms, fn) {
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(fn, ms);
}

function quiet(err) { if (err.name !== "AbortError") showError(err.message); }

// -- colours ---------------------------------------------------------------------------------
const PALETTE = ["#fde2a6", "#bfe3c7", "#c7d7f7", "#f6c6d8", "#d9ccf2", "#c4ebeb", "#f7d4b5", "#e0e6b0"];

function diverging(v, scale) {  // blue (-) white (0) red (+)
  if (!isFinite(v)) return [225, 225, 230];
  const t = Math.max(-1, Math.min(1, v / (scale || 1)));
  return t >= 0 ? [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))]
    : [Math.round(255 * (1 + t)), Math.round(255 * (1 + t)), 255];
}

function sequential(v) {  // 0 white -> 1 dark blue
  if (!isFinite(v)) return [225, 225, 230];
  const t = Math.max(0, Math.min(1, v));
  return [Math.round(255 - 219 * t), Math.round(255 - 168 * t), Math.round(255 - 58 * t)];
}

function heatmap(canvas, arr, rows, cols, offset, colour) {  // one pixel per cell, scaled by CSS
  canvas.width = Math.max(cols, 1);
  canvas.height = Math.max(rows, 1);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const [R, G, B] = colour(arr[offset + r * cols + c]);
      const i = 4 * (r * cols + c);
      img.data[i] = R; img.data[i + 1] = G; img.data[i + 2] = B; img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

function maxAbs(arr) {
  let m = 0;
  for (const v of arr) if (isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m || 1;
}

// -- tokens ----------------------------------------------------------------------------------
function hoverText(t, basis) {
  const rank = t.rank === null ? (t.special ? "special token" : "not known") : `${t.rank}`;
  return `piece ${JSON.stringify(t.piece)}\nid ${t.id}\nbytes ${t.bytes || "(none)"}\n${basis.startsWith("merge") ? "merge rank" : "frequency rank"} ${rank}`;
}

function renderPieces(box, stats, view, source, markWindow) {
  box.replaceChildren();
  const start = markWindow && view.window ? view.window.total_tokens - view.window.kept_tokens : 0;
  view.tokens.forEach((t, i) => {
    const span = el("span", { class: "tok", "data-id": String(t.id), "data-piece": t.piece, "data-index": String(i) },
      visible(t.piece));
    span.style.background = PALETTE[i % PALETTE.length];
    if (t.id === view.unk_id && view.unk_id !== null) span.classList.add("unk");
    if (t.special) span.classList.add("special");
    if (i < start) span.classList.add("outside");
    span.dataset.hover = hoverText(t, view.rank_basis);
    box.appendChild(span);
  });
  const more = view.count > view.shown ? ` (first ${view.shown} listed)` : "";
  const tpc = view.tokens_per_char === null ? "-" : view.tokens_per_char.toFixed(3);
  stats.textContent = `${source.name} (${source.tokenizer}, vocab ${source.vocab_size}): ${view.count} tokens, `
    + `${view.characters} characters, ${tpc} tokens/char${more}`;
  $("rank-basis").textContent = `hover a piece: its bytes, id and ${view.rank_basis}`;
}

async function refreshTokens(text) {
  const run = state.run;
  try {
    const view = await api("tokens", "/api/tokens", { run: run.id, text });
    renderPieces($("pieces"), $("token-stats"), view, run, true);
    const notice = $("notice");
    if (view.window) {
      const w = view.window;
      notice.hidden = false;
      notice.textContent = `The text is ${w.total_tokens} tokens, more than this model's context of ${w.context_length}: `
        + `the model panels read only the last ${w.kept_tokens} tokens (from character ${w.start} on); the faded pieces are cut.`;
    } else {
      notice.hidden = true;
    }
  } catch (err) { quiet(err); }
  const other = state.runs.find((r) => r.id === state.compare);
  $("compare-block").hidden = !other;
  $("tokens-panel").classList.toggle("wide", Boolean(other));  // the two splits side by side
  if (other) {
    try {
      const view = await api("tokens-b", "/api/tokens", { run: other.id, text });
      renderPieces($("pieces-b"), $("token-stats-b"), view, other, false);
    } catch (err) { quiet(err); }
  }
}

// -- vectors ---------------------------------------------------------------------------------
async function refreshVectors(text) {
  try {
    const v = await api("vectors", "/api/vectors", { run: state.run.id, text });
    const stages = $("stages");
    stages.replaceChildren();
    for (const s of v.stages) {
      const li = el("li");
      li.append(el("b", {}, s.name), " ", el("code", {}, `(${s.shape.join(", ")}${s.shape.length === 1 ? "," : ""})`),
        " ", el("span", { class: "muted" }, s.note));
      stages.appendChild(li);
    }
    const tok = decodeArray(v.token_vectors);
    const sum = decodeArray(v.input_vectors);
    const scale = Math.max(maxAbs(tok.data), maxAbs(sum.data));
    const [s, d] = tok.shape;
    heatmap($("vec-token"), tok.data, s, d, 0, (x) => diverging(x, scale));
    heatmap($("vec-sum"), sum.data, s, d, 0, (x) => diverging(x, scale));
    $("vec-token-cap").textContent = `token vectors (${s}, ${d}): row i is the embedding row of token i`;
    $("vec-sum-cap").textContent = `input vectors (${s}, ${d}): what block 0 reads`;
    const pos = v.positional;
    const cap = $("vec-pos-cap");
    if (pos.vectors) {
      const pe = decodeArray(pos.vectors);
      heatmap($("vec-pos"), pe.data, pe.shape[0], pe.shape[1], 0, (x) => diverging(x, scale));
      cap.textContent = `${pos.name}: ${pos.label}`;
    } else if (pos.scores) {
      const sc = decodeArray(pos.scores);
      const [, n] = sc.shape;
      const m = maxAbs(sc.data.subarray(0, n * n));
      heatmap($("vec-pos"), sc.data, n, n, 0, (x) => diverging(x, m));  // head 0
      cap.textContent = `${pos.label} (head 0 of ${sc.shape[0]}; query down, key across)`;
    } else {
      heatmap($("vec-pos"), new Float32Array(s * d), s, d, 0, (x) => diverging(x, 1));
      cap.textContent = pos.label;
    }
    $("vec-legend").textContent = `rows: tokens; columns: dimensions; blue negative, red positive (shared scale ±${scale.toFixed(3)})`;
  } catch (err) { quiet(err); }
}

// -- attention -------------------------------------------------------------------------------
async function refreshAttention(text) {
  const layer = Number($("layer").value || 0);
  try {
    const a = await api("attention", "/api/attention", { run: state.run.id, text, layer });
    state.attn = { weights: decodeArray(a.weights), pieces: a.pieces };
    const head = $("head");
    if (head.options.length !== a.n_heads) {
      head.replaceChildren(...Array.from({ length: a.n_heads }, (_, h) => el("option", { value: String(h) }, `head ${h}`)));
    }
    const tokens = $("attn-tokens");
    tokens.replaceChildren(...a.pieces.map((p, i) => {
      const span = el("span", { class: "tok", "data-index": String(i), "data-piece": p }, visible(p));
      span.addEventListener("click", () => { state.query = i; drawAttention(); });
      return span;
    }));
    if (state.query === null || state.query >= a.pieces.length) state.query = a.pieces.length - 1;
    drawAttention();
  } catch (err) { quiet(err); }
}

function drawAttention() {
  if (!state.attn) return;
  const { weights, pieces } = state.attn;
  const [, s] = weights.shape;
  const h = Number($("head").value || 0);
  heatmap($("attn"), weights.data, s, s, h * s * s, (w) => sequential(Math.sqrt(w)));  // sqrt: small weights stay visible
  const q = state.query;
  const row = weights.data.subarray(h * s * s + q * s, h * s * s + (q + 1) * s);
  const spans = $("attn-tokens").children;
  for (let j = 0; j < spans.length; j++) {
    const w = row[j];
    spans[j].style.background = `rgba(36, 87, 197, ${Math.min(1, w).toFixed(3)})`;
    spans[j].style.color = w > 0.5 ? "#fff" : "";
    spans[j].classList.toggle("sel", j === q);
    spans[j].dataset.hover = `key ${j} ${JSON.stringify(pieces[j])}\nweight ${w.toFixed(4)} from query ${q}`;
  }
  const best = Array.from(row.subarray(0, q + 1), (w, j) => [w, j]).sort((a, b) => b[0] - a[0]).slice(0, 3);  // causal: keys 0..q
  $("attn-looks").textContent = `query ${q} ${JSON.stringify(pieces[q])} (layer ${$("layer").value}, head ${h}) looks most at: `
    + best.map(([w, j]) => `${JSON.stringify(pieces[j])} @${j} ${(100 * w).toFixed(1)}%`).join(", ");
}

// -- next token ------------------------------------------------------------------------------
function samplerOptions() {
  const k = Number($("top-k").value);
  const p = Number($("top-p").value);
  return { temperature: Number($("temperature").value), top_k: k >= 1 ? Math.floor(k) : null, top_p: p < 1 ? p : null };
}

async function refreshNext(text) {
  try {
    const n = await api("next", "/api/next", { run: state.run.id, text, k: 10, ...samplerOptions() });
    const list = $("top");
    const rows = n.top.map((t) => {
      const li = el("li", { "data-prob": String(t.prob), "data-id": String(t.id) });
      const bar = el("span", { class: "bar" });
      bar.style.width = `${(100 * t.prob).toFixed(2)}%`;
      const wrap = el("span");
      wrap.appendChild(bar);
      const piece = el("span", { class: "piece" }, visible(t.piece));
      piece.dataset.hover = `id ${t.id}\nmodel's own probability ${t.model_prob.toFixed(4)}`;
      li.append(piece, wrap, el("span", { class: "p" }, t.prob.toFixed(4)));
      return li;
    });
    const rest = el("li", { class: "rest", "data-prob": String(n.rest) });
    const bar = el("span", { class: "bar" });
    bar.style.width = `${(100 * n.rest).toFixed(2)}%`;
    const wrap = el("span");
    wrap.appendChild(bar);
    rest.append(el("span", { class: "piece" }, "(all others)"), wrap, el("span", { class: "p" }, n.rest.toFixed(4)));
    list.replaceChildren(...rows, rest);
    $("next-stats").textContent = `${n.kept} of ${n.vocab_size} ids can be sampled under these settings; `
      + `the model read ${n.context_tokens} tokens`;
  } catch (err) { quiet(err); }
}

// -- generation (server-sent events over a streamed POST) ------------------------------------
async function generate() {
  const box = $("text");
  const ctrl = new AbortController();
  state.gen = ctrl;
  $("generate").disabled = true;
  $("stop").disabled = false;
  $("gen-status").textContent = "generating...";
  let count = 0;
  try {
    const res = await fetch("/api/generate", {
      method: "POST", headers: { "content-type": "application/json" }, signal: ctrl.signal,
      body: JSON.stringify({ run: state.run.id, text: box.value, max_new_tokens: Number($("max-new").value) || 200,
        stop_at_eos: $("stop-at-eos").checked,
        ...samplerOptions() }),
    });
    if (!res.ok) throw new Error((await res.json()).error || `HTTP ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "null");
        if (event === "piece") {
          box.value += data;
          count += 1;
          $("gen-status").textContent = `${count} pieces`;
        } else if (event === "error") {
          throw new Error(data.error);
        }
      }
    }
    $("gen-status").textContent = `done: ${count} pieces`;
  } catch (err) {
    if (err.name === "AbortError") $("gen-status").textContent = `stopped after ${count} pieces`;
    else showError(err.message);
  } finally {
    state.gen = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
    refreshAll();
  }
}

// -- model card ------------------------------------------------------------------------------
function fillTable(table, rows) {
  table.replaceChildren(...rows.map(([k, v]) => {
    const tr = el("tr");
    const num = typeof v === "number";
    tr.append(el("td", {}, k), el("td", num ? { class: "num" } : {}, num ? v.toLocaleString("en-US") : v));
    return tr;
  }));
}

function drawLoss(canvas, records) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, B = 30, T = 12, R = 12;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  const pts = records.filter((r) => r.loss !== null);
  if (!pts.length) { ctx.fillText("no metrics.jsonl records", L, H / 2); return; }
  const steps = pts.map((r) => r.step), losses = pts.map((r) => r.loss);
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
  const y0 = Math.min(...losses), y1 = Math.max(...losses, y0 + 1e-6);
  const X = (s) => L + (W - L - R) * (s - x0) / (x1 - x0);
  const Y = (v) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#555";
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  for (let i = 0; i <= 4; i++) {
    const v = y0 + (y1 - y0) * i / 4;
    ctx.fillText(v.toFixed(2), 4, Y(v) + 4);
    const s = Math.round(x0 + (x1 - x0) * i / 4);
    ctx.fillText(String(s), X(s) - 8, H - B + 14);
  }
  ctx.fillText("step", W - R - 24, H - 4);
  const colours = { train: "#2457c5", val: "#d9534f" };
  let legend = 0;
  for (const split of [...new Set(pts.map((r) => r.split))]) {
    const line = pts.filter((r) => r.split === split);
    ctx.strokeStyle = colours[split] || "#444"; ctx.lineWidth = 1.6;
    ctx.beginPath();
    line.forEach((r, i) => (i ? ctx.lineTo(X(r.step), Y(r.loss)) : ctx.moveTo(X(r.step), Y(r.loss))));
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(`${split} loss`, W - R - 70, T + 12 + 14 * legend++);
  }
  ctx.lineWidth = 1;
}

async function refreshCard() {
  try {
    const c = await api("card", `/api/runs/${encodeURIComponent(state.run.id)}/card`);
    const model = [];
    if (c.parameters !== undefined) {
      model.push(["parameters", c.parameters], ["non-embedding parameters", c.non_embedding_parameters],
        ["embedding table (vocab_size, d_model)", `(${c.embedding_table.join(", ")})`]);
      for (const [k, v] of Object.entries(c.model)) model.push([k, v]);
    }
    fillTable($("card-model"), model);
    const t = c.tokenizer;
    const rows = [["kind", t.kind], ["vocab_size", t.vocab_size]];
    if (t.tokens !== undefined) rows.push(["validation text: characters", t.characters], ["validation text: tokens", t.tokens],
      ["tokens per character", Number(t.tokens_per_char.toFixed(4))]);
    rows.push(["validation text", c.val_text_note], ["ranks", t.rank_basis]);
    fillTable($("card-tokenizer"), rows);
    fillTable($("card-config"), (c.config || []).map(([k, v]) => [k, v === null ? "null" : v]));
    $("config-summary").textContent = `Configuration (${(c.config || []).length} settings from config.json)`;
    drawLoss($("loss"), c.loss);
    $("loss-note").textContent = c.loss.length ? `train and validation loss from metrics.jsonl (${c.loss.length} records)`
      : "no loss records (metrics.jsonl is missing or empty)";
  } catch (err) { quiet(err); }
}

// -- wiring ----------------------------------------------------------------------------------
function refreshAll() {
  const text = $("text").value;
  showError("");
  refreshTokens(text);
  const hasModel = state.run.kind === "run";
  if (hasModel) refreshNext(text);
  if (hasModel && text) { refreshVectors(text); refreshAttention(text); }
  if (!text) {  // nothing typed: no stale pictures of an older text
    for (const id of ["stages", "attn-tokens", "attn-looks"]) $(id).replaceChildren();
    for (const id of ["vec-token", "vec-pos", "vec-sum", "attn"]) $(id).width = 0;
    state.attn = null;
  }
}

function selectRun() {
  state.run = state.runs.find((r) => r.id === $("run").value);
  const r = state.run;
  const hasModel = r.kind === "run";
  for (const id of ["next-panel", "vectors-panel", "attention-panel"]) $(id).hidden = !hasModel;
  $("run-info").textContent = hasModel
    ? `${r.tokenizer} tokenizer, ${r.positional} positions, ${r.n_layers} layers x ${r.n_heads} heads, d_model ${r.d_model}, context ${r.context_length}, step ${r.step}`
    : `${r.tokenizer} tokenizer file, vocab ${r.vocab_size}`;
  if (hasModel) {
    $("layer").replaceChildren(...Array.from({ length: r.n_layers }, (_, l) => el("option", { value: String(l) }, `layer ${l}`)));
    $("head").replaceChildren(...Array.from({ length: r.n_heads }, (_, h) => el("option", { value: String(h) }, `head ${h}`)));
  }
  state.query = null;
  refreshCard();
  refreshAll();
}

async function start() {
  const data = await api("runs", "/api/runs");
  state.runs = data.runs;
  $("run").replaceChildren(...data.runs.map((r) => el("option", { value: r.id }, `${r.name} (${r.kind})`)));
  $("compare").append(...data.runs.map((r) => el("option", { value: r.id }, `${r.name} (${r.kind})`)));
  if (data.runs.length > 1) $("compare").value = data.runs[1].id;
  state.compare = $("compare").value;
  $("max-new").max = String(data.max_new_tokens);

  $("run").addEventListener("change", selectRun);
  $("compare").addEventListener("change", () => { state.compare = $("compare").value; refreshTokens($("text").value); });
  $("text").addEventListener("input", () => { if (!state.gen) debounce("text", 150, refreshAll); });
  $("layer").addEventListener("change", () => refreshAttention($("text").value));
  $("head").addEventListener("change", drawAttention);
  const controls = () => {
    $("temperature-out").textContent = Number($("temperature").value).toFixed(2);
    $("top-p-out").textContent = Number($("top-p").value).toFixed(2);
    debounce("next", 60, () => refreshNext($("text").value));
  };
  for (const id of ["temperature", "top-k", "top-p"]) $(id).addEventListener("input", controls);
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => state.gen && state.gen.abort());

  const hover = $("hover");
  document.addEventListener("mouseover", (e) => {
    const t = e.target.closest && e.target.closest("[data-hover]");
    hover.hidden = !t;
    if (t) hover.textContent = t.dataset.hover;
  });
  document.addEventListener("mousemove", (e) => {
    hover.style.left = `${Math.min(e.clientX + 14, window.innerWidth - hover.offsetWidth - 4)}px`;
    hover.style.top = `${e.clientY + 16}px`;
  });
  selectRun();
}

start().catch((err) => showError(`cannot reach the tokvec server: ${err.message}`));

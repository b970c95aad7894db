// tinyconv explorer: the page's only script. Plain JavaScript, no libraries, no build step.
//
// The page keeps the 28x28 input in `state.image` (values in [0, 1], white ink on black, as
// the model sees it), sends it to the server's JSON API (docs/explorer.md) and draws what
// comes back. Images arrive as {shape, data, lo, hi}: `data` is base64 of uint8 values, one
// map after the other, so map k of a layer is the k-th slice of H*W bytes.
"use strict";

const SIDE = 28;
const state = {
  image: new Float32Array(SIDE * SIDE),  // the current drawing, row-major
  history: [],                           // snapshots before each stroke, for undo
  drawing: false,
  last: null,                            // last pad position of the stroke, in pixels
  inFlight: false,                       // a forward request is on its way
  again: false,                          // the image changed while it was
  info: null,                            // /api/info: layers, shapes, options
  unit: null,                            // the selected unit {layer, feature, row, col}
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- talking to the server

async function api(route, body) {
  const response = await fetch("/api/" + route, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// the image as the API wants it: 28 rows of 28 numbers
function imageRows() {
  return Array.from({length: SIDE}, (_, r) => Array.from(state.image.subarray(r * SIDE, (r + 1) * SIDE)));
}

function bytesOf(encoded) {
  return Uint8Array.from(atob(encoded.data), (ch) => ch.charCodeAt(0));
}

// ---------------------------------------------------------------- drawing small images

// Put h*w bytes (from `offset`) on a canvas; `colour` maps a byte to [r, g, b].
function paint(canvas, bytes, offset, h, w, colour) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = colour(bytes[offset + i]);
    pixels.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(pixels, 0, 0);
}

const grey = (v) => [v, v, v];
// signed values arrive centred at 128: red for positive, blue for negative, white for 0
function diverging(v) {
  const t = (v - 128) / 127;
  return t >= 0 ? [255, 255 * (1 - t), 255 * (1 - t)] : [255 * (1 + t), 255 * (1 + t), 255];
}

function drawPad() {
  const bytes = state.image.map((v) => Math.round(255 * v));
  paint($("pad"), bytes, 0, SIDE, SIDE, grey);
}

// ---------------------------------------------------------------- the drawing pad

// Pointer events cover the mouse, a pen and touch alike.
function padPosition(event) {
  const box = $("pad").getBoundingClientRect();
  return [(event.clientY - box.top) / box.height * SIDE, (event.clientX - box.left) / box.width * SIDE];
}

// A soft round brush about 3 pixels wide, like the pen strokes of MNIST digits.
function dab(y, x) {
  for (let r = Math.floor(y - 2); r <= Math.ceil(y + 2); r++) {
    for (let c = Math.floor(x - 2); c <= Math.ceil(x + 2); c++) {
      if (r < 0 || r >= SIDE || c < 0 || c >= SIDE) continue;
      const d = Math.hypot(r + 0.5 - y, c + 0.5 - x);
      const v = Math.min(1, Math.max(0, 1.9 - d));
      state.image[r * SIDE + c] = Math.max(state.image[r * SIDE + c], v);
    }
  }
}

// Dab along the segment from the last position, so fast strokes have no gaps.
function strokeTo(position) {
  const [y, x] = position;
  const [y0, x0] = state.last || position;
  const steps = Math.max(1, Math.ceil(Math.hypot(y - y0, x - x0) * 2));
  for (let s = 1; s <= steps; s++) dab(y0 + (y - y0) * s / steps, x0 + (x - x0) * s / steps);
  state.last = position;
  drawPad();
  requestForward();
}

function setUpPad() {
  const pad = $("pad");
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);    // keep the stroke when it leaves the pad
    remember();
    [state.drawing, state.last] = [true, null];
    strokeTo(padPosition(event));
  });
  pad.addEventListener("pointermove", (event) => { if (state.drawing) strokeTo(padPosition(event)); });
  // the unit's projection depends on the input: redo it once per stroke, at its end
  const end = () => { if (state.drawing) { state.drawing = false; refreshUnit(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => { remember(); state.image.fill(0); changed(); });
  $("undo").addEventListener("click", () => {
    if (state.history.length) { state.image = state.history.pop(); changed(); }
  });
  $("load-digit").addEventListener("click", loadDigit);
}

// a snapshot for undo, taken before each stroke, clear or loaded digit
const remember = () => state.history.push(state.image.slice());
// the whole input changed at once: redraw it and ask the server again
function changed() { drawPad(); requestForward(); refreshUnit(); }

async function loadDigit() {
  try {
    const answer = await api("digit", {index: Number($("digit-index").value)});
    remember();
    state.image = Float32Array.from(answer.image.flat());
    $("digit-label").textContent = `held-out digit ${answer.index}: label ${answer.label} — ${answer.call}`;
    changed();
  } catch (err) { showStatus(err); }
}

function showStatus(err) { $("status").textContent = err ? String(err.message || err) : ""; }

// ---------------------------------------------------------------- forward: probabilities and maps

// At most one forward request at a time; if the drawing changed meanwhile, send once more
// when the answer is in, so the view always ends on the latest drawing.
async function requestForward() {
  if (state.inFlight) { state.again = true; return; }
  state.inFlight = true;
  try {
    const answer = await api("forward", {image: imageRows()});
    showForward(answer);
    showStatus(null);
  } catch (err) { showStatus(err); }
  state.inFlight = false;
  if (state.again) { state.again = false; requestForward(); }
}

function showForward(answer) {
  // one bar per class, 200 px for p = 1; the predicted class in another colour
  const probs = $("probs");
  probs.innerHTML = answer.probabilities.map((p, c) =>
    `<div class="bar${c === answer.prediction ? " best" : ""}"><span>${c}</span>` +
    `<span class="fill" style="width:${Math.round(200 * p)}px"></span><span>${p.toFixed(3)}</span></div>`).join("");
  probs.dataset.updates = Number(probs.dataset.updates) + 1;
  $("forward-call").textContent = `tc.softmax(${answer.call}[-1])`;
  for (const layer of answer.layers) {
    const [channels, h, w] = layer.shape;   // maps arrive as (C_l, H_l, W_l)
    const bytes = bytesOf(layer);
    const maps = document.querySelectorAll(`.map[data-l="${layer.l}"]`);
    for (let k = 0; k < channels; k++) paint(maps[k], bytes, k * h * w, h, w, grey);
  }
  const grid = $("layers");
  grid.dataset.updates = Number(grid.dataset.updates) + 1;
}

// One section per spatial layer, one small canvas per feature map; a click picks the unit
// under the pointer.
function buildLayers(info) {
  const grid = $("layers");
  for (const layer of info.layers) {
    const [h, w, channels] = layer.shape;
    const section = document.createElement("div");
    section.className = "layer";
    const rf = layer.rf.size ? `receptive field ${layer.rf.size[0]}×${layer.rf.size[1]}` : "";
    section.innerHTML = `<h3>l = ${layer.l}: <b>${layer.name}</b> (${layer.type}) ${h}×${w}×${channels}, ${rf}</h3>`;
    const maps = document.createElement("div");
    maps.className = "maps";
    for (let k = 0; k < channels; k++) {
      const canvas = document.createElement("canvas");
      canvas.className = "map";
      [canvas.width, canvas.height] = [w, h];
      Object.assign(canvas.dataset, {l: layer.l, k});
      canvas.title = `${layer.name}, feature k = ${k}`;
      canvas.addEventListener("click", (event) => {
        const box = canvas.getBoundingClientRect();
        const row = Math.min(h - 1, Math.floor((event.clientY - box.top) / box.height * h));
        const col = Math.min(w - 1, Math.floor((event.clientX - box.left) / box.width * w));
        document.querySelectorAll(".map.selected").forEach((m) => m.classList.remove("selected"));
        canvas.classList.add("selected");
        state.unit = {layer: layer.name, feature: k, row, col};
        refreshUnit();
      });
      maps.appendChild(canvas);
    }
    section.appendChild(maps);
    grid.appendChild(section);
  }
}

// ---------------------------------------------------------------- the selected unit

async function refreshUnit() {
  if (!state.unit) return;
  const request = {...state.unit, image: imageRows(), rule: $("rule").value};
  try {
    const answer = await api("unit", request);
    showUnit(answer);
    if (state.info.preferred) {
      const preferred = await api("preferred", {layer: answer.layer, feature: answer.feature});
      $("preferred-figure").hidden = false;
      paint($("preferred"), bytesOf(preferred.image), 0, SIDE, SIDE, grey);
      $("preferred-call").textContent = preferred.call;
    }
  } catch (err) { showStatus(err); }
}

function showUnit(answer) {
  $("unit-hint").hidden = true;
  $("unit-title").innerHTML = `<b>${answer.layer}</b>, feature k = ${answer.feature}, ` +
    `idx = (${answer.row}, ${answer.col}): y = ${answer.activation.toFixed(3)}`;
  // the receptive-field box (half-open rows r0:r1, columns c0:c1) over the input, drawn
  // 5x larger than the input so that the outline stays crisp
  const small = document.createElement("canvas");
  paint(small, state.image.map((v) => Math.round(255 * v)), 0, SIDE, SIDE, grey);
  const rf = $("rf"), ctx = rf.getContext("2d");
  rf.width = rf.height = 5 * SIDE;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, 5 * SIDE, 5 * SIDE);
  const [r0, r1, c0, c1] = answer.box;
  ctx.strokeStyle = "#f33";
  ctx.lineWidth = 2;
  ctx.strokeRect(5 * c0 + 1, 5 * r0 + 1, 5 * (c1 - c0) - 2, 5 * (r1 - r0) - 2);
  $("rf-call").textContent = answer.calls.box + ` = (${answer.box.join(", ")})`;
  // the projection of the unit to the input, red positive, blue negative
  paint($("projection"), bytesOf(answer.projection), 0, SIDE, SIDE, diverging);
  $("projection-call").textContent = answer.calls.projection;
  // the top-9: patches of the held-out digits under each one's strongest unit of map k
  const top9 = $("top9");
  top9.innerHTML = "";
  const [n, h, w] = answer.top9.shape;
  const patches = bytesOf(answer.top9);
  for (let i = 0; i < n; i++) {
    // caption: example index, (its label) and its activation, the ranking's score
    const figure = document.createElement("figure");
    figure.innerHTML = `<canvas></canvas><figcaption>#${answer.top9.indices[i]} ` +
      `(${answer.top9.labels[i]}) ${answer.top9.values[i].toFixed(2)}</figcaption>`;
    paint(figure.firstChild, patches, i * h * w, h, w, grey);
    top9.appendChild(figure);
  }
  $("top9-call").textContent = answer.calls.top9;
  $("unit").dataset.ready = Number($("unit").dataset.ready) + 1;
}

// ---------------------------------------------------------------- occlusion

async function occlude() {
  const request = {image: imageRows(), size: Number($("occ-size").value),
                   stride: Number($("occ-stride").value)};
  try {
    const answer = await api("occlusion", request);
    paint($("occ-map"), bytesOf(answer.pixels), 0, SIDE, SIDE, diverging);
    // one cell per window position: the class the model predicts with that window hidden
    const table = $("occ-classes");
    table.innerHTML = "";
    for (const row of answer.predicted) {
      const tr = table.insertRow();
      for (const c of row) {
        const td = tr.insertCell();
        td.textContent = c;
        if (c !== answer.class) td.className = "changed";
      }
    }
    $("occ-call").textContent = `${answer.call}; ${answer.call_classes}`;
  } catch (err) { showStatus(err); }
}

// ---------------------------------------------------------------- start

async function start() {
  setUpPad();
  $("rule").addEventListener("change", refreshUnit);
  $("occlude").addEventListener("click", occlude);
  try {
    state.info = await api("info");
    $("digit-index").max = state.info.digits - 1;
    buildLayers(state.info);
    drawPad();
    await requestForward();
  } catch (err) { showStatus(err); }
}

start();

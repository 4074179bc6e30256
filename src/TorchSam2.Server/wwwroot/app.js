// TorchSam2 serve: the image page. Plain JS over the HTTP API (no build step). State lives here; the server keeps
// only the image's embedding and recent logits, so export and undo need no round trip.
'use strict';
const $ = id => document.getElementById(id);
const COLORS = [[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0], [186, 85, 211], [0, 206, 209], [255, 140, 0], [255, 20, 147]];
const ALPHA = 140; // mask overlay opacity (of 255)

const state = { info: null, image: null, bitmap: null, objects: [], current: null, nextId: 1, lastRoundTripMs: null, lastTimings: null };
window.sam = { state }; // for tests and the console

const canvas = $('view'), ctx = canvas.getContext('2d');

// ---- status and errors ------------------------------------------------------------------------------------------
function status(text, isError = false) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', isError);
}
function busy(on) { $('progress').hidden = !on; }

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(await errorText(r));
  return r.status === 204 ? null : r.json();
}
async function errorText(r) {
  try { const j = await r.json(); if (j && j.error) return j.error; } catch (_) { /* not JSON */ }
  return `${r.status} ${r.statusText}`;
}
function fail(e) { busy(false); status(e.message || String(e), true); }

// ---- opening images -----------------------------------------------------------------------------------------------
function uploadFile(file) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/api/images?name=' + encodeURIComponent(file.name));
    let t0 = 0, timer = 0;
    x.upload.onprogress = e => { if (e.lengthComputable) status(`uploading ${file.name}: ${Math.round(100 * e.loaded / e.total)} %`); };
    x.upload.onload = () => {
      t0 = performance.now();
      timer = setInterval(() => status(`encoding ${file.name} … ${((performance.now() - t0) / 1000).toFixed(1)} s`), 100);
    };
    x.onload = () => {
      clearInterval(timer);
      if (x.status >= 200 && x.status < 300) resolve(JSON.parse(x.responseText));
      else { let m = `${x.status} ${x.statusText}`; try { m = JSON.parse(x.responseText).error || m; } catch (_) { } reject(new Error(m)); }
    };
    x.onerror = () => { clearInterval(timer); reject(new Error('the upload failed (network error)')); };
    x.send(file);
  });
}

async function openWith(opener, label) {
  try {
    busy(true);
    status(`opening ${label} …`);
    await closeImage();
    const info = await opener();
    status(`loading ${info.name} …`);
    const r = await fetch(`/api/images/${info.id}/image`);
    if (!r.ok) throw new Error(await errorText(r));
    state.bitmap = await createImageBitmap(await r.blob());
    state.image = info;
    state.objects = []; state.current = null; state.nextId = 1; state.auto = null;
    canvas.width = info.width; canvas.height = info.height;
    $('stage').classList.add('loaded');
    fitCanvas();
    newObject();
    busy(false);
    status(`${info.name}: ${info.width}×${info.height}, encoded in ${info.encodeMs.toFixed(0)} ms. Click the object.`);
  } catch (e) { fail(e); }
}
const openFile = file => openWith(() => uploadFile(file), file.name);
const openPath = path => openWith(() => api('POST', '/api/images/open', { path }), path);

async function closeImage() {
  if (!state.image) return;
  const id = state.image.id;
  state.image = null;
  try { await fetch(`/api/images/${id}`, { method: 'DELETE' }); } catch (_) { /* the server may be gone */ }
}
window.addEventListener('pagehide', () => { if (state.image) fetch(`/api/images/${state.image.id}`, { method: 'DELETE', keepalive: true }); });

$('file').addEventListener('change', e => { if (e.target.files[0]) openFile(e.target.files[0]); e.target.value = ''; });
const stage = $('stage');
stage.addEventListener('dragover', e => { e.preventDefault(); stage.classList.add('over'); });
stage.addEventListener('dragleave', () => stage.classList.remove('over'));
stage.addEventListener('drop', e => {
  e.preventDefault(); stage.classList.remove('over');
  const f = e.dataTransfer.files[0];
  if (f) openFile(f);
});

// the served folder (--root)
$('rootopen').addEventListener('click', () => { const p = $('rootpath').value.trim(); if (p) openPath(p); });
$('rootlist').addEventListener('click', () => browse($('rootpath').value.trim()));
async function browse(path) {
  try {
    const l = await api('GET', '/api/files?path=' + encodeURIComponent(path || ''));
    const ul = $('listing');
    ul.innerHTML = ''; ul.hidden = false;
    const items = l.path && l.path !== '.' ? [{ name: '..', path: l.path.split('/').slice(0, -1).join('/'), isFolder: true }] : [];
    for (const e of items.concat(l.entries)) {
      const li = document.createElement('li');
      li.textContent = (e.isFolder ? '📁 ' : '') + e.name;
      li.onclick = () => { if (e.isFolder) browse(e.path); else { $('rootpath').value = e.path; openPath(e.path); } };
      ul.appendChild(li);
    }
  } catch (e) { fail(e); }
}

// ---- objects ----------------------------------------------------------------------------------------------------
function newObject(silent = false) {
  const id = state.nextId++;
  const o = { id, color: COLORS[(id - 1) % COLORS.length], points: [], labels: [], box: null, history: [], masks: [], choice: 0, layer: null, seq: 0 };
  state.objects.push(o);
  state.current = o;
  if (!silent) refresh();
  return o;
}
function removeObject(o) {
  state.objects = state.objects.filter(x => x !== o);
  if (state.current === o) state.current = state.objects[state.objects.length - 1] || null;
  refresh();
}
function snapshot(o) { o.history.push({ points: o.points.map(p => p.slice()), labels: o.labels.slice(), box: o.box && o.box.slice(), masks: o.masks, choice: o.choice }); }

function addPoint(x, y, label) {
  const o = state.current || newObject();
  snapshot(o);
  o.points.push([x, y]); o.labels.push(label);
  predict(o);
}
function setBox(box) {
  const o = state.current || newObject();
  snapshot(o);
  o.box = box;
  predict(o);
}
function undo() {
  const o = state.current;
  if (!o) return;
  if (o.history.length === 0) { if (state.objects.length > 1) removeObject(o); return; }
  const h = o.history.pop();
  o.seq++; // an answer still on its way is for the state undone
  o.points = h.points; o.labels = h.labels; o.box = h.box; o.masks = h.masks; o.choice = h.choice;
  paintLayer(o);
  refresh();
}

async function predict(o) {
  if (!state.image) return;
  const seq = ++o.seq;
  const single = o.points.length === 1 && !o.box;
  const body = { points: o.points.length ? o.points : null, labels: o.points.length ? o.labels : null, box: o.box, multimask: $('multimask').checked || single, format: 'rle' };
  const t0 = performance.now();
  try {
    const r = await api('POST', `/api/images/${state.image.id}/predict`, body);
    if (seq !== o.seq) return; // a newer click answered first
    const rt = performance.now() - t0;
    state.lastRoundTripMs = rt; state.lastTimings = r.timingsMs;
    o.masks = r.masks; o.choice = r.best;
    paintLayer(o);
    refresh();
    const t = r.timingsMs;
    status(`object ${o.id}: score ${fmt(o.masks[o.choice].score)}, ${o.masks[o.choice].area} px · decoder ${t.decoder.toFixed(0)} ms` +
           (t.encode ? `, re-encode ${t.encode.toFixed(0)} ms` : '') + `, round trip ${rt.toFixed(0)} ms`);
  } catch (e) { if (seq === o.seq) fail(e); }
}
const fmt = s => s === null || s === undefined ? '—' : s.toFixed(3);

// ---- masks --------------------------------------------------------------------------------------------------------
// COCO's compressed RLE string → run lengths (column-major, background first): pycocotools rleFrString.
function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20; p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}
// Calls fn(x, y) for every mask pixel.
function forEachPixel(rle, fn) {
  const [h] = rle.size, counts = rleCounts(rle.counts);
  let i = 0;
  for (let r = 0; r < counts.length; r++) {
    if (r % 2 === 1) for (let j = i; j < i + counts[r]; j++) fn(Math.floor(j / h), j % h);
    i += counts[r];
  }
}
function paintLayer(o) {
  const m = o.masks[o.choice];
  if (!m) { o.layer = null; return; }
  const [h, w] = m.rle.size;
  const layer = document.createElement('canvas');
  layer.width = w; layer.height = h;
  const lc = layer.getContext('2d'), img = lc.createImageData(w, h), d = img.data, [cr, cg, cb] = o.color;
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  forEachPixel(m.rle, (x, y) => {
    const k = (y * w + x) * 4;
    d[k] = cr; d[k + 1] = cg; d[k + 2] = cb; d[k + 3] = ALPHA;
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  });
  lc.putImageData(img, 0, 0);
  o.layer = layer;
  o.bbox = x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

// ---- drawing ------------------------------------------------------------------------------------------------------
let drag = null; // { x0, y0, x1, y1, sx, sy, moved, label }
function draw() {
  if (!state.bitmap) return;
  ctx.drawImage(state.bitmap, 0, 0);
  if (state.auto) ctx.drawImage(state.auto.layer, 0, 0);
  for (const o of state.objects) if (o.layer) ctx.drawImage(o.layer, 0, 0);
  const r = Math.max(4, Math.round(Math.max(canvas.width, canvas.height) / 150));
  ctx.lineWidth = Math.max(2, r / 2);
  for (const o of state.objects) {
    if (o.box) { ctx.strokeStyle = `rgb(${o.color})`; ctx.strokeRect(o.box[0], o.box[1], o.box[2] - o.box[0], o.box[3] - o.box[1]); }
    o.points.forEach((p, i) => {
      ctx.beginPath(); ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
      ctx.fillStyle = o.labels[i] ? '#0c0' : '#e00'; ctx.fill();
      ctx.strokeStyle = '#fff'; ctx.stroke();
    });
  }
  if (drag && drag.moved) {
    ctx.setLineDash([6, 4]); ctx.strokeStyle = '#fff';
    ctx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0);
    ctx.setLineDash([]);
  }
}

function refresh() {
  const ul = $('objects');
  ul.innerHTML = '';
  for (const o of state.objects) {
    const li = document.createElement('li');
    li.className = o === state.current ? 'sel' : '';
    li.dataset.id = o.id;
    const m = o.masks[o.choice];
    li.innerHTML = `<span class="swatch" style="background:rgb(${o.color})"></span><span>#${o.id}</span><span class="muted">${m ? 'score ' + fmt(m.score) : 'no prompt'}</span>`;
    const del = document.createElement('button');
    del.className = 'del'; del.textContent = '×'; del.title = 'remove this object';
    del.onclick = e => { e.stopPropagation(); removeObject(o); };
    li.appendChild(del);
    li.onclick = () => { state.current = o; refresh(); };
    ul.appendChild(li);
  }
  const ch = $('choices');
  ch.innerHTML = '';
  const cur = state.current;
  if (cur && cur.masks.length > 1) {
    cur.masks.forEach((m, i) => {
      const b = document.createElement('button');
      b.className = i === cur.choice ? 'sel' : '';
      b.textContent = `mask ${i + 1} · score ${fmt(m.score)} · ${m.area} px`;
      b.onclick = () => { cur.choice = i; paintLayer(cur); refresh(); };
      ch.appendChild(b);
    });
  } else ch.textContent = cur && cur.masks.length ? `one mask · score ${fmt(cur.masks[0].score)}` : '—';
  const has = !!state.image, anyMask = state.objects.some(o => o.masks.length);
  $('newobj').disabled = !has; $('clear').disabled = !has;
  $('undo').disabled = !(cur && (cur.history.length || state.objects.length > 1));
  $('exportpng').disabled = !(cur && cur.masks.length); $('exportcoco').disabled = !anyMask;
  $('glyphs').disabled = !has; $('auto').disabled = !has; $('exportglyphs').disabled = !state.objects.some(o => o.glyph);
  draw();
}

// small images are shown enlarged (pixels kept sharp), large ones shrunk to the stage
function fitCanvas() {
  if (!state.image) return;
  const st = $('stage'), maxW = st.clientWidth - 8, maxH = window.innerHeight * 0.78;
  const scale = Math.min(maxW / canvas.width, maxH / canvas.height, 8);
  canvas.style.width = Math.floor(canvas.width * scale) + 'px';
  canvas.style.height = Math.floor(canvas.height * scale) + 'px';
  canvas.style.imageRendering = scale > 1.5 ? 'pixelated' : 'auto';
}
window.addEventListener('resize', fitCanvas);

// ---- mouse --------------------------------------------------------------------------------------------------------
function toImage(e) {
  const r = canvas.getBoundingClientRect();
  const x = (e.clientX - r.left) * canvas.width / r.width, y = (e.clientY - r.top) * canvas.height / r.height;
  return [Math.min(Math.max(x, 0), canvas.width), Math.min(Math.max(y, 0), canvas.height)];
}
canvas.addEventListener('contextmenu', e => e.preventDefault());
canvas.addEventListener('mousedown', e => {
  if (!state.image) return;
  const [x, y] = toImage(e);
  drag = { x0: x, y0: y, x1: x, y1: y, sx: e.clientX, sy: e.clientY, moved: false, label: e.button === 2 || e.shiftKey ? 0 : 1 };
});
window.addEventListener('mousemove', e => {
  if (!drag) return;
  if (Math.hypot(e.clientX - drag.sx, e.clientY - drag.sy) > 6 && drag.label === 1) drag.moved = true;
  [drag.x1, drag.y1] = toImage(e);
  if (drag.moved) draw();
});
window.addEventListener('mouseup', () => {
  if (!drag) return;
  const d = drag;
  drag = null;
  if (d.moved) { setBox([Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)].map(v => Math.round(v))); return; }
  // a click on another glyph selects it; the next click fixes it with the same prompts (its box and the clicks)
  const hit = state.objects.find(o => o.glyph && o !== state.current && o.box && d.x0 >= o.box[0] && d.x0 <= o.box[2] && d.y0 >= o.box[1] && d.y0 <= o.box[3]);
  if (hit) { state.current = hit; refresh(); status(`glyph ${hit.id} selected: click to add to it, Shift+click to remove, Undo to go back`); return; }
  addPoint(Math.round(d.x0), Math.round(d.y0), d.label);
});

// ---- buttons ------------------------------------------------------------------------------------------------------
$('newobj').onclick = () => newObject();
$('undo').onclick = () => undo();
$('clear').onclick = () => { state.auto = null; state.objects = []; state.current = null; state.nextId = 1; newObject(); status('cleared'); };
document.addEventListener('keydown', e => { if ((e.ctrlKey || e.metaKey) && e.key === 'z') { e.preventDefault(); undo(); } });

function download(name, blob) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
$('exportpng').onclick = () => {
  const o = state.current, m = o && o.masks[o.choice];
  if (!m) return;
  const [h, w] = m.rle.size, c = document.createElement('canvas');
  c.width = w; c.height = h;
  const cc = c.getContext('2d'), img = cc.createImageData(w, h), d = img.data;
  for (let k = 3; k < d.length; k += 4) d[k] = 255;
  forEachPixel(m.rle, (x, y) => { const k = (y * w + x) * 4; d[k] = d[k + 1] = d[k + 2] = 255; });
  cc.putImageData(img, 0, 0);
  c.toBlob(b => download(`mask_${o.id}.png`, b), 'image/png');
};
$('exportcoco').onclick = () => {
  const im = state.image;
  const anns = state.objects.filter(o => o.masks.length).map(o => {
    const m = o.masks[o.choice];
    return { id: o.id, image_id: 1, category_id: 1, segmentation: m.rle, area: m.area, bbox: o.bbox, score: m.score, iscrowd: 0,
             point_coords: o.points, point_labels: o.labels, box: o.box };
  });
  const coco = { images: [{ id: 1, file_name: im.name, width: im.width, height: im.height }], annotations: anns, categories: [{ id: 1, name: 'object' }] };
  download(im.name.replace(/\.[^.]*$/, '') + '.coco.json', new Blob([JSON.stringify(coco, null, 1)], { type: 'application/json' }));
};

// ---- glyph sheets -------------------------------------------------------------------------------------------------
$('glyphs').onclick = async () => {
  try {
    busy(true);
    const t0 = performance.now();
    const timer = setInterval(() => status(`segmenting every glyph … ${((performance.now() - t0) / 1000).toFixed(1)} s`), 100);
    let r;
    try { r = await api('POST', `/api/images/${state.image.id}/glyphs`); } finally { clearInterval(timer); }
    state.objects = []; state.nextId = 1;
    for (const g of r.glyphs) {
      const o = newObject(true);
      Object.assign(o, { glyph: true, box: g.box, masks: [{ rle: g.segmentation, score: g.score, area: g.area, logits: null }], choice: 0 });
      paintLayer(o);
    }
    state.current = null;
    refresh();
    busy(false);
    status(`${r.glyphs.length} glyph(s) from ${r.crops} crop(s) in ${(r.ms / 1000).toFixed(1)} s. Click a glyph to select it, then click to fix it.`);
  } catch (e) { fail(e); }
};
$('exportglyphs').onclick = () => {
  const im = state.image;
  const glyphs = state.objects.filter(o => o.glyph && o.masks.length).map(o => {
    const m = o.masks[o.choice];
    return { id: o.id, box: o.box, bbox: o.bbox, score: m.score, area: m.area, segmentation: m.rle };
  });
  const json = { file_name: im.name, height: im.height, width: im.width, glyphs };
  download('glyphs.json', new Blob([JSON.stringify(json, null, 1)], { type: 'application/json' }));
};

// ---- automatic masks ----------------------------------------------------------------------------------------------
// One layer with every mask (largest first, so small ones stay visible) and a map from pixel to the topmost mask.
$('auto').onclick = async () => {
  try {
    busy(true);
    const t0 = performance.now();
    const timer = setInterval(() => status(`automatic masks … ${((performance.now() - t0) / 1000).toFixed(1)} s`), 100);
    let r;
    try {
      r = await api('POST', `/api/images/${state.image.id}/auto`,
        { pointsPerSide: +$('autogrid').value, predIouThresh: +$('autoiou').value, stabilityScoreThresh: +$('autostab').value });
    } finally { clearInterval(timer); }
    const w = state.image.width, h = state.image.height;
    const top = new Int32Array(w * h).fill(-1);
    const layer = document.createElement('canvas'); layer.width = w; layer.height = h;
    const lc = layer.getContext('2d'), img = lc.createImageData(w, h), d = img.data;
    r.masks.forEach((m, i) => {
      const [cr, cg, cb] = COLORS[i % COLORS.length];
      forEachPixel(m.segmentation, (x, y) => { const p = y * w + x; top[p] = i; d[p * 4] = cr; d[p * 4 + 1] = cg; d[p * 4 + 2] = cb; d[p * 4 + 3] = ALPHA; });
    });
    lc.putImageData(img, 0, 0);
    state.auto = { masks: r.masks, top, layer };
    busy(false);
    draw();
    status(`${r.masks.length} automatic mask(s) in ${(r.ms / 1000).toFixed(1)} s. Hover a mask for its numbers; Clear removes them.`);
  } catch (e) { fail(e); }
};
canvas.addEventListener('mousemove', e => {
  const tip = $('tip');
  if (!state.auto || drag) { tip.hidden = true; return; }
  const [x, y] = toImage(e).map(Math.floor);
  const i = state.auto.top[y * canvas.width + x];
  if (i === undefined || i < 0) { tip.hidden = true; return; }
  const m = state.auto.masks[i];
  tip.textContent = `mask ${m.id} · ${m.area} px · IoU ${fmt(m.predictedIou)} · stability ${fmt(m.stabilityScore)} · bbox ${m.bbox.map(v => Math.round(v)).join(',')}`;
  tip.style.left = (e.clientX + 14) + 'px'; tip.style.top = (e.clientY + 14) + 'px';
  tip.hidden = false;
});
canvas.addEventListener('mouseleave', () => { $('tip').hidden = true; });

// ---- modes -------------------------------------------------------------------------------------------------------
function showMode(mode) {
  $('image-mode').hidden = mode !== 'image';
  $('video-mode').hidden = mode !== 'video';
  $('tab-image').classList.toggle('sel', mode === 'image');
  $('tab-video').classList.toggle('sel', mode === 'video');
  if (mode === 'image') fitCanvas();
}
$('tab-image').onclick = () => showMode('image');
$('tab-video').onclick = () => showMode('video');

// ---- start --------------------------------------------------------------------------------------------------------
(async () => {
  try {
    const info = state.info = await api('GET', '/api/info');
    $('model').textContent = `${info.model} · ${info.imageSize}px input`;
    $('rootbox').hidden = !info.rootServed;
    $('vrootbox').hidden = !info.rootServed;
  } catch (e) { fail(e); }
  refresh();
})();

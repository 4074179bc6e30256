// TorchSam2 serve: the video page. Prompts per (object, frame); tracking runs on the server and the page polls for
// the frames as they are done, moving the slider with them. Uses api(), rleCounts(), COLORS and ALPHA from app.js.
'use strict';
const vs = { video: null, frame: 0, objects: [], current: null, nextId: 1, masks: new Map(), bitmaps: new Map(), tracking: false, since: 0 };
window.sam.video = vs;
const vcanvas = $('vview'), vctx = vcanvas.getContext('2d');

function vstatus(text, isError = false) { const s = $('vstatus'); s.textContent = text; s.classList.toggle('error', isError); }
const vfail = e => vstatus(e.message || String(e), true);

async function openVideo(opener, label) {
  try {
    vstatus(`opening ${label} …`);
    if (vs.video) { const id = vs.video.id; vs.video = null; await fetch(`/api/videos/${id}`, { method: 'DELETE' }).catch(() => { }); }
    const info = await opener();
    Object.assign(vs, { video: info, frame: 0, objects: [], current: null, nextId: 1, masks: new Map(), bitmaps: new Map(), since: 0 });
    vcanvas.width = info.width; vcanvas.height = info.height;
    const sl = $('vslider');
    sl.max = info.numFrames - 1; sl.value = 0; sl.disabled = false;
    vNewObject();
    await showFrame(0);
    vstatus(`${info.name}: ${info.numFrames} frames, ${info.width}×${info.height}. Click an object, then track.`);
  } catch (e) { vfail(e); }
}
function uploadVideo(file) {
  return fetch('/api/videos?name=' + encodeURIComponent(file.name), { method: 'POST', body: file })
    .then(async r => { if (!r.ok) throw new Error(await errorText(r)); return r.json(); });
}
$('vfile').addEventListener('change', e => { const f = e.target.files[0]; if (f) openVideo(() => uploadVideo(f), f.name); e.target.value = ''; });
$('vrootopen').onclick = () => { const p = $('vrootpath').value.trim(); if (p) openVideo(() => api('POST', '/api/videos/open', { path: p }), p); };
window.addEventListener('pagehide', () => { if (vs.video) fetch(`/api/videos/${vs.video.id}`, { method: 'DELETE', keepalive: true }); });

async function frameBitmap(n) {
  if (vs.bitmaps.has(n)) return vs.bitmaps.get(n);
  const r = await fetch(`/api/videos/${vs.video.id}/frames/${n}`);
  if (!r.ok) throw new Error(await errorText(r));
  const b = await createImageBitmap(await r.blob());
  vs.bitmaps.set(n, b);
  if (vs.bitmaps.size > 64) { const k = vs.bitmaps.keys().next().value; vs.bitmaps.get(k).close(); vs.bitmaps.delete(k); }
  return b;
}
function colorOf(id) { return COLORS[(id - 1) % COLORS.length]; }

// one canvas layer per frame with every object's mask in its colour
function frameLayer(fm) {
  if (fm.layer) return fm.layer;
  const w = vs.video.width, h = vs.video.height;
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const cc = c.getContext('2d'), img = cc.createImageData(w, h), d = img.data;
  for (const o of fm.objects) {
    const [r, g, b] = colorOf(o.id), counts = rleCounts(o.rle.counts);
    let i = 0;
    for (let k = 0; k < counts.length; k++) {
      if (k % 2 === 1) for (let j = i; j < i + counts[k]; j++) { const p = ((j % h) * w + Math.floor(j / h)) * 4; d[p] = r; d[p + 1] = g; d[p + 2] = b; d[p + 3] = ALPHA; }
      i += counts[k];
    }
  }
  cc.putImageData(img, 0, 0);
  return fm.layer = c;
}

let vdrawn = 0;
async function showFrame(n) {
  vs.frame = n;
  $('vslider').value = n;
  $('vframe').textContent = `frame ${n} / ${vs.video.numFrames - 1}`;
  const ticket = ++vdrawn;
  const b = await frameBitmap(n);
  if (ticket !== vdrawn) return; // a later frame was asked for meanwhile
  vdraw(b);
}
function vdraw(b) {
  b = b || vs.bitmaps.get(vs.frame);
  if (!b) return;
  vctx.drawImage(b, 0, 0);
  const fm = vs.masks.get(vs.frame);
  if (fm) vctx.drawImage(frameLayer(fm), 0, 0);
  const r = Math.max(4, Math.round(Math.max(vcanvas.width, vcanvas.height) / 150));
  for (const o of vs.objects) {
    const p = o.prompts.get(vs.frame);
    if (!p) continue;
    if (p.box) { vctx.strokeStyle = `rgb(${o.color})`; vctx.lineWidth = 2; vctx.strokeRect(p.box[0], p.box[1], p.box[2] - p.box[0], p.box[3] - p.box[1]); }
    p.points.forEach((q, i) => { vctx.beginPath(); vctx.arc(q[0], q[1], r, 0, 2 * Math.PI); vctx.fillStyle = p.labels[i] ? '#0c0' : '#e00'; vctx.fill(); });
  }
}
$('vslider').addEventListener('input', e => showFrame(+e.target.value).catch(vfail));

function vNewObject() {
  const id = vs.nextId++;
  const o = { id, color: colorOf(id), prompts: new Map() };
  vs.objects.push(o); vs.current = o;
  vrefresh();
}
function vrefresh() {
  const ul = $('vobjects');
  ul.innerHTML = '';
  for (const o of vs.objects) {
    const li = document.createElement('li');
    li.className = o === vs.current ? 'sel' : '';
    li.innerHTML = `<span class="swatch" style="background:rgb(${o.color})"></span><span>#${o.id}</span><span class="muted">${o.prompts.size} prompted frame(s)</span>`;
    const del = document.createElement('button');
    del.className = 'del'; del.textContent = '×'; del.title = 'remove this object from every frame';
    del.onclick = e => { e.stopPropagation(); vRemove(o); };
    li.appendChild(del);
    li.onclick = () => { vs.current = o; vrefresh(); };
    ul.appendChild(li);
  }
  const has = !!vs.video, prompted = vs.objects.some(o => o.prompts.size);
  $('vnewobj').disabled = !has || vs.tracking;
  $('vfwd').disabled = $('vback').disabled = !prompted || vs.tracking;
  $('vstop').disabled = !vs.tracking;
  $('vexport').disabled = !has || vs.masks.size === 0 || vs.tracking;
}
async function vRemove(o) {
  try {
    if (o.prompts.size) {
      await api('DELETE', `/api/videos/${vs.video.id}/objects/${o.id}`);
      for (const [f, fm] of vs.masks) vs.masks.set(f, { frame: f, objects: fm.objects.filter(x => x.id !== o.id) });
    }
    vs.objects = vs.objects.filter(x => x !== o);
    if (vs.current === o) vs.current = vs.objects[vs.objects.length - 1] || null;
    if (!vs.current) vNewObject();
    vrefresh(); vdraw();
  } catch (e) { vfail(e); }
}

async function vPrompt(o, p) {
  try {
    const fm = await api('POST', `/api/videos/${vs.video.id}/prompt`,
      { frame: vs.frame, objId: o.id, points: p.points.length ? p.points : null, labels: p.points.length ? p.labels : null, box: p.box });
    vs.masks.set(fm.frame, fm);
    const mine = fm.objects.find(x => x.id === o.id);
    vstatus(`object ${o.id} on frame ${fm.frame}: ${mine ? mine.area : 0} px. Track to carry it through the video.`);
    vrefresh(); vdraw();
  } catch (e) { vfail(e); }
}

// clicks and boxes, as on the image page
let vdrag = null;
function vToImage(e) {
  const r = vcanvas.getBoundingClientRect();
  return [Math.min(Math.max((e.clientX - r.left) * vcanvas.width / r.width, 0), vcanvas.width),
          Math.min(Math.max((e.clientY - r.top) * vcanvas.height / r.height, 0), vcanvas.height)];
}
vcanvas.addEventListener('contextmenu', e => e.preventDefault());
vcanvas.addEventListener('mousedown', e => {
  if (!vs.video || vs.tracking) return;
  const [x, y] = vToImage(e);
  vdrag = { x0: x, y0: y, x1: x, y1: y, sx: e.clientX, sy: e.clientY, moved: false, label: e.button === 2 || e.shiftKey ? 0 : 1 };
});
window.addEventListener('mousemove', e => {
  if (!vdrag) return;
  if (Math.hypot(e.clientX - vdrag.sx, e.clientY - vdrag.sy) > 6 && vdrag.label === 1) vdrag.moved = true;
  [vdrag.x1, vdrag.y1] = vToImage(e);
});
window.addEventListener('mouseup', () => {
  if (!vdrag) return;
  const d = vdrag; vdrag = null;
  const o = vs.current || (vNewObject(), vs.current);
  const p = o.prompts.get(vs.frame) || { points: [], labels: [], box: null };
  if (d.moved) p.box = [Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)].map(Math.round);
  else { p.points.push([Math.round(d.x0), Math.round(d.y0)]); p.labels.push(d.label); }
  o.prompts.set(vs.frame, p);
  vPrompt(o, p);
});

// tracking: start, then poll for the frames done since the last poll
async function track(reverse) {
  try {
    await api('POST', `/api/videos/${vs.video.id}/track`, { start: vs.frame, reverse });
    vs.tracking = true; vs.since = 0; vrefresh();
    for (;;) {
      const st = await api('GET', `/api/videos/${vs.video.id}/track?since=${vs.since}`);
      vs.since = st.next;
      for (const fm of st.frames) vs.masks.set(fm.frame, fm);
      if (st.frames.length) await showFrame(st.frames[st.frames.length - 1].frame);
      vstatus(`tracking ${reverse ? 'backwards' : 'forwards'}: ${st.done} / ${st.total} frames`);
      if (!st.running) {
        vs.tracking = false; vrefresh();
        if (st.error) vstatus(st.error, true);
        else vstatus(`tracked ${st.done} frame(s) ${reverse ? 'backwards' : 'forwards'}. Scrub to check; click a frame to correct it and track again.`);
        return;
      }
      await new Promise(r => setTimeout(r, 150));
    }
  } catch (e) { vs.tracking = false; vrefresh(); vfail(e); }
}
$('vfwd').onclick = () => track(false);
$('vback').onclick = () => track(true);
$('vstop').onclick = () => api('POST', `/api/videos/${vs.video.id}/stop`).catch(vfail);
$('vnewobj').onclick = () => vNewObject();
$('vexport').onclick = async () => {
  try {
    const r = await fetch(`/api/videos/${vs.video.id}/export`);
    if (!r.ok) throw new Error(await errorText(r));
    download(vs.video.name.replace(/\/$/, '').split('/').pop().replace(/\.[^.]*$/, '') + '.masks.zip', await r.blob());
  } catch (e) { vfail(e); }
};

// limner studio: the page. Plain JS, no build step. Every user text goes into the page through
// textContent or .value, never innerHTML.
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const MAX_SEED = 2 ** 53 - 1;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

let statusTimer = null;
function status(msg, isError = false) {
  const s = $('#status');
  s.textContent = msg;
  s.className = isError ? 'error show' : 'show';
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { s.className = ''; }, isError ? 6000 : 2500);
}

function curator() { return $('#curator').value.trim(); }

async function api(method, url, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(url, opts);
  const data = await r.json().catch(() => ({}));
  // a near copy of a training image: the curator decides, and the override is recorded
  if (r.status === 409 && data.near_copy && body && !body.allow_near_copy
      && window.confirm(`${data.error}\n\nKeep it anyway? (recorded in its label)`)) {
    return api(method, url, { ...body, allow_near_copy: true });
  }
  if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
  return data;
}

function randomSeed() {
  const a = new Uint32Array(2);
  crypto.getRandomValues(a);
  return (a[0] % 2 ** 21) * 2 ** 32 + a[1];
}

// ---------------------------------------------------------------- Meet
const meet = {
  models: [],
  seed: randomSeed(),
  inflight: null,   // AbortController of the render being fetched
  dirty: false,     // the controls changed while a render was in flight
  shown: null,      // the parameters of the face on screen
  url: null,        // its object URL
};

function params() {
  const model = $('#model').value || 'default';
  const p = { model, seed: meet.seed, psi: +$('#psi').value, noise: +$('#noise').value };
  const m = meet.models.find(m => m.name === model);
  if (m && m.sizes.length > 1) p.size = +$('#size').value;
  return p;
}

async function show() {
  if (meet.inflight) { meet.dirty = true; return; }
  const p = params();
  const ctrl = new AbortController();
  meet.inflight = ctrl;
  const img = $('#face');
  img.dataset.state = 'loading';
  const t0 = performance.now();
  try {
    const r = await fetch('/api/face?' + new URLSearchParams(p), { signal: ctrl.signal });
    if (r.status === 503) {
      status('The studio is busy; trying again…');
      await new Promise(res => setTimeout(res, 1000 * (+r.headers.get('Retry-After') || 1)));
      meet.dirty = true;
    } else if (!r.ok) {
      const e = await r.json().catch(() => ({}));
      status(e.error || `cannot render (${r.status})`, true);
      img.dataset.state = 'error';
    } else {
      const blob = await r.blob();
      const url = URL.createObjectURL(blob);
      await new Promise((res, rej) => { img.onload = res; img.onerror = rej; img.src = url; });
      await img.decode().catch(() => {});
      // a new seed asked for while this face loaded: it is not the face wanted any more
      if (ctrl.signal.aborted) { URL.revokeObjectURL(url); throw new DOMException('superseded', 'AbortError'); }
      // (bench/studio_browser.sh reads this mark: a refresh's time to its face on screen)
      performance.mark('limner:face');
      if (meet.url) URL.revokeObjectURL(meet.url);
      meet.url = url;
      meet.shown = p;
      img.dataset.seed = String(p.seed);
      img.dataset.state = 'loaded';
      $('#seed').textContent = String(p.seed);
      $('#seed-input').placeholder = String(p.seed);
      const ms = performance.now() - t0;
      $('#timing').textContent = `${Math.round(ms)} ms (render ${r.headers.get('X-Limner-Render-Ms') || '?'} ms)`;
    }
  } catch (e) {
    if (e.name !== 'AbortError') { status(String(e.message || e), true); img.dataset.state = 'error'; }
  } finally {
    if (meet.inflight === ctrl) meet.inflight = null;
  }
  if (meet.dirty && !meet.inflight) { meet.dirty = false; show(); }
}

function goSeed(seed) {
  meet.seed = seed;
  if (meet.inflight) { meet.inflight.abort(); meet.inflight = null; }  // the old face is not wanted
  meet.dirty = false;
  show();
}

async function keep() {
  const p = meet.shown;
  if (!p) return;
  const btn = $('#keep');
  btn.disabled = true;
  try {
    const im = await api('POST', '/api/keep', { ...p, curator: curator() });
    btn.dataset.keptId = String(im.id);
    status(`Kept #${im.id}: seed ${p.seed}`);
  } catch (e) {
    status(`Not kept: ${e.message}`, true);
  } finally {
    btn.disabled = false;
  }
}

function fillSizes() {
  const m = meet.models.find(m => m.name === $('#model').value);
  const sel = $('#size');
  sel.replaceChildren();
  if (!m) return;
  for (const s of m.sizes) sel.append(el('option', { value: String(s), text: `${s} px` }));
  sel.value = String(m.default_size);
  $('#size-row').hidden = m.sizes.length < 2;
}

async function initMeet() {
  // the first face is asked for at once (the default model), not after the model list
  show();
  for (const id of ['psi', 'noise']) {
    $('#' + id).addEventListener('input', () => {
      $(`#${id}-out`).textContent = (+$('#' + id).value).toFixed(2);
      show();
    });
  }
  $('#model').addEventListener('change', () => { fillSizes(); show(); });
  $('#size').addEventListener('change', show);
  $('#new').addEventListener('click', () => goSeed(randomSeed()));
  $('#keep').addEventListener('click', keep);
  $('#seed-input').addEventListener('change', e => {
    const v = e.target.value.trim();
    if (!/^\d+$/.test(v) || +v > MAX_SEED) { status(`A seed is a whole number from 0 to ${MAX_SEED}`, true); return; }
    e.target.value = '';
    goSeed(+v);
  });
  $('#meet-form').addEventListener('submit', e => e.preventDefault());
  document.addEventListener('keydown', e => {
    if (currentView() !== 'meet' || e.target.closest('input, textarea, select') || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === 'n' || e.key === ' ') { e.preventDefault(); goSeed(randomSeed()); }
    if (e.key === 'k') { e.preventDefault(); keep(); }
  });
  try {
    const { models, default: def } = await api('GET', '/api/models');
    meet.models = models;
    const sel = $('#model');
    for (const m of models) sel.append(el('option', { value: m.name, text: `${m.name} (${m.resolution} px)` }));
    sel.value = def;
    fillSizes();
    $('#model').dataset.state = 'loaded';
  } catch (e) {
    status(`Cannot list the models: ${e.message}`, true);
  }
}

// ---------------------------------------------------------------- Gallery
function filterQuery() {
  const q = new URLSearchParams({ sort: $('#f-sort').value, rejected: $('#f-rejected').value });
  if ($('#f-rating').value) q.set('min_rating', $('#f-rating').value);
  if ($('#f-fav').checked) q.set('favourite', 'true');
  if ($('#f-tag').value.trim()) q.set('tag', $('#f-tag').value.trim());
  if ($('#f-q').value) q.set('q', $('#f-q').value);
  return q;
}

async function patch(card, change) {
  const id = card.dataset.id;
  try {
    const im = await api('PATCH', `/api/images/${id}`, { ...change, curator: curator() });
    paintCard(card, im);
    card.dataset.saved = String(+(card.dataset.saved || 0) + 1);
    status(`Saved #${id}`);
  } catch (e) {
    status(`Not saved: ${e.message}`, true);
  }
}

function paintCard(card, im) {
  card.dataset.rating = String(im.rating || 0);
  card.classList.toggle('fav', im.favourite);
  card.classList.toggle('rejected', im.rejected);
  card.querySelectorAll('.star').forEach((s, i) => s.setAttribute('aria-pressed', String(i < (im.rating || 0))));
  $('.fav-btn', card).setAttribute('aria-pressed', String(im.favourite));
  $('.rej-btn', card).setAttribute('aria-pressed', String(im.rejected));
  const tags = $('.tags', card);
  if (document.activeElement !== tags) tags.value = im.tags.join(', ');
  const notes = $('.notes', card);
  if (document.activeElement !== notes) notes.value = im.notes;
  $('.notes-text', card).textContent = im.notes;
  const o = (im.recipe || {}).origin || {};
  const when = new Date(im.created_ms).toLocaleString();
  const from = im.parents && im.parents.length ? ` · from ${im.parents.map(p => '#' + p).join(' × ')}` : '';
  const r = im.recipe || {};
  const what = r.limner_art ? `${r.art.kind === 'dream' ? 'DeepDream ' + r.art.layer : 'styled ' + (r.art.preset || 'with a painting')}`
    : o.kind === 'breed' ? 'bred' : o.kind === 'projection' ? `your photo (${o.steps} steps)` : `seed ${o.seed ?? '–'} · psi ${o.psi ?? '–'}`;
  $('.meta', card).textContent = `#${im.id} · ${im.model} · ${what}${from} · by ${im.author} · ${when}`;
}

function card(im) {
  const c = el('article', { class: 'card', dataset: { id: String(im.id) } });
  const stars = el('span', { class: 'stars', role: 'group', 'aria-label': 'rating' });
  for (let i = 1; i <= 5; i++) {
    stars.append(el('button', { type: 'button', class: 'star', title: `${i} star${i > 1 ? 's' : ''}`, 'aria-label': `rate ${i}`,
      onclick: () => patch(c, { rating: +c.dataset.rating === i ? 0 : i }) }, '★'));
  }
  c.append(
    el('img', { src: im.url, alt: `kept face #${im.id}`, loading: 'lazy', width: '256', height: '256' }),
    el('div', { class: 'row' },
      stars,
      el('span', { class: 'spacer' }),
      el('button', { type: 'button', class: 'fav-btn', title: 'favourite', 'aria-label': 'favourite',
        onclick: () => patch(c, { favourite: !c.classList.contains('fav') }) }, '♥'),
      el('button', { type: 'button', class: 'rej-btn', title: 'reject', 'aria-label': 'reject',
        onclick: () => patch(c, { rejected: !c.classList.contains('rejected') }) }, '✕')),
    el('input', { class: 'tags', placeholder: 'tags, comma separated', maxlength: '2200',
      onchange: e => patch(c, { tags: e.target.value.split(',').map(t => t.trim()).filter(Boolean) }) }),
    el('textarea', { class: 'notes', placeholder: 'notes', rows: '3', maxlength: '10000', hidden: '',
      onchange: e => patch(c, { notes: e.target.value }),
      onblur: e => { e.target.hidden = true; $('.notes-text', c).hidden = false; } }),
    el('p', { class: 'notes-text', title: 'click to edit the notes', tabindex: '0',
      onclick: e => { e.currentTarget.hidden = true; const t = $('.notes', c); t.hidden = false; t.focus(); } }),
    el('p', { class: 'meta muted' }),
    el('a', { class: 'recipe muted', href: `/api/images/${im.id}/recipe`, download: `limner-${im.id}.json`,
      title: 'the recipe: `limner render` makes this image again from it', text: 'recipe' }),
    el('a', { class: 'recipe muted', href: `/api/images/${im.id}/export?format=png`, download: `limner-${im.id}.png`,
      title: 'export as PNG, labelled AI-made with its recipe and you as creator', text: 'PNG' }),
    el('a', { class: 'recipe muted', href: `/api/images/${im.id}/export?format=jpeg`, download: `limner-${im.id}.jpg`,
      title: 'export as JPEG, labelled AI-made with its recipe and you as creator', text: 'JPEG' }));
  if (!(im.recipe || {}).limner_art) {
    c.append(el('button', { type: 'button', class: 'animate-btn', title: 'animate its lineage or a slider sweep (GIF/APNG)', text: 'Animate',
      onclick: () => openAnimate(im) }));
  }
  paintCard(c, im);
  return c;
}

let galleryLoad = 0;
async function loadGallery() {
  const n = ++galleryLoad;
  const grid = $('#grid');
  grid.dataset.state = 'loading';
  try {
    const list = await api('GET', '/api/images?' + filterQuery());
    if (n !== galleryLoad) return;
    grid.replaceChildren(...list.map(card));
    $('#gallery-empty').hidden = list.length > 0;
    grid.dataset.state = 'loaded';
  } catch (e) {
    status(`Cannot load the gallery: ${e.message}`, true);
    grid.dataset.state = 'error';
  }
}

function initGallery() {
  let t = null;
  $('#filters').addEventListener('input', () => { clearTimeout(t); t = setTimeout(loadGallery, 200); });
  $('#filters').addEventListener('submit', e => e.preventDefault());
}

// ---------------------------------------------------------------- Breed
const breed = { picked: [], seed: randomSeed() % 1000000, litter: [], busy: false };

function pickButton(im, pressed, onclick) {
  return el('button', { type: 'button', class: 'pick', 'aria-pressed': String(pressed), title: `#${im.id} · ${im.model}`,
    dataset: { id: String(im.id) }, onclick },
    el('img', { src: im.url, alt: `kept face #${im.id}`, loading: 'lazy' }));
}

// kept generator faces (an art step's picture has no latent to breed, slide or animate)
async function keptFaces() {
  return (await keptImages()).filter(im => !(im.recipe || {}).limner_art);
}

async function keptImages() {
  return api('GET', '/api/images?sort=new&rejected=hide&limit=60');
}

async function loadBreed() {
  try {
    const list = await keptFaces();
    const box = $('#breed-parents');
    breed.picked = breed.picked.filter(id => list.some(im => im.id === id));
    box.replaceChildren(...list.map(im => pickButton(im, breed.picked.includes(im.id), e => {
      const b = e.currentTarget;
      const i = breed.picked.indexOf(im.id);
      if (i >= 0) breed.picked.splice(i, 1); else breed.picked.push(im.id);
      b.setAttribute('aria-pressed', String(i < 0));
      breedButtons();
    })));
    $('#breed-empty').hidden = list.length >= 2;
    box.dataset.state = 'loaded';
    breedButtons();
  } catch (e) {
    status(`Cannot load the kept faces: ${e.message}`, true);
  }
}

function breedButtons() {
  const ok = breed.picked.length >= 2 && !breed.busy;
  $('#breed').disabled = !ok;
  $('#reroll').disabled = !ok;
}

async function doBreed() {
  if (breed.picked.length < 2 || breed.busy) return;
  breed.busy = true;
  breedButtons();
  const litter = $('#litter');
  litter.dataset.state = 'loading';
  const body = {
    parents: breed.picked.slice(), seed: breed.seed, children: +$('#children').value, mutation: +$('#mutation').value,
    coarse: +$('#g-coarse').value, middle: +$('#g-middle').value, fine: +$('#g-fine').value,
  };
  try {
    const r = await api('POST', '/api/breed', body);
    breed.litter = r.children;
    const asked = { ...body, seed: r.seed };
    $('#litter-seed').textContent = `seed ${r.seed} · parents ${r.parents.map(p => '#' + p).join(' × ')}`;
    litter.replaceChildren(...r.children.map((c, i) => {
      const card = el('div', { class: 'child', dataset: { index: String(i) } });
      card.append(el('img', { src: c.png, alt: `child ${i + 1}` }),
        el('button', { type: 'button', class: 'keep-child', text: 'Keep', onclick: () => keepChild(card, asked, i) }));
      return card;
    }));
    litter.dataset.state = 'loaded';
  } catch (e) {
    status(`Cannot breed: ${e.message}`, true);
    litter.dataset.state = 'error';
  } finally {
    breed.busy = false;
    breedButtons();
  }
}

// the server breeds child i of the same request again (the litter is seeded) and records its parents
async function keepChild(card, asked, i) {
  const btn = $('button', card);
  btn.disabled = true;
  try {
    const im = await api('POST', '/api/keep', { breed: asked, child: i, curator: curator() });
    card.classList.add('kept');
    card.dataset.keptId = String(im.id);
    btn.textContent = `Kept #${im.id}`;
    status(`Kept #${im.id}`);
    await showLineage(im.id);
    loadBreed();
  } catch (e) {
    btn.disabled = false;
    status(`Not kept: ${e.message}`, true);
  }
}

// the family tree, from the gallery's own record: the child at the bottom, its parents above it,
// theirs above them (nested boxes, up to 4 generations)
async function showLineage(id) {
  const box = $('#lineage');
  const l = await api('GET', `/api/images/${id}/lineage?generations=4`);
  const byId = new Map(l.images.map(im => [im.id, im]));
  const node = (im, gen, path) => {
    const n = el('div', { class: 'node', dataset: { id: String(im.id), generation: String(gen) } });
    const ps = gen + 1 < l.generations ? im.parents.map(p => byId.get(p)).filter(p => p && !path.includes(p.id)) : [];
    if (ps.length) n.append(el('div', { class: 'ps' }, ...ps.map(p => node(p, gen + 1, [...path, p.id]))));
    const label = gen === 0 ? `#${im.id} (child)` : `#${im.id}`;
    n.append(el('figure', { dataset: { id: String(im.id) } }, el('img', { src: im.url, alt: `kept face #${im.id}` }), el('figcaption', { text: label })));
    return n;
  };
  const root = byId.get(l.root);
  const tree = node(root, 0, [root.id]);
  const depth = Math.max(...[...tree.querySelectorAll('.node')].map(n => +n.dataset.generation), 0) + 1;
  const names = ['child', 'parents', 'grandparents', 'great-grandparents'];
  box.replaceChildren(
    el('p', { class: 'muted small legend', text: `Lineage: ${names.slice(0, depth).reverse().join(' → ')}` }),
    tree);
  box.dataset.child = String(root.id);
  box.dataset.parents = root.parents.join(',');
  box.dataset.generations = String(depth);
  box.hidden = false;
  box.scrollIntoView({ block: 'nearest' });
}

function initBreed() {
  for (const id of ['g-coarse', 'g-middle', 'g-fine', 'mutation']) {
    $('#' + id).addEventListener('input', () => { $(`#${id}-out`).textContent = (+$('#' + id).value).toFixed(2); });
    $('#' + id).addEventListener('change', () => { if (breed.litter.length) doBreed(); });
  }
  $('#breed').addEventListener('click', doBreed);
  $('#reroll').addEventListener('click', () => { breed.seed = randomSeed() % 1000000; doBreed(); });
  $('#breed-form').addEventListener('submit', e => e.preventDefault());
}

// ---------------------------------------------------------------- Sliders
const slide = { image: null, sliders: [], inflight: false, dirty: false, shown: null, gen: 0, want: null };

function moves() {
  return [...document.querySelectorAll('#slider-list input')].map(i => ({ slider: i.dataset.slider, value: +i.value })).filter(m => m.value !== 0);
}

// only one request at a time; a drag while it renders asks again with the latest values when it ends
async function slideRender() {
  if (!slide.image) return;
  if (slide.inflight) { slide.dirty = true; return; }
  slide.inflight = true;
  const gen = slide.gen;
  const img = $('#slide-face');
  img.dataset.state = 'loading';
  const t0 = performance.now();
  try {
    const asked = { image: slide.image.id, moves: moves() };
    const r = await api('POST', '/api/slide', asked);
    if (gen === slide.gen) {
      await new Promise((res, rej) => { img.onload = res; img.onerror = rej; img.src = r.png; });
    }
    // another face may have been picked while this image loaded: then it is not the one wanted
    if (gen === slide.gen) {
      slide.shown = asked;
      img.dataset.state = 'loaded';
      img.dataset.renders = String(+(img.dataset.renders || 0) + 1);
      $('#slide-timing').textContent = `${Math.round(performance.now() - t0)} ms (render ${r.render_ms.toFixed(1)} ms)`;
      $('#slide-keep').disabled = moves().length === 0;
    }
  } catch (e) {
    if (/busy/.test(e.message)) { slide.dirty = true; await new Promise(res => setTimeout(res, 500)); }
    else { status(String(e.message || e), true); img.dataset.state = 'error'; }
  } finally {
    slide.inflight = false;
  }
  if (slide.dirty) { slide.dirty = false; slideRender(); }
}

async function pickSlide(im) {
  slide.image = im;
  slide.gen++;
  slide.shown = null;
  $('#slide-face').dataset.state = 'loading';
  $('#slide-keep').disabled = true;
  document.querySelectorAll('#slide-picks .pick').forEach(b => b.setAttribute('aria-pressed', String(b.dataset.id === String(im.id))));
  $('#slide-what').textContent = `#${im.id} · ${im.model}`;
  const list = $('#slider-list');
  list.dataset.state = 'loading';
  try {
    const size = (im.recipe || {}).size;
    const q = new URLSearchParams({ model: im.model });
    if (size) q.set('size', String(size));
    const r = await api('GET', '/api/sliders?' + q);
    slide.sliders = r.sliders;
    const groupOf = s => s.kind === 'named' ? 'named' : s.kind === 'ganspace' ? 'GANSpace · all layers' : `SeFa · ${s.group}`;
    const groups = [];
    for (const s of r.sliders) {
      const g = groupOf(s);
      if (!groups.includes(g)) groups.push(g);
    }
    list.replaceChildren(...groups.flatMap(g => [el('h3', { text: g }), ...r.sliders.filter(s => groupOf(s) === g).map(s => {
      const out = el('output', { text: '0.0' });
      const input = el('input', { type: 'range', min: '-5', max: '5', step: '0.1', value: '0', dataset: { slider: s.id },
        oninput: e => { out.textContent = (+e.target.value).toFixed(1); slideRender(); } });
      return el('label', {}, `${s.kind === 'named' ? s.id + ' (+ ' + s.label + ')' : s.label}`, out, input);
    })]));
    list.dataset.state = 'loaded';
    $('#slide-reset').disabled = false;
  } catch (e) {
    status(`Cannot list the sliders: ${e.message}`, true);
  }
  slideRender();
}

async function loadSliders() {
  try {
    const list = await keptFaces();
    $('#slide-picks').replaceChildren(...list.map(im => pickButton(im, slide.image && slide.image.id === im.id, () => pickSlide(im))));
    $('#slide-empty').hidden = list.length > 0;
    $('#slide-picks').dataset.state = 'loaded';
    const want = slide.want && list.find(im => im.id === slide.want);
    slide.want = null;
    if (want) pickSlide(want);
    else if (!slide.image && list.length) pickSlide(list[0]);
  } catch (e) {
    status(`Cannot load the kept faces: ${e.message}`, true);
  }
}

function initSliders() {
  $('#slide-reset').addEventListener('click', () => {
    document.querySelectorAll('#slider-list input').forEach(i => { i.value = '0'; i.dispatchEvent(new Event('input')); });
  });
  $('#slide-keep').addEventListener('click', async () => {
    if (!slide.shown) return;
    const btn = $('#slide-keep');
    btn.disabled = true;
    try {
      const im = await api('POST', '/api/keep', { slide: slide.shown, curator: curator() });
      btn.dataset.keptId = String(im.id);
      status(`Kept #${im.id}`);
      loadSliders();
    } catch (e) {
      status(`Not kept: ${e.message}`, true);
    } finally {
      btn.disabled = false;
    }
  });
  $('#slide-form').addEventListener('submit', e => e.preventDefault());
}

// ---------------------------------------------------------------- Your photo
const photo = { job: null, timer: null, result: null, models: [], events: null };

function photoState(text, st) {
  const p = $('#photo-state');
  p.textContent = text;
  p.dataset.status = st;
}

function photoButtons() {
  const running = photo.job && ['queued', 'running'].includes(photo.job.status);
  const m = photo.models.find(m => m.name === $('#photo-model').value);
  $('#photo-go').disabled = running || !$('#photo-file').files.length || !(m && m.projectable);
  $('#photo-cancel').disabled = !running;
  $('#photo-keep').disabled = !photo.result || !!$('#photo-keep').dataset.keptId;
}

async function loadPhoto() {
  try {
    const { models, default: def } = await api('GET', '/api/models');
    photo.models = models;
    const sel = $('#photo-model');
    const was = sel.value;
    sel.replaceChildren(...models.map(m => el('option', { value: m.name, text: `${m.name} (${m.resolution} px)${m.projectable ? '' : ': cannot take a photo'}` })));
    sel.value = models.some(m => m.name === was) ? was : def;
    photoModelNote();
  } catch (e) {
    status(`Cannot list the models: ${e.message}`, true);
  }
  photoButtons();
}

function photoModelNote() {
  const m = photo.models.find(m => m.name === $('#photo-model').value);
  const note = $('#photo-model-note');
  note.hidden = !m || m.projectable;
  if (m && !m.projectable) note.textContent = `${m.name} cannot take a photo: pick another model.`;
  photoButtons();
}

async function photoGo() {
  const file = $('#photo-file').files[0];
  if (!file) return;
  clearTimeout(photo.timer);
  if (photo.events) { photo.events.close(); photo.events = null; }
  photo.result = null;
  delete $('#photo-keep').dataset.keptId;
  $('#photo-next').hidden = true;
  $('#photo-after').dataset.state = 'empty';
  delete $('#photo-after').dataset.step;
  $('#photo-before').dataset.state = 'empty';
  photoState('Looking for the face…', 'uploading');
  $('#photo-go').disabled = true;
  const q = new URLSearchParams({ model: $('#photo-model').value, steps: $('#photo-steps').value });
  try {
    const r = await fetch('/api/photos?' + q, { method: 'POST', body: file, headers: { 'Content-Type': 'application/octet-stream' } });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
    photo.job = data;
    await new Promise((res, rej) => { const i = $('#photo-before'); i.onload = res; i.onerror = rej; i.src = data.aligned; });
    $('#photo-before').dataset.state = 'loaded';
    if (data.faces > 1) status(`${data.faces} faces in the photo: projecting the largest`);
    paintJob(data);
    followJob();
  } catch (e) {
    photo.job = null;
    photoState(`Refused: ${e.message}`, 'refused');
    status(e.message, true);
  }
  photoButtons();
}

function paintJob(j) {
  photo.job = j;
  const prog = $('#photo-progress');
  prog.hidden = false;
  prog.max = j.steps;
  prog.value = j.step;
  const d = j.distance == null ? '' : ` · distance ${j.distance.toFixed(4)} (from ${j.start_distance.toFixed(4)})`;
  const t = j.ms_per_step ? ` · ${(j.ms_per_step / 1000).toFixed(2)} s a step` : '';
  const texts = {
    queued: 'Waiting for a render worker…',
    running: `Projecting: step ${j.step} of ${j.steps}${d}${t}`,
    done: `Done: ${j.steps} steps in ${(j.elapsed_ms / 1000).toFixed(1)} s${d}`,
    failed: `Failed: ${j.error}`,
    cancelled: `Cancelled after ${j.step} steps`,
  };
  photoState(texts[j.status] || j.status, j.status);
  const after = $('#photo-after');
  const src = j.result ? j.result.png : j.preview;
  // the result replaces the preview of the same step (the event stream shows both)
  const key = j.result ? `result ${j.id}` : String(j.preview_step);
  if (src && after.dataset.step !== key) {
    after.src = src;
    after.dataset.step = key;
    after.dataset.state = j.result ? 'loaded' : 'preview';
  }
  $('#photo-after-cap').textContent = j.result ? "the model's closest face (keep it to edit it)" : `the model's face at step ${j.preview_step || 0}`;
  if (j.result) photo.result = j.result;
  photoButtons();
}

// The projection's progress: streamed (Server-Sent Events on /api/jobs/ID/events); when the
// stream cannot be opened or breaks, polled (GET /api/jobs/ID) instead.
function followJob() {
  clearTimeout(photo.timer);
  if (photo.events) { photo.events.close(); photo.events = null; }
  if (!photo.job) return;
  if (typeof EventSource !== 'function') return pollJob();
  const id = photo.job.id;
  const es = new EventSource(`/api/jobs/${id}/events`);
  photo.events = es;
  $('#photo-progress').dataset.following = 'events';
  es.addEventListener('progress', ev => {
    if (photo.events !== es) return;
    const j = JSON.parse(ev.data);
    if (!photo.job || photo.job.id !== j.id) { es.close(); return; }
    paintJob(j);
    if (!['queued', 'running'].includes(j.status)) { es.close(); photo.events = null; }
  });
  es.onerror = () => {
    if (photo.events !== es) return;
    es.close();
    photo.events = null;
    if (photo.job && photo.job.id === id && ['queued', 'running'].includes(photo.job.status)) pollJob();
  };
}

async function pollJob() {
  clearTimeout(photo.timer);
  if (!photo.job) return;
  $('#photo-progress').dataset.following = 'polling';
  try {
    const j = await api('GET', `/api/jobs/${photo.job.id}`);
    paintJob(j);
    if (['queued', 'running'].includes(j.status)) photo.timer = setTimeout(pollJob, 400);
  } catch (e) {
    photoState(`Lost the projection: ${e.message}`, 'failed');
    photo.job = null;
    photoButtons();
  }
}

async function photoKeep() {
  if (!photo.result) return;
  const btn = $('#photo-keep');
  btn.disabled = true;
  try {
    const im = await api('POST', '/api/keep', { recipe: photo.result.recipe, curator: curator() });
    btn.dataset.keptId = String(im.id);
    status(`Kept #${im.id}: your photo's face`);
    $('#photo-next').hidden = false;
    $('#photo-to-sliders').onclick = () => { slide.want = im.id; slide.image = null; };
    $('#photo-to-art').onclick = () => { art.want = im.id; };
  } catch (e) {
    status(`Not kept: ${e.message}`, true);
  }
  photoButtons();
}

function initPhoto() {
  $('#photo-file').addEventListener('change', photoButtons);
  $('#photo-model').addEventListener('change', photoModelNote);
  $('#photo-steps').addEventListener('input', () => {
    const n = +$('#photo-steps').value;
    $('#photo-steps-out').textContent = String(n);
    $('#photo-time').textContent = `About 0.13 s a step on two cores for the 64 px default model: ${n} steps take about ${Math.round(n * 0.13)} s. More steps come closer.`;
  });
  $('#photo-go').addEventListener('click', photoGo);
  $('#photo-cancel').addEventListener('click', async () => {
    if (!photo.job) return;
    try { paintJob(await api('DELETE', `/api/jobs/${photo.job.id}`)); if (!photo.events) pollJob(); } catch (e) { status(e.message, true); }
  });
  $('#photo-keep').addEventListener('click', photoKeep);
  $('#photo-form').addEventListener('submit', e => e.preventDefault());
}

// ---------------------------------------------------------------- Art
const art = { image: null, result: null, painting: null, busy: false, want: null };

function artStep() {
  const strength = +$('#art-strength').value;
  if ($('#art-kind').value === 'dream') return { kind: 'dream', layer: $('#art-layer').value, strength, seed: 0 };
  const p = $('#art-preset').value;
  const step = { kind: 'style', strength, keep_colours: $('#art-colours').checked };
  if (p === 'painting') step.painting_sha256 = art.painting; else step.preset = p;
  return step;
}

function artButtons() {
  const needsPainting = $('#art-kind').value === 'style' && $('#art-preset').value === 'painting';
  $('#art-go').disabled = art.busy || !art.image || (needsPainting && !art.painting);
  $('#art-keep').disabled = art.busy || !art.result || !!$('#art-keep').dataset.keptId;
}

function pickArt(im) {
  art.image = im;
  art.result = null;
  delete $('#art-keep').dataset.keptId;
  document.querySelectorAll('#art-picks .pick').forEach(b => b.setAttribute('aria-pressed', String(b.dataset.id === String(im.id))));
  const before = $('#art-before');
  before.onload = () => { before.dataset.state = 'loaded'; };
  before.src = im.url;
  $('#art-before-cap').textContent = `#${im.id} · ${im.model}`;
  $('#art-after').dataset.state = 'empty';
  $('#art-after').removeAttribute('src');
  artButtons();
}

async function loadArt() {
  try {
    const list = await keptImages();
    $('#art-picks').replaceChildren(...list.map(im => pickButton(im, art.image && art.image.id === im.id, () => pickArt(im))));
    $('#art-empty').hidden = list.length > 0;
    $('#art-picks').dataset.state = 'loaded';
    const want = art.want && list.find(im => im.id === art.want);
    art.want = null;
    if (want) pickArt(want);
    else if (!art.image && list.length) pickArt(list[0]);
  } catch (e) {
    status(`Cannot load the kept faces: ${e.message}`, true);
  }
}

async function artGo() {
  if (!art.image || art.busy) return;
  art.busy = true;
  artButtons();
  const after = $('#art-after');
  after.dataset.state = 'loading';
  const t0 = performance.now();
  try {
    const r = await api('POST', '/api/art', { image: art.image.id, art: artStep() });
    await new Promise((res, rej) => { after.onload = res; after.onerror = rej; after.src = r.png; });
    art.result = r;
    delete $('#art-keep').dataset.keptId;
    after.dataset.state = 'loaded';
    after.dataset.token = r.token;
    $('#art-after-cap').textContent = `after · ${r.width} px · ${Math.round(performance.now() - t0)} ms`;
  } catch (e) {
    after.dataset.state = 'error';
    status(`Cannot apply it: ${e.message}`, true);
  } finally {
    art.busy = false;
    artButtons();
  }
}

async function uploadPainting() {
  const f = $('#art-painting').files[0];
  art.painting = null;
  artButtons();
  if (!f) return;
  try {
    const r = await fetch('/api/paintings', { method: 'POST', body: f, headers: { 'Content-Type': 'application/octet-stream' } });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
    art.painting = data.painting;
    status(`Painting ready (${data.width}×${data.height})`);
  } catch (e) {
    status(`Painting refused: ${e.message}`, true);
  }
  artButtons();
}

function initArt() {
  const presets = $('#art-preset');
  for (let i = 0; i < 26; i++) { const n = `style-${String(i).padStart(2, '0')}`; presets.append(el('option', { value: n, text: n })); }
  presets.append(el('option', { value: 'painting', text: 'a painting of yours…' }));
  presets.value = 'style-07';
  const layers = $('#art-layer');
  for (let i = 0; i <= 5; i++) layers.append(el('option', { value: `mixed${i}`, text: `mixed${i}` }));
  layers.value = 'mixed3';
  $('#art-kind').addEventListener('change', () => {
    const dream = $('#art-kind').value === 'dream';
    $('#art-style').hidden = dream;
    $('#art-dream').hidden = !dream;
    artButtons();
  });
  presets.addEventListener('change', () => { $('#art-painting-row').hidden = presets.value !== 'painting'; artButtons(); });
  $('#art-painting').addEventListener('change', uploadPainting);
  $('#art-strength').addEventListener('input', () => { $('#art-strength-out').textContent = (+$('#art-strength').value).toFixed(2); });
  $('#art-go').addEventListener('click', artGo);
  $('#art-keep').addEventListener('click', async () => {
    if (!art.result) return;
    const btn = $('#art-keep');
    btn.disabled = true;
    try {
      const im = await api('POST', '/api/keep', { art: art.result.token, curator: curator() });
      btn.dataset.keptId = String(im.id);
      status(`Kept #${im.id}`);
    } catch (e) {
      status(`Not kept: ${e.message}`, true);
    }
    artButtons();
  });
  $('#art-form').addEventListener('submit', e => e.preventDefault());
}

// ---------------------------------------------------------------- Animate (from the gallery)
const anim = { image: null, url: null, busy: false };

async function openAnimate(im) {
  anim.image = im;
  const panel = $('#animate-panel');
  panel.hidden = false;
  $('#anim-what').textContent = `#${im.id}`;
  const kind = $('#anim-kind');
  kind.querySelector('option[value=lineage]').disabled = !im.parents.length;
  if (!im.parents.length) kind.value = 'sweep';
  animKind();
  $('#anim-out').dataset.state = 'empty';
  $('#anim-download').hidden = true;
  try {
    const q = new URLSearchParams({ model: im.model });
    if ((im.recipe || {}).size) q.set('size', String(im.recipe.size));
    const r = await api('GET', '/api/sliders?' + q);
    const sel = $('#anim-slider');
    sel.replaceChildren(...r.sliders.map(s => el('option', { value: s.id, text: s.kind === 'named' ? `${s.id} (+ ${s.label})` : `${s.kind === 'ganspace' ? 'GANSpace' : 'SeFa ' + s.group} ${s.label}` })));
  } catch (e) {
    status(`Cannot list the sliders: ${e.message}`, true);
  }
  panel.scrollIntoView({ block: 'nearest' });
}

function animKind() {
  const sweep = $('#anim-kind').value === 'sweep';
  $('#anim-slider-row').hidden = !sweep;
  $('#anim-range-row').hidden = !sweep;
}

async function animGo() {
  if (!anim.image || anim.busy) return;
  anim.busy = true;
  $('#anim-go').disabled = true;
  const out = $('#anim-out');
  out.dataset.state = 'loading';
  const format = $('#anim-format').value;
  const body = { frames: +$('#anim-frames').value, fps: +$('#anim-fps').value, loop: $('#anim-loop').checked, format };
  if ($('#anim-kind').value === 'sweep') body.sweep = { image: anim.image.id, slider: $('#anim-slider').value, from: +$('#anim-from').value, to: +$('#anim-to').value };
  else body.lineage = anim.image.id;
  try {
    const r = await fetch('/api/animate', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) { const e = await r.json().catch(() => ({})); throw new Error(e.error || `${r.status} ${r.statusText}`); }
    const blob = await r.blob();
    if (anim.url) URL.revokeObjectURL(anim.url);
    anim.url = URL.createObjectURL(blob);
    await new Promise((res, rej) => { out.onload = res; out.onerror = rej; out.src = anim.url; });
    out.dataset.state = 'loaded';
    out.dataset.frames = r.headers.get('X-Limner-Frames') || '';
    out.dataset.bytes = String(blob.size);
    const dl = $('#anim-download');
    dl.href = anim.url;
    dl.download = `limner-${anim.image.id}.${format === 'apng' ? 'png' : 'gif'}`;
    dl.hidden = false;
  } catch (e) {
    out.dataset.state = 'error';
    status(`Cannot animate: ${e.message}`, true);
  } finally {
    anim.busy = false;
    $('#anim-go').disabled = false;
  }
}

function initAnimate() {
  $('#anim-kind').addEventListener('change', animKind);
  $('#anim-go').addEventListener('click', animGo);
  $('#anim-close').addEventListener('click', () => { $('#animate-panel').hidden = true; });
  $('#anim-form').addEventListener('submit', e => e.preventDefault());
}

// ---------------------------------------------------------------- views
const VIEWS = ['meet', 'breed', 'sliders', 'photo', 'art', 'gallery'];
function currentView() { const v = location.hash.slice(1); return VIEWS.includes(v) ? v : 'meet'; }

function route() {
  const v = currentView();
  for (const name of VIEWS) {
    $(`#view-${name}`).hidden = name !== v;
    $(`#tab-${name}`).classList.toggle('active', name === v);
  }
  if (v === 'gallery') loadGallery();
  if (v === 'breed') loadBreed();
  if (v === 'sliders') loadSliders();
  if (v === 'photo') loadPhoto();
  if (v === 'art') loadArt();
  document.body.dataset.view = v;
}

function init() {
  const cur = $('#curator');
  cur.value = localStorage.getItem('limner.curator') || '';
  cur.addEventListener('change', () => localStorage.setItem('limner.curator', cur.value.trim()));
  initMeet();
  initGallery();
  initBreed();
  initSliders();
  initPhoto();
  initArt();
  initAnimate();
  window.addEventListener('hashchange', route);
  route();
  document.body.dataset.ready = 'true';
}

init();

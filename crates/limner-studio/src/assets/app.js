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
  try {
    const { models, default: def } = await api('GET', '/api/models');
    meet.models = models;
    const sel = $('#model');
    for (const m of models) sel.append(el('option', { value: m.name, text: `${m.name} (${m.resolution} px)` }));
    sel.value = def;
    fillSizes();
  } catch (e) {
    status(`Cannot list the models: ${e.message}`, true);
  }
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
  show();
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
  const what = o.kind === 'breed' ? 'bred' : `seed ${o.seed ?? '–'} · psi ${o.psi ?? '–'}`;
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

async function keptFaces() {
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

// parents → child, from the gallery's own record
async function showLineage(id) {
  const box = $('#lineage');
  const child = await api('GET', `/api/images/${id}`);
  const parents = await Promise.all(child.parents.map(p => api('GET', `/api/images/${p}`).catch(() => null)));
  const fig = (im, label) => el('figure', { dataset: { id: String(im.id) } }, el('img', { src: im.url, alt: label }), el('figcaption', { text: label }));
  box.replaceChildren(
    el('div', { class: 'ps' }, ...parents.filter(Boolean).map(p => fig(p, `#${p.id}`))),
    el('span', { class: 'arrow', 'aria-hidden': 'true', text: '→' }),
    fig(child, `#${child.id} (child)`));
  box.dataset.child = String(child.id);
  box.dataset.parents = child.parents.join(',');
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
const slide = { image: null, sliders: [], inflight: false, dirty: false, shown: null, gen: 0 };

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
    const groups = [];
    for (const s of r.sliders) {
      const g = s.kind === 'named' ? 'named' : `unlabelled · ${s.group}`;
      if (!groups.includes(g)) groups.push(g);
    }
    list.replaceChildren(...groups.flatMap(g => [el('h3', { text: g }), ...r.sliders.filter(s => (s.kind === 'named' ? 'named' : `unlabelled · ${s.group}`) === g).map(s => {
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
    if (!slide.image && list.length) pickSlide(list[0]);
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

// ---------------------------------------------------------------- views
const VIEWS = ['meet', 'breed', 'sliders', 'gallery'];
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
  window.addEventListener('hashchange', route);
  route();
  document.body.dataset.ready = 'true';
}

init();

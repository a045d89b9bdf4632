/* Endcap signage page: plays the display's loop, shows offers pushed by SSE, acknowledges what it shows.
 *
 * Invariants
 * - Never blank: #loop starts with the server-rendered fallback; a creative that is missing or fails to
 *   load plays the fallback in its place; with no stream the loop plays on (from the service worker's
 *   cache when the server is down, even across a reload).
 * - Offer text only ever goes through textContent; images only from this origin's creatives.
 * - The loop timing mirrors playlist.py `due` (segments between window edges; items in config order);
 *   window.Endcap.dueAt exposes it so the tests can compare the two.
 * - State for tests and diagnostics is on <html>: data-state (boot|loop|offer), data-item, data-offer,
 *   data-stream (none|connecting|live|offline), data-offline (none|ready|partial|unavailable), and an
 *   `endcap:<what>` event on document for each change.
 */
(() => {
  'use strict';
  const cfg = JSON.parse(document.getElementById('endcap-config').textContent);
  const sched = cfg.schedule;
  const root = document.documentElement;
  const loopEl = document.getElementById('loop');
  const offerEl = document.getElementById('offer');
  const $o = sel => offerEl.querySelector(sel);
  const fallbackNode = loopEl.firstElementChild;
  const ready = new Map();  // url -> decoded node, or false when it cannot be loaded
  const loading = new Map();  // url -> promise
  const assets = new Set();  // same-origin URLs the page needs offline
  const money = new Intl.NumberFormat(cfg.locale, {style: 'currency', currency: cfg.currency});

  const emit = (what, detail) => document.dispatchEvent(new CustomEvent('endcap:' + what, {detail}));
  const set = (key, value) => { if (root.dataset[key] !== value) { root.dataset[key] = value; emit(key, value); } };

  // --- the schedule (mirror of playlist.py) ----------------------------------------------------------
  function localTime(ms) {
    const d = new Date(ms);
    return [(d.getDay() + 6) % 7, d.getHours() * 3600 + d.getMinutes() * 60 + d.getSeconds() + d.getMilliseconds() / 1000];
  }
  function contains(w, weekday, sec) {
    if (w.days.length && !w.days.includes(weekday)) return false;
    return w.start < w.end ? (w.start <= sec && sec < w.end) : (sec >= w.start || sec < w.end);
  }
  function due(weekday, sec) {
    let seg = 0, next = 86400, part = null;
    for (const b of sched.boundaries) { if (b <= sec && b > seg) seg = b; if (b > sec && b < next) next = b; }
    for (const p of sched.dayparts) if (contains(p, weekday, sec)) { part = p.name; break; }
    const items = sched.items.filter(i => contains(i, weekday, sec) && (!i.dayparts.length || i.dayparts.includes(part)));
    if (!items.length) return {item: sched.fallback, part, since: seg, until: next, fallback: true};
    let cycle = 0;
    for (const i of items) cycle += i.duration_s;
    const phase = (sec - seg) % cycle;
    let acc = 0;
    for (const i of items) {
      if (phase < acc + i.duration_s) {
        const since = sec - (phase - acc);
        return {item: i, part, since, until: Math.min(since + i.duration_s, next), fallback: false};
      }
      acc += i.duration_s;
    }
    const last = items[items.length - 1];
    return {item: last, part, since: sec, until: Math.min(sec + last.duration_s, next), fallback: false};
  }

  // --- creatives: loaded and decoded before they are shown -------------------------------------------
  const DROP = 'script,iframe,frame,object,embed,link,meta,base,form,style,template';
  function sameOrigin(raw, base) {
    try { const u = new URL(raw, new URL(base, location.href)); return u.origin === location.origin ? u.pathname : null; }
    catch (e) { return null; }
  }
  async function loadHtml(url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(url + ': ' + res.status);
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    doc.body.querySelectorAll(DROP).forEach(n => n.remove());
    const decodes = [];
    for (const el of doc.body.querySelectorAll('*')) {
      for (const a of [...el.attributes]) {
        const name = a.name.toLowerCase();
        if (name.startsWith('on') || name === 'style' || name === 'srcset') el.removeAttribute(a.name);
        else if (name === 'href') el.removeAttribute(a.name);
      }
      if (el.localName === 'img' && el.hasAttribute('src')) {
        const src = sameOrigin(el.getAttribute('src'), url);
        if (src) { el.setAttribute('src', src); assets.add(src); decodes.push(decodeImage(src)); }
        else el.removeAttribute('src');
      }
    }
    await Promise.all(decodes);
    const box = document.createElement('div');
    box.className = 'creative html';
    box.append(...[...doc.body.childNodes].map(n => document.importNode(n, true)));
    return box;
  }
  function decodeImage(url) {
    const img = new Image();
    img.src = url;
    return img.decode().then(() => img);
  }
  function preload(url, kind) {
    if (!loading.has(url)) {
      const p = (kind === 'html' ? loadHtml(url) : decodeImage(url).then(img => { img.className = 'creative image'; return img; }))
        .then(node => { ready.set(url, node); assets.add(url); return node; },
              err => { ready.set(url, false); console.warn('endcap: creative unavailable', url, String(err)); return null; });
      loading.set(url, p);
    }
    return loading.get(url);
  }

  // --- what is on screen, and the proof of it ----------------------------------------------------------
  const session = (self.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);
  // Unacknowledged records survive an outage, a reload and a browser restart (the profile is on /data).
  const store = 'endcap-proof-' + cfg.display;
  const queue = [];
  const persist = () => { try { localStorage.setItem(store, JSON.stringify(queue)); } catch (e) { /* full: keep in memory */ } };
  try { if (cfg.ack) queue.push(...JSON.parse(localStorage.getItem(store) || '[]')); } catch (e) { /* garbled: start afresh */ }
  let nrec = 0, showing = null, acking = false, ackAgain = false, ackTimer = null;

  function close(now) {
    if (!showing) return;
    queue.push({rid: session + '-' + (++nrec), type: showing.type, item: showing.item, offer_id: showing.offer_id,
                from: showing.since, to: Math.max(now, showing.since)});
    if (queue.length > 1000) queue.splice(0, queue.length - 1000);  // a long outage: keep the newest
    showing = null;
    persist();
  }
  function begin(what) {
    const now = Date.now();
    close(now);
    showing = {type: what.type, item: what.item, offer_id: what.offer_id || null, since: now};
    ack();
  }
  addEventListener('pagehide', () => {  // reload, navigation, browser stop: what was on screen until now
    if (!cfg.ack || !showing) return;
    close(Date.now());
    fetch(cfg.ack, {method: 'POST', keepalive: true, headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({showing: null, played: queue.slice(-100)})}).catch(() => null);
  });
  async function ack() {
    if (!cfg.ack) return;
    if (acking) { ackAgain = true; return; }
    clearTimeout(ackTimer);
    acking = true;
    const batch = queue.slice(0, 200);
    try {
      const res = await fetch(cfg.ack, {method: 'POST', cache: 'no-store', headers: {'Content-Type': 'application/json'},
                                        body: JSON.stringify({showing, played: batch})});
      if (res.ok || res.status === 400) {  // 400: never accepted; do not resend forever
        const sent = new Set(batch.map(r => r.rid));
        const left = queue.filter(r => !sent.has(r.rid));
        queue.splice(0, queue.length, ...left);
        persist();
      }
      if (res.ok) emit('acked', batch.length);
    } catch (e) { /* server down: keep the records, try again on the next beat */ }
    acking = false;
    ackTimer = setTimeout(ack, cfg.heartbeat_ms);
    if (ackAgain) { ackAgain = false; ack(); }
  }

  // --- the loop ----------------------------------------------------------------------------------------
  let loopTimer = null, loopKey = null, offerTimer = null;
  function tick() {
    clearTimeout(loopTimer);
    const [weekday, sec] = localTime(Date.now());
    const d = due(weekday, sec);
    if (root.dataset.state !== 'offer') showLoop(d);
    loopTimer = setTimeout(tick, Math.max(20, Math.min((d.until - sec) * 1000, 1000)));
  }
  function showLoop(d) {
    const key = d.item.id + '@' + d.since;
    if (key === loopKey && root.dataset.state === 'loop') return;
    loopKey = key;
    let node = d.fallback || d.item.missing ? null : ready.get(d.item.url);
    if (node === undefined && !d.fallback && !d.item.missing) preload(d.item.url, d.item.kind);
    const type = node ? 'loop' : 'fallback';
    loopEl.replaceChildren(node || fallbackNode);
    root.dataset.item = d.item.id;
    set('state', 'loop');
    emit('item', {id: d.item.id, type});
    begin({type, item: d.item.id});
  }

  // --- offers: interrupts with a TTL -------------------------------------------------------------------
  const fallbackImage = '/display/static/builtin/endcap.svg';
  function valid(o) {
    return o && typeof o.id === 'string' && typeof o.title === 'string' && typeof o.body === 'string' &&
      Number.isFinite(o.ttl_ms) && o.ttl_ms > 0 && (o.image === null || (typeof o.image === 'string' && o.image.startsWith('/display/creatives/')));
  }
  function imageFor(o) {
    const want = o.image && !o.image_missing ? o.image : fallbackImage;
    const node = ready.get(want);
    if (node) return [node, want === fallbackImage ? 'fallback' : 'creative'];
    if (node === undefined && want !== fallbackImage) {  // new since the page loaded: show it once decoded
      preload(want, 'image').then(img => { if (img && root.dataset.offer === o.id) setImage(img, 'creative'); });
    }
    return [ready.get(fallbackImage) || null, 'fallback'];
  }
  function setImage(img, kind) {
    const media = $o('.offer-media');
    if (img) media.replaceChildren(img); else media.replaceChildren();
    media.dataset.image = kind;
  }
  function showOffer(o) {
    $o('.offer-title').textContent = o.title;
    $o('.offer-body').textContent = o.body;
    $o('.offer-amount').textContent = Number.isFinite(o.price) ? money.format(o.price) : '';
    $o('.offer-discount').textContent = Number.isFinite(o.discount_pct) && o.discount_pct > 0 ? '−' + Math.round(o.discount_pct) + '%' : '';
    setImage(...imageFor(o));
    offerEl.hidden = false;
    offerEl.dataset.offerId = o.id;
    if (o.test === true) offerEl.dataset.test = '1'; else delete offerEl.dataset.test;  // maintenance test card
    root.dataset.offer = o.id;
    set('state', 'offer');
    emit('offer', o.id);
    clearTimeout(offerTimer);
    offerTimer = setTimeout(endOffer, o.ttl_ms);
    begin({type: 'offer', item: o.sku, offer_id: o.id});
  }
  function endOffer() {
    clearTimeout(offerTimer);
    if (root.dataset.state !== 'offer') return;
    offerEl.hidden = true;
    delete offerEl.dataset.offerId;
    delete root.dataset.offer;
    loopKey = null;
    set('state', 'loop');
    tick();
  }

  // --- the stream: reconnect with backoff; without it, the loop -----------------------------------------
  let es = null, lastId = null, attempt = 0, silence = null;
  function connect() {
    set('stream', 'connecting');
    es = new EventSource(cfg.events + (lastId ? '?last_id=' + encodeURIComponent(lastId) : ''));
    heard();  // also bounds a connection attempt that never answers
    es.onopen = () => {
      attempt = 0;
      set('stream', 'live');
      heard();
      for (const [url, node] of ready) if (node === false) { ready.delete(url); loading.delete(url); }  // retry them
    };
    es.addEventListener('ping', heard);
    es.addEventListener('offer', e => {
      heard();
      if (e.lastEventId) lastId = e.lastEventId;
      let o = null;
      try { o = JSON.parse(e.data); } catch (err) { return; }
      if (valid(o)) showOffer(o);
    });
    es.onerror = lost;
  }
  function heard() {
    clearTimeout(silence);
    silence = setTimeout(lost, cfg.ping_ms * 2.5);  // a hung server sends nothing, not even an error
  }
  function lost() {
    clearTimeout(silence);
    if (es) { es.close(); es = null; } else if (root.dataset.stream === 'offline') return;
    set('stream', 'offline');
    endOffer();  // no live offer without a live stream: stock or relevance may have changed
    const base = Math.min(cfg.reconnect_max_ms, 250 * 2 ** Math.min(attempt++, 16));
    setTimeout(connect, base / 2 + Math.random() * base / 2);
  }

  // --- offline: the service worker keeps the shell, this page and its creatives ---------------------------
  function registerWorker() {
    if (!('serviceWorker' in navigator) || !cfg.sw) { set('offline', 'unavailable'); return; }
    navigator.serviceWorker.register(cfg.sw, {scope: '/display/'})
      .then(() => navigator.serviceWorker.ready)
      .then(reg => {
        const urls = [...cfg.shell, ...assets];
        if (cfg.cache_self) urls.push(location.pathname);
        const ch = new MessageChannel();
        ch.port1.onmessage = e => set('offline', e.data && e.data.ok ? 'ready' : 'partial');
        reg.active.postMessage({cache: urls}, [ch.port2]);
      })
      .catch(err => { console.warn('endcap: no service worker', String(err)); set('offline', 'unavailable'); });
  }

  window.Endcap = Object.freeze({
    dueAt(ms) {
      const [weekday, sec] = localTime(ms);
      const d = due(weekday, sec);
      return {id: d.item.id, daypart: d.part, since: d.since, until: d.until, fallback: d.fallback};
    },
  });

  async function start() {
    const wanted = sched.items.filter(i => !i.missing).map(i => preload(i.url, i.kind));
    wanted.push(preload(fallbackImage, 'image'));
    for (const url of cfg.offer_images) wanted.push(preload(url, 'image'));
    await Promise.race([Promise.all(wanted), new Promise(r => setTimeout(r, 5000))]);  // meanwhile: the fallback
    tick();
    if (cfg.events) connect();
    registerWorker();
  }
  start();
})();

/* Endcap signage service worker, scope /display/: keeps a screen playing when the page server is down.
 *
 * Policy: network first for everything under /display/ (so a changed page or creative shows up as soon
 * as the server answers), the cache when the network fails, hangs past NETWORK_TIMEOUT_MS or answers 5xx.
 * Every successful GET is cached; the page also asks for its own URL and creatives to be cached right
 * after its first load (before this worker controlled it). A navigation with nothing cached gets the
 * built-in fallback page. The event stream and acknowledgements always go to the network untouched.
 */
'use strict';
const CACHE = 'endcap-signage-v1';
const NETWORK_TIMEOUT_MS = 2500;
const SHELL = ['/display/static/page.js', '/display/static/page.css', '/display/static/builtin/fallback.html',
               '/display/static/builtin/endcap.svg', '/display/fallback'];

self.addEventListener('install', e => {
  e.waitUntil(caches.open(CACHE)
    .then(c => Promise.all(SHELL.map(u => c.add(u).catch(() => null))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', e => {
  e.waitUntil(caches.keys()
    .then(keys => Promise.all(keys.filter(k => k.startsWith('endcap-signage-') && k !== CACHE).map(k => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('message', e => {
  const port = e.ports && e.ports[0];
  const urls = e.data && Array.isArray(e.data.cache) ? e.data.cache.filter(u => typeof u === 'string' && u.startsWith('/display/')) : [];
  e.waitUntil(caches.open(CACHE)
    .then(c => Promise.all(urls.map(u => c.add(u).then(() => true, () => c.match(u).then(hit => !!hit)))))
    .then(done => { if (port) port.postMessage({ok: done.every(Boolean), cached: done.filter(Boolean).length, asked: urls.length}); }));
});

self.addEventListener('fetch', e => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith('/display/')) return;
  if (/\/(events|ack)$/.test(url.pathname)) return;
  e.respondWith(networkFirst(req, e));
});

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    promise.then(v => { clearTimeout(t); resolve(v); }, err => { clearTimeout(t); reject(err); });
  });
}

async function networkFirst(req, event) {
  const cache = await caches.open(CACHE);
  try {
    const res = await withTimeout(fetch(req), NETWORK_TIMEOUT_MS);
    if (res.ok) {
      event.waitUntil(cache.put(req, res.clone()).catch(() => null));
      return res;
    }
    if (res.status < 500) return res;  // a real answer (404: unknown display or creative)
  } catch (err) { /* down or hung: the cache answers */ }
  const hit = await cache.match(req, {ignoreSearch: true});
  if (hit) return hit;
  if (req.mode === 'navigate') {
    const fallback = await cache.match('/display/fallback');
    if (fallback) return fallback;
  }
  return Response.error();
}

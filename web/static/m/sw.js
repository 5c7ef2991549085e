// sw.js: the phone app's service worker (scope /m/). It keeps the app shell — the page, its
// assets and the shared ub.js/ub.css — so the app opens without a network. The shell is
// fetched from the network first (the pages are no-cache: a new binary's code is used at
// once) and from the cache when that fails. The API and websockets are never touched: their
// data is the page's business (its queue in IndexedDB), not the cache's.
'use strict';
const CACHE = 'urbanbrain-m-v1';
const SHELL = ['/m/', '/m/m.js', '/m/m.css', '/m/manifest.webmanifest', '/m/icon.svg',
  '/m/icon-192.png', '/m/icon-512.png', '/common/ub.js', '/common/ub.css'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('urbanbrain-m-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  // Every page of the app is the one shell (/m/?x, /m/#y).
  const shell = req.mode === 'navigate' && url.pathname === '/m/' ? '/m/' : SHELL.includes(url.pathname) ? url.pathname : null;
  if (!shell) return;
  e.respondWith(fetch(req).then((resp) => {
    if (resp.ok && !resp.redirected) {
      const copy = resp.clone();
      caches.open(CACHE).then((c) => c.put(shell, copy));
    }
    return resp;
  }).catch(() => caches.match(shell).then((hit) => hit || Response.error())));
});

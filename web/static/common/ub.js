// ub.js: what every page shares. Loaded first by each page (<script src="/common/ub.js">), it
// defines window.UB. Text only ever reaches the page as text nodes (UB.el): no innerHTML of
// anything that came from the API, so hostile ticket text renders inert.
(() => {
  'use strict';

  // Chinese names of the API's vocabulary.
  const SEVERITY = {
    red: { name: '红色', rank: 0 }, orange: { name: '橙色', rank: 1 },
    yellow: { name: '黄色', rank: 2 }, blue: { name: '蓝色', rank: 3 },
  };
  const STATUS = {
    new: '立案', dispatched: '派遣', accepted: '签收', in_progress: '处置中', resolved: '已处置',
    verified: '已核查', closed: '结案', returned: '退单', cancelled: '误报', merged: '已并单',
  };
  const ACTION = {
    open: '立案', link: '一事多报', signal: '新信号', dispatch: '派遣', reassign: '改派', accept: '签收',
    start: '开始处置', progress: '处置进展', resolve: '处置反馈', return: '退单',
    request_extension: '延期申请', approve_extension: '同意延期', refuse_extension: '不同意延期',
    verify: '核查通过', reopen: '重办', close: '结案', cancel: '误报', escalate: '督办',
    callback: '回访', merge: '并单', split: '拆单', sla: '时限', sla_warning: '时限预警', sla_breach: '超时',
  };

  // el builds an element: attrs are set as properties or attributes (never "on…" handlers or
  // "style" strings), children are nodes or strings (as text), null and false are skipped.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') || k === 'style' || k === 'innerHTML') throw new Error('UB.el: ' + k + ' is not allowed');
      if (k === 'class') e.className = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k in e && typeof v !== 'string') e[k] = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    append(e, children);
    return e;
  }
  function append(e, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // The signed-in account (GET /api/v1/session), with the CSRF token the session's commands
  // carry. Without a session the page goes to sign-in and comes back here.
  let session = null;
  function toLogin() {
    location.replace('/login/?next=' + encodeURIComponent(location.pathname + location.search + location.hash));
    return new Promise(() => {}); // the page is leaving
  }
  async function me() {
    if (session) return session;
    const r = await fetch('/api/v1/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (r.status === 401) return toLogin();
    if (!r.ok) throw new Error('会话查询失败：' + r.status);
    session = await r.json();
    if (session.csrf) sessionStorage.setItem('urbanbrain.csrf', session.csrf);
    return session;
  }
  const can = (perm) => !!(session && (session.permissions || []).includes(perm));

  // api calls the HTTP API on the session: JSON in, {ok, status, code, error, body} out. It
  // never throws for an HTTP error (the caller shows error in place); a network failure gives
  // status 0 and offline true. A 401 (session ended) goes to sign-in.
  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    const csrf = (session && session.csrf) || sessionStorage.getItem('urbanbrain.csrf') || '';
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
    let payload;
    if (body instanceof Blob || body instanceof FormData) payload = body;
    else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    if (opts.contentType) headers['Content-Type'] = opts.contentType;
    let r;
    try {
      r = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', signal: opts.signal });
    } catch (err) {
      return { ok: false, status: 0, offline: true, code: 'offline', error: '无法连接服务器' };
    }
    if (r.status === 401 && !opts.no401) return toLogin();
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    const out = { ok: r.ok, status: r.status, body: data };
    if (!r.ok) {
      out.code = (data && data.code) || String(r.status);
      out.error = (data && data.error) || r.statusText || ('HTTP ' + r.status);
    }
    return out;
  }

  // socket opens a websocket of this server on the session cookie and keeps it open: it
  // reconnects with backoff, calling onOpen(ws) each time (to subscribe) and onFrame(obj) per
  // message; onState('live'|'wait'|'down') reports the connection.
  function socket(path, { onOpen, onFrame, onState }) {
    let ws = null, delay = 500, closed = false;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
    function connect() {
      if (closed || (ws && ws.readyState <= 1)) return; // one socket at a time (see reconnect)
      onState && onState('wait');
      ws = new WebSocket(url);
      ws.onopen = () => { delay = 500; onState && onState('live'); onOpen && onOpen(ws); };
      ws.onmessage = (m) => { let f; try { f = JSON.parse(m.data); } catch (_) { return; } onFrame(f); };
      ws.onclose = () => {
        onState && onState('down');
        if (!closed) setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
    return { send: (o) => ws && ws.readyState === 1 && ws.send(JSON.stringify(o)), close: () => { closed = true; ws && ws.close(); },
      // reconnect tries again at once (the network is back) unless a socket is open or opening.
      reconnect: () => { delay = 500; connect(); } };
  }

  // commandId is a fresh idempotency key for one action (the API namespaces it by sender).
  const commandId = () => (crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2));

  const pad = (n) => String(n).padStart(2, '0');
  function time(t) {
    if (!t) return '';
    const d = new Date(t);
    if (isNaN(d)) return '';
    return `${d.getMonth() + 1}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  // duration says a number of seconds as 时/分 (negative: overdue).
  function duration(sec) {
    const neg = sec < 0; sec = Math.abs(Math.round(sec));
    const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    const t = h ? `${h}小时${m}分` : m ? `${m}分${pad(s)}秒` : `${s}秒`;
    return neg ? '超时' + t : t;
  }

  // toast shows a short message in the page's live region (role=status), for screen readers too.
  function toast(text, kind = 'info') {
    let box = document.getElementById('ub-toasts');
    if (!box) {
      box = el('div', { id: 'ub-toasts', class: 'ub-toasts', role: 'status', 'aria-live': 'polite' });
      document.body.append(box);
    }
    const t = el('div', { class: 'ub-toast ub-toast-' + kind }, text);
    box.append(t);
    setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
  }

  async function signOut() {
    await api('DELETE', '/api/v1/session', undefined, { no401: true });
    sessionStorage.removeItem('urbanbrain.csrf');
    location.replace('/login/');
  }

  window.UB = { SEVERITY, STATUS, ACTION, el, append, me, can, api, socket, commandId, time, duration, toast, signOut,
    severityName: (s) => (SEVERITY[s] || { name: s || '' }).name,
    statusName: (s) => STATUS[s] || s || '',
    actionName: (a) => ACTION[a] || a || '' };
})();

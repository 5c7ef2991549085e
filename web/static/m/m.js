// m.js: the grid worker's phone app (/m/). The worker's tasks come live from /ws/worker
// (GET /api/v1/me/tasks while the socket is down); every action goes into a queue kept in
// IndexedDB, with its command id and its photos as Blobs, and is sent in order when the
// network allows: each exactly once (a resend carries the same command id, which the API
// answers with the first outcome), a 4xx answer final and shown, a network failure kept for
// later. Text reaches the page only as text nodes (UB.el), so hostile ticket text is inert.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const { el } = UB;

  const STAGE = { sign_for: '签收', handle: '处置', verify: '核查' };
  const PHOTO_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
  const MAX_PHOTO = 8 << 20;
  // What a queued action does to the status, so the card offers the next step at once.
  const NEXT = { accept: 'accepted', start: 'in_progress', resolve: 'resolved', return: 'returned' };
  // The actions a worker may take from each status, in the order of their buttons.
  const OFFER = {
    dispatched: ['accept', 'return', 'progress'],
    accepted: ['start', 'progress', 'request_extension', 'return'],
    in_progress: ['resolve', 'progress', 'request_extension'],
  };
  const NEEDS_FORM = { return: true, progress: true, request_extension: true, resolve: true };
  const QSTATE = { pending: '待发送', sent: '已发送', failed: '失败' };
  // The API's error codes (docs/api.md, "Errors") in the worker's words; the API's own text follows.
  const CODE = {
    illegal_transition: '事件当前状态不允许此操作', forbidden: '无权对该事件操作', not_found: '事件不存在或已不归您处理',
    invalid_command: '缺少必要信息或条件不满足', invalid_request: '请求有误',
  };

  // ---- IndexedDB: the queue (items with their photo Blobs) and a few cached values ----
  const db = (() => {
    let opening = null;
    const open = () => opening || (opening = new Promise((resolve, reject) => {
      const r = indexedDB.open('urbanbrain-m', 1);
      r.onupgradeneeded = () => {
        r.result.createObjectStore('queue', { keyPath: 'seq', autoIncrement: true });
        r.result.createObjectStore('kv');
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    }));
    async function run(store, mode, fn) {
      const d = await open();
      return new Promise((resolve, reject) => {
        const t = d.transaction(store, mode);
        const req = fn(t.objectStore(store));
        t.oncomplete = () => resolve(req ? req.result : undefined);
        t.onerror = t.onabort = () => reject(t.error);
      });
    }
    return {
      items: () => run('queue', 'readonly', (s) => s.getAll()),
      add: (it) => run('queue', 'readwrite', (s) => s.add(it)),
      put: (it) => run('queue', 'readwrite', (s) => s.put(it)),
      del: (seq) => run('queue', 'readwrite', (s) => s.delete(seq)),
      get: (k) => run('kv', 'readonly', (s) => s.get(k)),
      set: (k, v) => run('kv', 'readwrite', (s) => s.put(v, k)),
    };
  })();

  // ---- state ----
  let me = null;              // {subject, role, grids}
  let myName = '';
  const incidents = new Map(); // id → incident, as the API last showed it
  let queue = [];             // the queue's items of this worker, oldest first
  let live = false;

  const mine = (inc) => inc && inc.assignment && inc.assignment.worker_id === me.subject;
  const pendingOf = (id) => queue.filter((q) => q.incident === id && q.state === 'pending');
  function effectiveStatus(inc) {
    let s = inc.status;
    for (const q of pendingOf(inc.id)) if (NEXT[q.action]) s = NEXT[q.action];
    return s;
  }

  // ---- the phone's position: asked for when a form opens, never waited for ----
  let position = null;
  function locate() {
    if (!navigator.geolocation) return;
    try {
      navigator.geolocation.getCurrentPosition(
        (p) => { position = { lat: p.coords.latitude, lon: p.coords.longitude }; showLocation(); },
        () => { showLocation(); },
        { enableHighAccuracy: true, timeout: 10000, maximumAge: 120000 });
    } catch (_) { /* no position: the action goes without one */ }
  }
  function showLocation() {
    $('act-loc').textContent = position
      ? `将附上当前位置：${position.lat.toFixed(5)}, ${position.lon.toFixed(5)}`
      : '未获得定位（不影响提交）';
  }

  // ---- SLA countdown ----
  function slaText(inc) {
    const c = inc.clock;
    if (!c || !c.stage) return { text: '', kind: '' };
    const stage = STAGE[c.stage] || c.stage;
    if (c.paused_at) {
      return { text: `${stage}时限暂停（延期审批中），剩余 ${UB.duration(c.remaining_seconds || 0)}`, kind: 'paused' };
    }
    if (!c.due_at) return { text: '', kind: '' };
    const left = (new Date(c.due_at) - Date.now()) / 1000;
    if (left < 0) return { text: `${stage}${UB.duration(left)}`, kind: 'over' };
    const warn = c.warn_at && Date.now() >= new Date(c.warn_at);
    return { text: `${stage}剩余 ${UB.duration(left)}`, kind: warn ? 'warn' : 'ok' };
  }
  function tickClocks() {
    for (const li of $('tasks').children) {
      const inc = incidents.get(li.dataset.incident);
      const box = li.querySelector('.m-sla');
      if (!inc || !box) continue;
      const s = slaText(inc);
      if (box.textContent !== s.text) box.textContent = s.text;
      box.className = 'm-sla m-sla-' + (s.kind || 'none');
    }
  }

  // ---- the task cards ----
  const areaText = (a) => [a.district_name, a.street_name, a.community_name, a.grid_name || a.grid].filter(Boolean).join(' ');
  function latestReport(inc) {
    const rs = inc.reports || [];
    return rs.length ? rs[rs.length - 1] : null;
  }
  function card(inc) {
    const status = effectiveStatus(inc);
    const pend = pendingOf(inc.id);
    const r = latestReport(inc);
    const sla = slaText(inc);
    const loc = inc.location;
    const area = areaText(inc.area || {});
    const actions = (OFFER[status] || []).filter((a) => a !== 'request_extension' ||
      !((inc.extension && inc.extension.state === 'pending') || pend.some((q) => q.action === 'request_extension')));
    return el('li', { class: 'm-card', dataset: { incident: inc.id, key: cardKey(inc) } },
      el('div', { class: 'm-card-top' },
        el('span', { class: 'sev sev-' + inc.severity }, UB.severityName(inc.severity)),
        el('span', { class: 'm-status m-status-' + status }, UB.statusName(status)),
        pend.length ? el('span', { class: 'm-pending' }, `${pend.length} 项待发送`) : null),
      el('h3', { class: 'm-title' }, inc.title || inc.id),
      el('p', { class: 'm-sla m-sla-' + (sla.kind || 'none') }, sla.text),
      r && r.summary ? el('p', { class: 'm-summary' }, r.summary) : null,
      r && r.caller && (r.caller.name || r.caller.phone)
        ? el('p', { class: 'm-meta' }, '报告人：', [r.caller.name, r.caller.phone].filter(Boolean).join(' ')) : null,
      el('p', { class: 'm-meta' }, '位置：', area || '—'),
      loc ? el('a', { class: 'm-map', href: `geo:${loc.lat},${loc.lon}?q=${loc.lat},${loc.lon}` }, '在地图中打开（导航）') : null,
      inc.extension && inc.extension.state === 'pending' ? el('p', { class: 'm-meta' }, '延期申请审批中：', inc.extension.reason || '') : null,
      el('p', { class: 'm-id' }, inc.id, ' · 第 ', String(inc.report_count || (inc.reports || []).length || 1), ' 次报告'),
      actions.length ? el('div', { class: 'm-actions' }, actions.map((a) =>
        el('button', { type: 'button', class: a === actions[0] ? 'm-act m-act-main' : 'm-act secondary', dataset: { action: a, incident: inc.id } },
          UB.actionName(a)))) :
        (status === 'resolved' ? el('p', { class: 'm-meta' }, '已反馈，等待核查。') : null));
  }
  const cardKey = (inc) => [inc.version, effectiveStatus(inc), pendingOf(inc.id).length].join('/');

  function due(inc) {
    const c = inc.clock;
    if (!c || c.paused_at || !c.due_at) return Infinity;
    return new Date(c.due_at).getTime();
  }
  function render() {
    if (!me) return;
    const list = [...incidents.values()].filter(mine)
      .sort((a, b) => due(a) - due(b) || String(a.id).localeCompare(String(b.id)));
    const ul = $('tasks');
    const old = new Map([...ul.children].map((li) => [li.dataset.incident, li]));
    const want = list.map((inc) => {
      const li = old.get(inc.id);
      if (li && li.dataset.key === cardKey(inc)) return li;
      const fresh = card(inc);
      if (li) {
        const focused = li.contains(document.activeElement) && document.activeElement.dataset.action;
        li.replaceWith(fresh);
        if (focused) { const b = fresh.querySelector(`[data-action="${focused}"]`); if (b) b.focus(); }
      }
      return fresh;
    });
    for (const [id, li] of old) if (!list.some((i) => i.id === id)) li.remove();
    want.forEach((li, i) => { if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null); });
    $('task-count').textContent = `（${list.length}）`;
    $('no-tasks').hidden = list.length > 0;
    const others = incidents.size - list.length; // the feed has every open incident of the grids
    $('others').textContent = others > 0 ? `本网格另有 ${others} 件未派给您的事件，由他人处置。` : '';
    if (!myName) {
      const a = list.find((i) => i.assignment.worker_name);
      if (a) setName(a.assignment.worker_name);
    }
  }
  function setName(name) {
    myName = name;
    $('who').textContent = name && name !== me.subject ? `${name}（${me.subject}）` : me.subject;
  }

  // Remember what was last seen, so the app opens with it offline: within 200 ms of any change
  // (a throttle, not a debounce, which a steady feed would starve), and at once when the
  // network goes or the page is left.
  let saveTimer = null;
  function saveNow() {
    clearTimeout(saveTimer);
    saveTimer = null;
    if (me) db.set('tasks:' + me.subject, [...incidents.values()].filter(mine)).catch(() => {});
  }
  function saveLater() {
    if (!saveTimer) saveTimer = setTimeout(saveNow, 200);
  }
  function upsert(inc) {
    const cur = incidents.get(inc.id);
    if (cur && cur.version > inc.version) return;
    incidents.set(inc.id, inc);
  }

  // ---- the live feed ----
  let feed = { epoch: '', seq: 0 };
  let rawSocket = null; // the open WebSocket: closing it makes UB.socket reconnect afresh
  let sock = null;      // UB.socket's handle
  let frames = 0; // frames of the live feed taken so far (poll drops answers older than one)
  function onFrame(f) {
    switch (f.type) {
      case 'snapshot': {
        // The snapshot is the whole truth, but a command's answer may be newer than it.
        const had = new Map(incidents);
        incidents.clear();
        for (const inc of f.incidents || []) {
          const cur = had.get(inc.id);
          incidents.set(inc.id, cur && cur.version > inc.version ? cur : inc);
        }
        feed = { epoch: f.epoch, seq: f.seq };
        break;
      }
      case 'delta':
        if (f.seq !== feed.seq + 1) { // a lost frame: start again from a snapshot
          if (rawSocket) rawSocket.close();
          return;
        }
        feed.seq = f.seq;
        for (const inc of f.upsert || []) upsert(inc);
        for (const r of f.remove || []) incidents.delete(r.id);
        break;
      default:
        return;
    }
    frames++;
    render();
    saveLater();
  }
  let sockState = 'wait';
  function setConn(state) {
    sockState = state;
    live = state === 'live';
    showConn();
    if (live) { flush(); }
  }
  // showConn says how the phone is connected: the network first, then the live feed.
  function showConn() {
    const state = navigator.onLine ? sockState : 'down';
    $('conn').textContent = navigator.onLine ? { live: '实时', wait: '连接中…', down: '连接中断，重连中' }[state] : '离线';
    $('conn').className = 'm-conn m-conn-' + state;
  }
  // While the socket is down, ask for the tasks now and then.
  async function poll() {
    if (live || !navigator.onLine) return;
    const asked = frames;
    const r = await UB.api('GET', '/api/v1/me/tasks', undefined, { no401: true });
    if (r.status === 401) showBanner('登录已过期：请重新登录（未发送的操作保存在本机，不会丢失）。', true);
    // The feed delivered something while the answer was on its way (even if it dropped again
    // since): that is newer than the answer, which would otherwise take away a task
    // dispatched in between.
    if (!r.ok || !r.body || live || frames !== asked) return;
    const tasks = r.body.tasks || [];
    for (const [id, inc] of incidents) if (mine(inc) && !tasks.some((t) => t.id === id)) incidents.delete(id);
    for (const inc of tasks) upsert(inc);
    render();
    saveLater();
  }

  // ---- the queue ----
  async function loadQueue() {
    queue = (await db.items()).filter((q) => q.subject === me.subject).sort((a, b) => a.seq - b.seq);
    renderQueue();
    render();
  }
  let queueURLs = []; // blob: URLs of the queued photos' thumbnails, let go at each redraw
  function renderQueue() {
    const ol = $('queue');
    for (const u of queueURLs) URL.revokeObjectURL(u);
    queueURLs = [];
    const thumb = (p, i) => {
      if (!(p.blob instanceof Blob)) return null;
      try {
        const u = URL.createObjectURL(p.blob);
        queueURLs.push(u);
        return el('img', { class: 'm-q-thumb', src: u, alt: `待发送照片 ${i + 1}` });
      } catch (_) {
        return null; // a thumbnail is a convenience: the photo is still queued
      }
    };
    ol.replaceChildren(...queue.map((q) => {
      const inc = incidents.get(q.incident);
      return el('li', { class: 'm-q m-q-' + q.state, dataset: { command: q.id, state: q.state } },
        el('span', { class: 'm-q-state' }, QSTATE[q.state] || q.state),
        el('span', { class: 'm-q-what' }, UB.actionName(q.action), ' · ', (inc && inc.title) || q.title || q.incident),
        q.photos.length ? el('span', { class: 'm-q-meta' }, `照片 ${q.photos.length} 张`) : null,
        q.state === 'pending' && q.photos.length ? el('span', { class: 'm-q-thumbs' }, q.photos.map(thumb)) : null,
        el('span', { class: 'm-q-meta' }, '创建 ', UB.time(q.created), q.done ? ' · 完成 ' + UB.time(q.done) : ''),
        q.error ? el('span', { class: q.state === 'failed' ? 'm-q-error error' : 'm-q-meta' }, q.error) : null);
    }));
    $('queue-box').hidden = queue.length === 0;
    const n = queue.filter((q) => q.state === 'pending').length;
    $('queue-count').textContent = n ? `（${n} 项待发送）` : '';
  }
  const busy = new Set(); // incident/action being queued: a double tap queues it once
  async function enqueue(inc, action, body, photos) {
    const key = inc.id + '/' + action;
    if (busy.has(key) || (NEXT[action] && pendingOf(inc.id).some((q) => q.action === action))) return;
    busy.add(key);
    try { await enqueueOnce(inc, action, body, photos); } finally { busy.delete(key); }
  }
  async function enqueueOnce(inc, action, body, photos) {
    const item = {
      subject: me.subject, id: UB.commandId(), incident: inc.id, title: inc.title, action, body,
      photos: photos.map((f) => ({ blob: f, type: f.type, size: f.size, name: '' })),
      state: 'pending', error: '', created: new Date().toISOString(), done: '', tries: 0,
    };
    item.seq = await db.add(item);
    queue.push(item);
    renderQueue();
    render();
    UB.toast(navigator.onLine ? `${UB.actionName(action)}：发送中…` : `${UB.actionName(action)}：已离线保存，联网后自动发送`);
    flush();
  }

  let flushing = null, retryTimer = null, backoff = 1000;
  function flush() {
    if (!me) return Promise.resolve();
    if (flushing) { flushing.again = true; return flushing; }
    const run = async () => {
      do {
        flushing.again = false;
        await (navigator.locks ? navigator.locks.request('urbanbrain-m-queue', sendAll) : sendAll());
      } while (flushing.again);
    };
    flushing = Promise.resolve().then(run).finally(() => { flushing = null; });
    return flushing;
  }
  // sendAll sends the pending items in order; it stops at the first that must wait (the
  // network, the server busy or the session gone), so nothing overtakes what came before.
  async function sendAll() {
    // Nothing goes without the session's CSRF token (a 403 for want of it would be final).
    if (!queue.some((q) => q.state === 'pending')) return;
    if (!(await refreshSession())) { retryLater(); return; }
    // Another tab may have sent some: read the queue afresh.
    const fresh = new Map((await db.items()).map((q) => [q.seq, q]));
    queue = queue.map((q) => fresh.get(q.seq) || q);
    for (const q of queue) {
      if (q.state !== 'pending') continue;
      const outcome = await send(q);
      renderQueue();
      render();
      if (outcome === 'wait') { retryLater(); return; }
    }
    backoff = 1000;
    clearTimeout(retryTimer);
    retryTimer = null;
  }
  function retryLater() {
    if (retryTimer) return;
    const wait = backoff * (0.8 + Math.random() * 0.4);
    backoff = Math.min(backoff * 2, 60000);
    retryTimer = setTimeout(() => { retryTimer = null; flush(); }, wait);
  }
  // transient: an answer that says "try again" rather than "no".
  const transient = (r) => r.offline || r.status === 0 || r.status === 202 || r.status === 401 ||
    r.status === 408 || r.status === 429 || r.status >= 500;

  async function send(q) {
    const path = '/api/v1/incidents/' + encodeURIComponent(q.incident);
    q.tries++;
    for (const p of q.photos) {
      if (p.name) continue;
      const r = await UB.api('POST', path + '/photos', p.blob, { contentType: p.type, no401: true });
      if (transient(r)) return wait(q, r);
      if (!r.ok || !r.body || !r.body.name) return fail(q, r, '照片上传失败：');
      p.name = r.body.name;
      await db.put(q);
    }
    const body = Object.assign({ action: q.action, id: q.id }, q.body);
    if (q.photos.length) body.evidence = Object.assign({}, body.evidence, { photos: q.photos.map((p) => p.name) });
    const r = await UB.api('POST', path + '/actions', body, { no401: true });
    if (r.ok && r.status === 200) {
      q.state = 'sent';
      q.error = '';
      q.done = new Date().toISOString();
      for (const p of q.photos) p.blob = null; // sent: the server has them now
      await db.put(q);
      if (r.body && r.body.incident) { upsert(r.body.incident); saveLater(); }
      UB.toast(`${UB.actionName(q.action)}：已发送`, 'ok');
      return 'sent';
    }
    if (transient(r)) return wait(q, r);
    return fail(q, r, '');
  }
  async function wait(q, r) {
    q.error = r.status === 401 ? '登录已过期，请重新登录后自动发送' :
      r.status === 202 ? '服务器处理超时，稍后重试（不会重复生效）' :
        r.offline ? '' : `服务器暂不可用（${r.status}），稍后重试`;
    await db.put(q);
    if (r.status === 401) showBanner('登录已过期：待发送的操作已保存在本机，请重新登录。', true);
    return 'wait';
  }
  async function fail(q, r, prefix) {
    q.state = 'failed';
    q.error = prefix + (CODE[r.code] ? CODE[r.code] + '：' : '') + (r.error || ('HTTP ' + r.status)) + (r.code ? `（${r.code}）` : '');
    q.done = new Date().toISOString();
    await db.put(q);
    UB.toast(`${UB.actionName(q.action)}失败：${q.error}`, 'error');
    return 'failed';
  }

  function showBanner(text, withLogin) {
    const b = $('banner');
    b.replaceChildren(text, withLogin ? el('a', { href: '/login/?next=%2Fm%2F', class: 'm-relogin' }, '重新登录') : '');
    b.hidden = !text;
  }

  // ---- the action form ----
  let form = null; // {inc, action, photos: [File], urls: [blob: URL]}
  const FORM = {
    return: { title: '退单', reason: '退单原因（必填）' },
    progress: { title: '处置进展', note: '进展说明（必填）', locate: true },
    request_extension: { title: '延期申请', reason: '延期原因（必填）', extend: true },
    resolve: { title: '处置反馈', note: '处置结果说明（必填）', photos: true, locate: true },
  };
  function openForm(inc, action) {
    const f = FORM[action];
    form = { inc, action, photos: [], urls: [] };
    $('act-title').textContent = f.title;
    $('act-incident').textContent = inc.title || inc.id;
    $('f-reason').hidden = !f.reason;
    $('f-note').hidden = !f.note;
    $('f-extend').hidden = !f.extend;
    $('f-photos').hidden = !f.photos;
    if (f.reason) $('act-reason-label').textContent = f.reason;
    if (f.note) $('act-note-label').textContent = f.note;
    $('act-reason').value = '';
    $('act-note').value = '';
    $('act-photos').value = '';
    $('act-previews').replaceChildren();
    $('act-error').textContent = '';
    $('act-loc').textContent = '';
    if (f.locate) { showLocation(); locate(); }
    $('act').showModal();
    (f.reason ? $('act-reason') : $('act-note')).focus();
  }
  function closeForm() {
    if (form) for (const u of form.urls) URL.revokeObjectURL(u);
    form = null;
    $('act-previews').replaceChildren();
    if ($('act').open) $('act').close();
  }
  function addPhotos(files) {
    for (const f of files) {
      if (!PHOTO_TYPES.includes(f.type)) { $('act-error').textContent = `${f.name}：只能上传 JPEG、PNG 或 WebP 照片`; continue; }
      if (f.size > MAX_PHOTO) { $('act-error').textContent = `${f.name}：照片超过 8 MB`; continue; }
      const url = URL.createObjectURL(f);
      form.photos.push(f);
      form.urls.push(url);
      const i = form.photos.length - 1;
      $('act-previews').append(el('li', { class: 'm-preview' },
        el('img', { src: url, alt: `照片 ${i + 1}：${f.name}` }),
        el('button', { type: 'button', class: 'secondary m-remove', dataset: { photo: String(i) }, 'aria-label': `移除照片 ${i + 1}` }, '移除')));
    }
    $('act-photos').value = '';
  }
  async function submitForm() {
    if (!form) return;
    const { inc, action } = form;
    const reason = $('act-reason').value.trim();
    const note = $('act-note').value.trim();
    const f = FORM[action];
    if (f.reason && !reason) { $('act-error').textContent = '请填写原因。'; $('act-reason').focus(); return; }
    if (f.note && !note) { $('act-error').textContent = '请填写说明。'; $('act-note').focus(); return; }
    const body = {};
    if (f.reason) body.reason = reason;
    if (f.extend) body.extend_by = $('act-extend').value;
    if (f.note) body.note = note;
    if (action === 'resolve') body.evidence = { note };
    if (f.locate && position) body.evidence = Object.assign(body.evidence || {}, { location: { lat: position.lat, lon: position.lon } });
    const photos = form.photos.filter(Boolean);
    closeForm();
    await enqueue(inc, action, body, photos);
  }

  // ---- wiring ----
  function wire() {
    $('signout').addEventListener('click', async () => {
      // The next person on this phone sees nothing of this worker offline. Unsent actions
      // stay queued (with the account's name) for when this worker signs in again.
      if (me) await Promise.all([db.set('me', null), db.set('tasks:' + me.subject, [])]).catch(() => {});
      UB.signOut();
    });
    $('tasks').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-action]');
      if (!b) return;
      const inc = incidents.get(b.dataset.incident);
      if (!inc) return;
      if (NEEDS_FORM[b.dataset.action]) openForm(inc, b.dataset.action);
      else { b.disabled = true; enqueue(inc, b.dataset.action, {}, []).finally(() => { b.disabled = false; }); }
    });
    $('act-form').addEventListener('submit', (e) => { e.preventDefault(); submitForm(); });
    $('act-cancel').addEventListener('click', closeForm);
    // Escape closes the dialog by itself: let its form go. The event comes a task later, so a
    // dialog closed and opened again at once gets its first close after the reopening: skip it.
    $('act').addEventListener('close', () => { if (form && !$('act').open) closeForm(); });
    $('act-photos').addEventListener('change', (e) => addPhotos([...e.target.files]));
    $('act-previews').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-photo]');
      if (!b || !form) return;
      const i = Number(b.dataset.photo);
      URL.revokeObjectURL(form.urls[i]);
      form.photos[i] = null;
      b.closest('li').remove();
    });
    $('queue-clear').addEventListener('click', async () => {
      for (const q of queue.filter((x) => x.state !== 'pending')) await db.del(q.seq);
      queue = queue.filter((x) => x.state === 'pending');
      renderQueue();
    });
    addEventListener('online', () => {
      backoff = 1000; clearTimeout(retryTimer); retryTimer = null;
      showBanner('');
      showConn();
      if (sock && sock.reconnect) sock.reconnect();
      refreshSession().then(() => { flush(); poll(); });
    });
    addEventListener('offline', () => { saveNow(); showConn(); showBanner('已离线：操作将保存在本机，联网后自动发送。'); });
    addEventListener('pagehide', saveNow);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) flush(); });
    setInterval(tickClocks, 1000);
    setInterval(poll, 20000);
  }

  async function refreshSession() {
    try {
      const s = await UB.me();
      me = { subject: s.subject, role: s.role, grids: s.grids || [] };
      await db.set('me', me);
      return true;
    } catch (_) {
      return false; // offline: the last known account stands in
    }
  }

  async function findName() {
    const r = await UB.api('GET', '/api/v1/city', undefined, { no401: true });
    if (!r.ok || !r.body) return;
    for (const g of r.body.grids || []) {
      for (const w of g.workers || []) if (String(w.id).toLowerCase() === me.subject.toLowerCase()) { setName(w.name); return; }
    }
  }

  async function start() {
    if ('serviceWorker' in navigator) {
      navigator.serviceWorker.register('/m/sw.js', { scope: '/m/' }).catch(() => {});
    }
    wire();
    if (!(await refreshSession())) {
      me = await db.get('me').catch(() => null);
      if (!me) { showBanner('无法连接服务器，且本机没有登录记录：请联网后登录。'); $('who').textContent = '未登录'; return; }
      showBanner('已离线：显示的是上次同步的任务，操作将保存在本机，联网后自动发送。');
      setConn('down');
    }
    setName('');
    for (const inc of (await db.get('tasks:' + me.subject).catch(() => null)) || []) incidents.set(inc.id, inc);
    render();
    await loadQueue();
    if (me.role !== 'worker') showBanner('本页供网格员使用：当前账号不是网格员，没有派给本人的任务推送。');
    sock = UB.socket('/ws/worker', { onOpen: (ws) => { rawSocket = ws; }, onFrame, onState: setConn });
    findName();
    poll();
    flush();
  }

  // The page's state for tests and support: what is queued and what is shown.
  window.UBM = { queue: () => queue.map((q) => ({ id: q.id, incident: q.incident, action: q.action, state: q.state, error: q.error, photos: q.photos.map((p) => p.name) })), flush };
  start().catch((err) => { console.error('m.js', err); showBanner('页面出错：' + err.message); });
})();

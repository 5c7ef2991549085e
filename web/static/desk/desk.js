// desk.js: the operator desk (坐席: 受理、派遣、核查、结案). A live queue of the incidents in the
// signed-in account's scope, re-queried whenever the cockpit feed (/ws/cockpit) says something
// changed, and the incident page with every command the role may send. Everything shown comes
// from the API as it answers, masked for the role; text only ever reaches the page as text.
(() => {
  'use strict';
  const { el } = UB;
  const $ = (id) => document.getElementById(id);

  const OPEN = ['new', 'dispatched', 'accepted', 'in_progress', 'resolved', 'verified', 'returned'];
  const ROLE = { admin: '管理员', operator: '值班员', supervisor: '值班长', worker: '网格员', viewer: '只读', rule_author: '规则编写' };
  const STAGE = { sign_for: '签收', handle: '处置', verify: '核查', dispatch: '派遣' };
  const LEVEL = { community: '社区', street: '街道', district: '区' };
  const SOURCE = { 'city.hotline.ticket': '12345 热线', 'city.sensor.reading': '物联感知', 'city.video.detection': '视频识别' };
  const WORKER_ROLE = { worker: '网格员', supervisor: '社区监督员' };
  const SLA_RANK = { breached: 0, warning: 1, paused: 2, ok: 3, none: 4 };

  const st = {
    me: null,
    grids: [], gridByCode: new Map(), categories: new Map(), agencies: [],
    queue: [], selected: null, fresh: new Map(), feed: new Map(), snapshotSeen: false,
    detail: null, timeline: [], formOpen: null, stale: false,
    loadSeq: 0, refreshTimer: 0,
    recent: new Map(), // id → {inc, at}: the feed's latest states, which the store may not hold yet
    wantVersion: 0,    // the open incident's version the feed has announced
  };

  // ---- the policy this page mirrors (docs/api.md, the action table) ----

  const decides = () => ['supervisor', 'admin'].includes(st.me && st.me.role);
  const commands = () => UB.can('incidents:command') && st.me.role !== 'worker';
  const hasHotline = (inc) => (inc.reports || []).some((r) => r.event_type === 'city.hotline.ticket');
  const pending = (inc) => inc.extension && inc.extension.state === 'pending';
  // A published CAP alert not yet cancelled: it follows the incident by itself.
  const alertLive = (inc) => (inc.alerts || []).length > 0 && inc.alerts[inc.alerts.length - 1].msg_type !== 'Cancel';

  // The desk's actions: which states offer each, its shortcut, and the form it needs.
  const ACTIONS = [
    { a: 'dispatch', key: 'd', label: (i) => (i.area && i.area.grid ? '派遣' : '分派网格（受理）'), from: ['new', 'returned'], form: 'assign' },
    { a: 'reassign', key: 'd', label: () => '改派', from: ['dispatched'], form: 'assign' },
    { a: 'approve_extension', label: () => '同意延期', from: ['accepted', 'in_progress'], when: (i) => pending(i) && decides() },
    { a: 'refuse_extension', label: () => '不同意延期', from: ['accepted', 'in_progress'], when: (i) => pending(i) && decides(), form: 'reason' },
    { a: 'verify', key: 'v', label: () => '核查通过', from: ['resolved'] },
    { a: 'close', key: 'c', label: () => '结案', from: ['verified'] },
    { a: 'escalate', key: 'e', label: () => '督办', from: OPEN, when: (i) => i.escalation !== 'district', form: 'escalate' },
    { a: 'callback', label: () => '回访', from: ['closed'], when: (i) => hasHotline(i) && !i.callback, form: 'callback' },
    { a: 'reopen', label: () => '重办', from: ['resolved', 'verified', 'closed'], form: 'reason' },
    { a: 'return', label: () => '退单', from: ['dispatched', 'accepted'], form: 'reason' },
    { a: 'alert', label: () => '发布预警', from: OPEN, when: (i) => !alertLive(i), form: 'alert' },
    { a: 'merge', key: 'm', label: () => '并单', from: OPEN, form: 'merge' },
    { a: 'split', label: () => '拆单', from: OPEN, when: (i) => (i.reports || []).length > 1, form: 'split' },
    { a: 'cancel', key: 'x', label: () => '误报', from: ['new', 'returned', 'dispatched', 'accepted', 'in_progress', 'resolved'], form: 'reason' },
  ];
  const REASON_LABEL = { cancel: '误报理由', reopen: '重办理由', return: '退单理由', refuse_extension: '不同意延期的理由' };

  // ---- helpers ----

  function slaState(inc) {
    const c = inc.clock;
    if (!c || !c.due_at) return 'none';
    if (c.paused_at) return 'paused';
    const now = Date.now();
    if (c.breached || Date.parse(c.due_at) <= now) return 'breached';
    if (c.warned || (c.warn_at && Date.parse(c.warn_at) <= now)) return 'warning';
    return 'ok';
  }
  function slaText(inc) {
    const c = inc.clock;
    if (!c || !c.due_at) return '无时限';
    const stage = STAGE[c.stage] || c.stage || '';
    if (c.paused_at) return stage + '暂停（延期待批）';
    const left = (Date.parse(c.due_at) - Date.now()) / 1000;
    return left < 0 ? stage + UB.duration(left) : stage + '剩余 ' + UB.duration(left);
  }
  const sev = (s) => el('span', { class: 'sev sev-' + (s || 'blue') }, UB.severityName(s));
  const catName = (c) => (st.categories.get(c) ? st.categories.get(c) + '（' + c + '）' : c || '');
  const gridName = (code) => (st.gridByCode.get(code) || {}).name || code;
  function areaText(a) {
    if (!a) return '';
    const parts = [a.district_name || a.district, a.street_name || (a.street !== 'unknown' ? a.street : ''),
      a.community_name, a.grid ? (a.grid_name || gridName(a.grid)) : '未入格'];
    return parts.filter(Boolean).join(' · ');
  }
  const field = (name, ...value) => [el('dt', {}, name), el('dd', {}, ...value)];
  const actor = (a) => (a ? (a.subject || '') + (a.role ? '（' + (ROLE[a.role] || a.role) + '）' : '') : '');

  // ---- start ----

  async function start() {
    st.me = await UB.me();
    $('who').textContent = '当前用户：' + st.me.subject + '（' + (ROLE[st.me.role] || st.me.role) +
      (st.me.district ? ' · ' + st.me.district : '') + '）';
    $('signout').addEventListener('click', () => UB.signOut());
    $('help-open').addEventListener('click', openHelp);
    $('help-close').addEventListener('click', () => $('help').close());
    renderHelp();
    $('filters').addEventListener('submit', (e) => { e.preventDefault(); loadQueue(); });
    $('filters').addEventListener('change', (e) => {
      if (e.target.id === 'f-district' || e.target.id === 'f-street') fillAreaFilters();
      loadQueue();
    });
    let typing = 0;
    $('f-q').addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(loadQueue, 350); });
    document.addEventListener('keydown', onKey);
    window.addEventListener('hashchange', () => openIncident(decodeURIComponent(location.hash.slice(1))));
    setInterval(tick, 5000);
    await loadCity();
    await loadQueue();
    connect();
    // An incident to open: #<id>, or ?incident=<id> (a link that went through sign-in).
    const first = decodeURIComponent(location.hash.slice(1)) || new URLSearchParams(location.search).get('incident');
    if (first) openIncident(first);
  }

  async function loadCity() {
    const r = await UB.api('GET', '/api/v1/city');
    if (!r.ok) {
      $('queue-error').textContent = '城市网格与名册加载失败：' + r.error;
      return;
    }
    st.grids = r.body.grids || [];
    st.gridByCode = new Map(st.grids.map((g) => [g.code, g]));
    st.categories = new Map((r.body.categories || []).map((c) => [c.code, c.name]));
    st.categoryAgency = new Map((r.body.categories || []).map((c) => [c.code, c.agency || '']));
    st.agencies = r.body.agencies || [];
    $('f-category').append(...[...st.categories].map(([code, name]) => el('option', { value: code }, name + '（' + code + '）')));
    const districts = new Map(st.grids.map((g) => [g.district, g.district_name]));
    $('f-district').append(...[...districts].map(([code, name]) => el('option', { value: code }, name || code)));
    fillAreaFilters();
  }

  // The street and grid filters list what the chosen district (and street) hold.
  function fillAreaFilters() {
    const d = $('f-district').value, s = $('f-street');
    const keepS = s.value;
    const streets = new Map(st.grids.filter((g) => !d || g.district === d).map((g) => [g.street, g.street_name]));
    s.replaceChildren(el('option', { value: '' }, '全部'), ...[...streets].map(([c, n]) => el('option', { value: c }, n || c)));
    if (streets.has(keepS)) s.value = keepS;
    const g = $('f-grid'), keepG = g.value;
    const grids = st.grids.filter((x) => (!d || x.district === d) && (!s.value || x.street === s.value));
    g.replaceChildren(el('option', { value: '' }, '全部'), el('option', { value: '-' }, '未入格（待受理）'),
      ...grids.map((x) => el('option', { value: x.code }, x.name + '（' + x.code + '）')));
    if (keepG === '-' || grids.some((x) => x.code === keepG)) g.value = keepG;
  }

  // ---- the queue ----

  async function loadQueue() {
    const seq = ++st.loadSeq;
    const q = new URLSearchParams({ limit: '300' });
    const status = $('f-status').value;
    if (status === 'open') q.set('open', 'true');
    else if (status) q.set('status', status);
    for (const [id, name] of [['f-severity', 'severity'], ['f-category', 'category'], ['f-district', 'district'], ['f-street', 'street']]) {
      if ($(id).value) q.set(name, $(id).value);
    }
    const grid = $('f-grid').value;
    if (grid && grid !== '-') q.set('grid', grid);
    const text = $('f-q').value.trim();
    if (text) q.set('q', text);
    const r = await UB.api('GET', '/api/v1/incidents?' + q);
    if (seq !== st.loadSeq) return; // a newer query is on its way
    if (!r.ok) {
      $('queue-error').textContent = '查询失败：' + r.error;
      return;
    }
    $('queue-error').textContent = '';
    // The store is a projection that may lag the feed by a storage batch: what the feed said
    // in the last seconds wins over an older stored version, and is listed if the store has
    // not got it yet.
    const byId = new Map((r.body.incidents || []).map((i) => [i.id, i]));
    const now = Date.now();
    for (const [id, { inc, at }] of st.recent) {
      if (now - at > 15000) { st.recent.delete(id); continue; }
      const stored = byId.get(id);
      if (stored && stored.version >= inc.version) continue;
      if (inc.removed) byId.delete(id);
      else if (matches(inc)) byId.set(id, inc);
      else byId.delete(id);
    }
    st.queue = sortQueue([...byId.values()].filter(matches));
    renderQueue();
  }

  // Most urgent first: overdue, then warned or waiting for a dispatcher (受理), then by
  // severity, then the latest update.
  const urgency = (i) => (i.status === 'new' || i.status === 'returned' ? Math.min(1, SLA_RANK[slaState(i)]) : SLA_RANK[slaState(i)]);
  const sortQueue = (list) => list.sort((a, b) => (urgency(a) - urgency(b)) ||
    ((UB.SEVERITY[a.severity] || { rank: 9 }).rank - (UB.SEVERITY[b.severity] || { rank: 9 }).rank) ||
    (Date.parse(b.updated_at) - Date.parse(a.updated_at)));

  // matches says whether an incident passes the queue's filters, for the feed's incidents
  // (the API applies the same filters to what it answers, and this page the SLA filter).
  function matches(inc) {
    const status = $('f-status').value;
    if (status === 'open' && !OPEN.includes(inc.status)) return false;
    if (status && status !== 'open' && !status.split(',').includes(inc.status)) return false;
    for (const [id, get] of [['f-severity', (i) => i.severity], ['f-category', (i) => i.category],
      ['f-district', (i) => i.area && i.area.district], ['f-street', (i) => i.area && i.area.street]]) {
      if ($(id).value && get(inc) !== $(id).value) return false;
    }
    const grid = $('f-grid').value, g = inc.area && inc.area.grid;
    if (grid === '-' ? !!g : grid && g !== grid) return false;
    const sla = $('f-sla').value;
    if (sla && slaState(inc) !== sla) return false;
    const q = $('f-q').value.trim().toLowerCase();
    if (q && ![inc.title, ...(inc.reports || []).map((r) => r.summary)].some((t) => (t || '').toLowerCase().includes(q))) return false;
    return true;
  }

  function renderQueue() {
    const list = $('queue');
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#queue li');
    const focusId = focused && focused.dataset.id;
    const now = Date.now();
    for (const [id, at] of st.fresh) if (now - at > 60000) st.fresh.delete(id);
    list.replaceChildren(...st.queue.map((inc) => {
      const state = slaState(inc);
      const open = st.detail && st.detail.id === inc.id;
      const button = el('button', { type: 'button', class: 'q-item', 'aria-current': inc.id === st.selected ? 'true' : null },
        el('span', { class: 'q-line' }, sev(inc.severity),
          st.fresh.has(inc.id) ? el('span', { class: 'badge badge-new' }, '新') : null,
          el('span', { class: 'q-title' }, inc.title || inc.id)),
        el('span', { class: 'q-meta' },
          el('span', { class: 'status status-' + inc.status }, UB.statusName(inc.status)),
          el('span', {}, catName(inc.category)),
          el('span', {}, inc.area && inc.area.grid ? (inc.area.grid_name || gridName(inc.area.grid)) : '未入格'),
          el('span', { class: 'sla sla-' + state, dataset: { clock: inc.id } }, slaText(inc))));
      button.addEventListener('click', () => select(inc.id, true));
      return el('li', { class: 'q-row' + (inc.id === st.selected ? ' selected' : '') + (open ? ' open' : ''), dataset: { id: inc.id } }, button);
    }));
    $('queue-count').textContent = '（' + st.queue.length + '）';
    list.dataset.loaded = String(st.loadSeq);
    if (focusId) {
      const b = list.querySelector(`li[data-id="${CSS.escape(focusId)}"] button`);
      if (b) b.focus();
    }
  }

  // select marks an incident in the queue; open also shows it.
  function select(id, open) {
    st.selected = id;
    for (const li of $('queue').children) {
      const on = li.dataset.id === id;
      li.classList.toggle('selected', on);
      li.firstChild.setAttribute('aria-current', on ? 'true' : 'false');
    }
    if (open) {
      if (location.hash.slice(1) === id) openIncident(id);
      else location.hash = id;
    }
  }

  function move(step) {
    const rows = [...$('queue').children];
    if (!rows.length) return;
    let i = rows.findIndex((li) => li.dataset.id === st.selected);
    i = i < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, i + step));
    select(rows[i].dataset.id, false);
    rows[i].firstChild.focus();
    rows[i].scrollIntoView({ block: 'nearest' });
  }

  // tick keeps the SLA countdowns current between frames.
  function tick() {
    for (const span of document.querySelectorAll('[data-clock]')) {
      const inc = st.queue.find((i) => i.id === span.dataset.clock) || (st.detail && st.detail.id === span.dataset.clock ? st.detail : null);
      if (!inc) continue;
      span.textContent = slaText(inc);
      span.className = span.className.replace(/sla-\w+/, 'sla-' + slaState(inc));
    }
  }

  // ---- live: the cockpit feed says what changed; the queue is asked again ----

  function connect() {
    if (!UB.can('cockpit')) {
      setConn('down', '无实时推送权限');
      return;
    }
    UB.socket('/ws/cockpit?map=1', {
      onState: (s) => setConn(s, s === 'live' ? '实时' : s === 'wait' ? '连接中…' : '连接中断，正在重连'),
      onFrame: onFrame,
    });
  }

  function setConn(kind, text) {
    $('conn').className = 'pill pill-' + kind;
    $('conn').textContent = text;
    document.body.dataset.live = kind === 'live' ? '1' : '';
  }

  function onFrame(f) {
    switch (f.type) {
      case 'snapshot':
        st.feed = new Map((f.incidents || []).map((i) => [i.id, i]));
        if (st.snapshotSeen) refreshSoon([]); // a reconnect: what was missed is in the store
        st.snapshotSeen = true;
        break;
      case 'delta': {
        const touched = [];
        for (const inc of f.upsert || []) {
          const before = st.feed.get(inc.id);
          if (!before) {
            st.fresh.set(inc.id, Date.now());
            if (inc.status === 'new') UB.toast('新事件：' + (inc.title || inc.id));
          } else {
            // The server's own flags say when a clock warned or breached (sla_warning,
            // sla_breach changes), whatever this machine's clock says.
            const was = before.clock || {}, now = inc.clock || {};
            const stage = STAGE[now.stage] || '';
            if (now.breached && !was.breached) UB.toast(stage + '超时：' + (inc.title || inc.id), 'error');
            else if (now.warned && !was.warned) UB.toast(stage + '时限预警：' + (inc.title || inc.id), 'error');
          }
          st.feed.set(inc.id, inc);
          st.recent.set(inc.id, { inc, at: Date.now() });
          if (st.detail && st.detail.id === inc.id) st.wantVersion = Math.max(st.wantVersion, inc.version);
          touched.push(inc.id);
        }
        for (const r of f.remove || []) {
          const before = st.feed.get(r.id);
          st.feed.delete(r.id);
          // Gone from the feed: closed, cancelled, merged, or out of scope. Its new state is
          // not sent; the store will say it.
          if (before) st.recent.set(r.id, { inc: { ...before, version: before.version + 1, removed: $('f-status').value === 'open' }, at: Date.now() });
          touched.push(r.id);
        }
        refreshSoon(touched);
        break;
      }
      case 'map':
        DeskMap.setGrids(f.grids);
        if (st.detail) renderMap();
        break;
    }
  }

  function refreshSoon(ids) {
    if (st.detail && (ids.length === 0 || ids.includes(st.detail.id))) st.stale = true;
    clearTimeout(st.refreshTimer);
    st.refreshTimer = setTimeout(() => {
      loadQueue();
      if (st.stale && st.detail) {
        if (st.formOpen) showNote('该事件已有新进展，提交或取消当前操作后刷新。');
        else loadDetail(st.detail.id);
      }
    }, 250);
  }

  // ---- the incident page ----

  async function openIncident(id) {
    if (!id) return;
    st.selected = id;
    closeForm();
    await loadDetail(id);
    renderQueue();
  }

  async function loadDetail(id) {
    st.stale = false;
    const [d, t] = await Promise.all([
      UB.api('GET', '/api/v1/incidents/' + encodeURIComponent(id)),
      UB.api('GET', '/api/v1/incidents/' + encodeURIComponent(id) + '/timeline'),
    ]);
    const body = $('detail-body');
    if (!d.ok) {
      $('detail-empty').hidden = true;
      body.replaceChildren(el('p', { class: 'error', role: 'alert' }, '事件加载失败：' + d.error));
      delete body.dataset.id;
      delete body.dataset.key;
      return;
    }
    // The detail is {incident, timeline, events, dispatches}; the page keeps them together.
    if (!st.detail || st.detail.id !== id) st.wantVersion = 0;
    st.detail = { ...d.body.incident, events: d.body.events || [], dispatches: d.body.dispatches || [] };
    st.timeline = t.ok ? t.body.timeline || [] : [];
    if (st.detail.version < st.wantVersion && (st.retries = (st.retries || 0) + 1) <= 20) {
      // The feed announced a newer version than the store holds yet: ask again shortly.
      setTimeout(() => {
        if (!st.detail || st.detail.id !== id) return;
        if (st.formOpen) st.stale = true; else loadDetail(id);
      }, 300);
    } else st.retries = 0;
    if (st.formOpen && body.dataset.id === id) return; // keep what the operator is typing
    // Nothing new (a frame about what the page already shows): keep the page, and its focus.
    const key = id + '@' + st.detail.version + '/' + st.timeline.length;
    if (body.dataset.key === key) return;
    const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.id : '';
    renderDetail();
    body.dataset.key = key;
    if (focused && $(focused)) $(focused).focus();
  }

  function renderDetail() {
    const inc = st.detail;
    $('detail-empty').hidden = true;
    const body = $('detail-body');
    body.replaceChildren(...[
      renderHead(inc),
      renderActions(inc),
      el('div', { class: 'cols' },
        section('map', '位置', el('div', { id: 'map-box', class: 'map-box' })),
        section('why', '立案依据', ...renderWhy(inc))),
      section('reports', '报告与来源（' + (inc.reports || []).length + '）', renderReports(inc)),
      section('evidence', '处置反馈与照片', renderEvidence(inc)),
      section('dispatches', '派遣记录', renderDispatches(inc)),
      (inc.alerts || []).length ? section('alerts', '预警信息（CAP）', renderAlerts(inc)) : null,
      section('timeline', '处理过程', renderTimeline())].filter(Boolean));
    body.dataset.id = inc.id;
    body.dataset.version = String(inc.version);
    body.dataset.status = inc.status;
    renderMap();
  }

  function section(id, title, ...children) {
    return el('section', { class: 'card', 'aria-labelledby': 'h-' + id }, el('h3', { id: 'h-' + id }, title), ...children);
  }

  function renderHead(inc) {
    const ext = inc.extension;
    return el('div', { class: 'card head' },
      el('p', { class: 'head-line' }, sev(inc.severity),
        el('span', { class: 'status status-' + inc.status }, UB.statusName(inc.status)),
        el('span', { class: 'sla sla-' + slaState(inc), dataset: { clock: inc.id } }, slaText(inc))),
      el('h3', { id: 'inc-title', class: 'inc-title' }, inc.title || inc.id),
      el('dl', { class: 'facts' },
        field('编号', el('span', { class: 'mono' }, inc.id)),
        field('类别', catName(inc.category)),
        field('区域', areaText(inc.area)),
        field('处置人', inc.assignment && inc.assignment.worker_id
          ? (inc.assignment.worker_name || '') + '（' + inc.assignment.worker_id + '）' + (inc.assignment.agency_name ? ' · ' + inc.assignment.agency_name : '')
          : '未派遣'),
        field('立案时间', UB.time(inc.created_at)),
        field('最近更新', UB.time(inc.updated_at) + ' · 第 ' + inc.version + ' 版'),
        inc.escalation ? field('督办', '已督办至' + (LEVEL[inc.escalation] || inc.escalation)) : null,
        ext ? field('延期', (ext.state === 'pending' ? '待审批' : ext.state === 'approved' ? '已同意' : '未同意') +
          '：' + UB.duration(ext.for_seconds) + ' · ' + ext.reason + ' · 申请人 ' + ext.by +
          (ext.decided_by ? ' · 审批人 ' + ext.decided_by : '')) : null,
        inc.verified_by ? field('核查人', inc.verified_by) : null,
        inc.reopens ? field('重办', inc.reopens + ' 次') : null,
        inc.callback ? field('回访', inc.callback === 'satisfied' ? '满意' : '不满意') : null,
        inc.merged_into ? field('并入', inc.merged_into) : null,
        (inc.returns || []).length ? field('退单', inc.returns.map((r) => r.worker_id + '：' + r.reason).join('；')) : null));
  }

  // ---- actions ----

  const offered = (inc) => ACTIONS.filter((x) => x.from.includes(inc.status) && (!x.when || x.when(inc)));

  function renderActions(inc) {
    const box = el('section', { class: 'card actions', 'aria-labelledby': 'h-actions' }, el('h3', { id: 'h-actions' }, '处置操作'));
    if (!commands()) {
      box.append(el('p', { class: 'muted' }, '当前账号为只读，不能发送处置指令。'));
      return box;
    }
    const bar = el('div', { class: 'act-bar', role: 'group', 'aria-label': '可执行的操作' });
    for (const x of offered(inc)) {
      const b = el('button', { type: 'button', id: 'act-' + x.a, class: x.form ? 'secondary' : '',
        'aria-keyshortcuts': x.key || null, 'aria-describedby': 'act-msg' },
      x.label(inc) + (x.key ? '（' + x.key + '）' : ''));
      b.addEventListener('click', () => run(x.a));
      bar.append(b);
    }
    if (!bar.children.length) bar.append(el('span', { class: 'muted' }, '当前状态下没有可执行的操作。'));
    box.append(bar);
    if (pending(inc) && !decides()) box.append(el('p', { class: 'note' }, '有延期申请待审批：延期由值班长（supervisor）审批。'));
    box.append(el('p', { id: 'act-msg', class: 'act-msg', role: 'status', 'aria-live': 'polite' }), el('div', { id: 'act-form' }));
    return box;
  }

  function showNote(text, kind) {
    const m = $('act-msg');
    if (!m) return;
    m.textContent = text;
    m.className = 'act-msg' + (kind ? ' ' + kind : '');
  }

  // run starts an action: a form for those that need input, else the command itself.
  function run(action) {
    if (!st.detail || !commands()) return;
    const x = ACTIONS.find((y) => y.a === action);
    if (x && x.form) openForm(x);
    else send(action, {}, null);
  }

  // send posts a command and shows its outcome where it was asked for: in the form's own
  // error line, or beside the action buttons.
  async function send(action, fields, form) {
    const inc = st.detail;
    const out = form ? form.querySelector('.form-error') : $('act-msg');
    const submit = form && form.querySelector('button[type=submit]');
    if (submit) submit.disabled = true;
    if (!form) showNote('正在发送：' + UB.actionName(action) + '…');
    const id = form ? form.dataset.commandId : UB.commandId();
    const r = await UB.api('POST', '/api/v1/incidents/' + encodeURIComponent(inc.id) + '/actions', { action, id, ...fields });
    if (submit) submit.disabled = false;
    if (!r.ok) {
      // A refusal is a definite answer: the next try is a new command. Without an answer
      // (offline, 503) the same id is sent again, so a command that did arrive applies once.
      if (form && r.status !== 0 && r.status !== 503) form.dataset.commandId = UB.commandId();
      const text = UB.actionName(action) + '失败：' + r.error + '（' + r.code + '）';
      if (form) { out.textContent = text; out.dataset.code = r.code; } else { showNote(text, 'error'); $('act-msg').dataset.code = r.code; }
      return;
    }
    if (r.body && r.body.code === 'timeout') {
      const text = '指令已发送，结果尚未返回：请稍后刷新查看。';
      if (form) out.textContent = text; else showNote(text);
      return;
    }
    UB.toast(UB.actionName(action) + '成功', 'ok');
    closeForm();
    await loadDetail(inc.id);
    showNote(UB.actionName(action) + '成功。', 'ok');
    loadQueue();
  }

  function closeForm() {
    st.formOpen = null;
    const f = $('act-form');
    if (f) f.replaceChildren();
    if (st.stale && st.detail) loadDetail(st.detail.id);
  }

  function openForm(x) {
    const inc = st.detail;
    const form = el('form', { class: 'act-form', dataset: { action: x.a, commandId: UB.commandId() }, 'aria-labelledby': 'form-h' },
      el('h4', { id: 'form-h' }, x.label(inc)));
    const fid = (n) => 'fm-' + n;
    const labelled = (name, label, control) => el('div', { class: 'f-row' }, el('label', { for: fid(name) }, label), control);
    const textarea = (name, label, required) => labelled(name, label, el('textarea', { id: fid(name), rows: 2, required: !!required, maxlength: 500 }));
    let collect;
    switch (x.form) {
      case 'assign': {
        const near = DeskMap.nearest(inc.location, st.grids);
        const dist = (g) => {
          if (!inc.location || !g.centroid) return Infinity;
          const k = Math.cos(inc.location.lat * Math.PI / 180);
          return Math.hypot((g.centroid.lon - inc.location.lon) * k, g.centroid.lat - inc.location.lat) * 111320;
        };
        const ordered = [...st.grids].sort((a, b) => dist(a) - dist(b) || a.code.localeCompare(b.code));
        const gridSel = el('select', { id: fid('grid'), required: true },
          ordered.map((g) => el('option', { value: g.code },
            g.name + '（' + g.code + '）' + (near && near.grid.code === g.code ? ' · 建议：最近' : '') +
            (isFinite(dist(g)) ? ' · 约 ' + Math.round(dist(g)) + ' 米' : ''))));
        gridSel.value = (inc.area && st.gridByCode.has(inc.area.grid) && inc.area.grid) || (near && near.grid.code) || (ordered[0] || {}).code || '';
        const workerSel = el('select', { id: fid('worker'), required: true });
        const fillWorkers = () => {
          const g = st.gridByCode.get(gridSel.value);
          const roster = ((g && g.workers) || []).slice().sort((a, b) => (b.on_duty - a.on_duty) || (a.role === 'worker' ? -1 : 1));
          workerSel.replaceChildren(...roster.map((w) => el('option', { value: w.id },
            w.name + '（' + w.id + ' · ' + (WORKER_ROLE[w.role] || w.role) + ' · ' + (w.on_duty ? '在岗' : '不在岗') + '）')));
          if (!roster.length) workerSel.append(el('option', { value: '' }, '该网格无人员'));
          if (st.detail && st.detail.area && st.detail.area.grid === gridSel.value && roster.some((w) => w.id === inc.assignment.worker_id) && x.a === 'dispatch') {
            workerSel.value = inc.assignment.worker_id;
          }
          renderMap(gridSel.value);
        };
        gridSel.addEventListener('change', fillWorkers);
        const level = el('select', { id: fid('level') }, el('option', { value: '' }, '网格（默认）'),
          ...Object.entries(LEVEL).map(([v, n]) => el('option', { value: v }, n + '级')));
        // The current agency, else the category's owner: what automatic dispatch would pick.
        const agency = el('select', { id: fid('agency') }, el('option', { value: '' }, '不指定'),
          ...st.agencies.map((a) => el('option', { value: a.code }, a.name + '（' + a.code + '）')));
        agency.value = (inc.assignment && inc.assignment.agency) || (st.categoryAgency && st.categoryAgency.get(inc.category)) || '';
        form.append(
          near && !(inc.area && inc.area.grid) ? el('p', { class: 'note' }, '事件未落入任何网格；按位置建议最近的网格：' +
            near.grid.name + '（约 ' + Math.round(near.meters) + ' 米）。') : null,
          labelled('grid', '网格', gridSel), labelled('worker', '处置人员', workerSel),
          labelled('agency', '责任部门', agency), labelled('level', '层级', level));
        fillWorkers();
        collect = () => {
          const g = st.gridByCode.get(gridSel.value) || {};
          const w = ((g.workers) || []).find((y) => y.id === workerSel.value);
          if (!w) return { error: '请选择处置人员。' };
          const out = { assignment: { grid: gridSel.value, worker_id: w.id, worker_name: w.name } };
          if (agency.value) out.assignment.agency = agency.value;
          if (level.value) out.level = level.value;
          return out;
        };
        break;
      }
      case 'escalate': {
        const level = el('select', { id: fid('level') }, el('option', { value: '' }, '上一级（默认）'),
          ...Object.entries(LEVEL).map(([v, n]) => el('option', { value: v }, n + '级')));
        form.append(labelled('level', '督办至', level), textarea('reason', '督办理由', true));
        collect = () => ({ reason: $(fid('reason')).value.trim(), ...(level.value ? { level: level.value } : {}) });
        break;
      }
      case 'alert': {
        form.append(el('p', { class: 'note' }, '以 CAP 预警信息公开发布（/api/v1/alerts）；此后等级变化自动更新，事件结束自动撤销。'),
          textarea('note', '预警内容（公开发布，请勿填写个人信息）', false));
        collect = () => ({ note: $(fid('note')).value.trim() });
        break;
      }
      case 'merge': {
        const candidates = st.queue.filter((i) => i.id !== inc.id && OPEN.includes(i.status) && i.area && inc.area && i.area.street === inc.area.street);
        const input = el('input', { id: fid('source'), required: true, list: 'merge-list', autocomplete: 'off', spellcheck: 'false' });
        form.append(el('p', { class: 'note' }, '把另一个同街道在办事件的全部报告并入本事件，被并入的事件变为“已并单”。'),
          labelled('source', '被并入的事件编号', input),
          el('datalist', { id: 'merge-list' }, candidates.map((i) => el('option', { value: i.id }, i.title))),
          textarea('reason', '并单说明', false));
        collect = () => ({ source: input.value.trim(), reason: $(fid('reason')).value.trim() });
        break;
      }
      case 'split': {
        const sel = el('select', { id: fid('event'), required: true },
          (inc.reports || []).map((r) => el('option', { value: r.event_id }, (SOURCE[r.event_type] || r.event_type) + ' ' + r.event_id + '：' + (r.summary || ''))));
        form.append(labelled('event', '拆出的报告', sel), textarea('reason', '拆单理由', false));
        collect = () => ({ event_id: sel.value, reason: $(fid('reason')).value.trim() });
        break;
      }
      case 'callback': {
        const sel = el('select', { id: fid('result') }, el('option', { value: 'satisfied' }, '满意'),
          el('option', { value: 'dissatisfied' }, '不满意（重办）'));
        form.append(labelled('result', '回访结果', sel), textarea('note', '回访记录', false));
        collect = () => ({ result: sel.value, note: $(fid('note')).value.trim() });
        break;
      }
      default: // reason
        form.append(textarea('reason', REASON_LABEL[x.a] || '理由', true));
        collect = () => ({ reason: $(fid('reason')).value.trim() });
    }
    const err = el('p', { class: 'error form-error', role: 'alert' });
    const cancel = el('button', { type: 'button', class: 'secondary' }, '取消（Esc）');
    cancel.addEventListener('click', () => { closeForm(); const b = $('act-' + x.a); if (b) b.focus(); });
    form.append(el('div', { class: 'form-buttons' }, el('button', { type: 'submit', id: 'fm-submit' }, '提交：' + x.label(inc)), cancel), err);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const fields = collect();
      if (fields.error) { err.textContent = fields.error; return; }
      send(x.a, fields, form);
    });
    st.formOpen = x.a;
    $('act-form').replaceChildren(form);
    showNote('');
    const first = form.querySelector('select, input, textarea');
    if (first) first.focus();
  }

  // ---- the incident's sections ----

  function renderMap(suggestGrid) {
    const box = $('map-box');
    if (!box || !st.detail) return;
    const inc = st.detail;
    const near = !(inc.area && inc.area.grid) ? DeskMap.nearest(inc.location, st.grids) : null;
    const suggest = suggestGrid || (near && near.grid.code);
    box.replaceChildren(DeskMap.draw(inc, { suggest, grids: st.grids }),
      el('p', { class: 'muted' }, inc.location ? '经纬度 ' + inc.location.lon.toFixed(5) + ', ' + inc.location.lat.toFixed(5) + '（WGS-84）' : '无经纬度'));
  }

  function renderWhy(inc) {
    const out = [el('p', {}, '规则 ', el('span', { class: 'mono' }, inc.rule_id || '—'), inc.rule_version ? ' 第 ' + inc.rule_version + ' 版' : '')];
    for (const r of inc.reports || []) {
      if (!r.explanation && !(r.rules || []).length) continue;
      out.push(el('div', { class: 'why' },
        el('p', { class: 'why-h' }, (SOURCE[r.event_type] || r.event_type) + ' ' + r.event_id + ' · 规则 ' + (r.rule_id || '') + (r.rule_version ? ' v' + r.rule_version : '')),
        explanation(r.explanation),
        ...(r.rules || []).map((m) => el('div', { class: 'why-more' },
          el('p', {}, '同时命中规则 ' + m.rule_id + ' v' + m.rule_version + (m.severity ? '（' + UB.severityName(m.severity) + '）' : '') + (m.count ? ' ×' + m.count : '')),
          explanation(m.explanation)))));
    }
    if (out.length === 1) out.push(el('p', { class: 'muted' }, '无规则解释。'));
    return out;
  }

  function explanation(x) {
    if (!x) return null;
    const extra = [];
    if (x.for) extra.push('持续条件 ' + x.for + (x.held ? '，已持续 ' + x.held : ''));
    if (x.window) extra.push('窗口 ' + (x.window.size || '') + ' ' + (x.window.having || '') + '：计数 ' + (x.window.count ?? '') + (x.window.sum != null ? '，合计 ' + x.window.sum : ''));
    if (x.silent) extra.push('设备静默 ' + x.silent + (x.last_seen ? '（最后上报 ' + UB.time(x.last_seen) + '）' : ''));
    return el('div', { class: 'expl' },
      el('p', {}, '条件：', el('code', {}, x.condition || '')),
      el('ul', { class: 'terms' }, (x.terms || []).map((t) => el('li', { class: t.holds ? 'holds' : 'fails' },
        el('span', { class: 'mark' }, t.holds ? '成立 ' : '不成立 '), el('code', {}, t.text || t.expr)))),
      extra.length ? el('p', {}, extra.join('；')) : null);
  }

  function renderReports(inc) {
    const events = new Map((inc.events || []).map((e) => [e.id, e]));
    const list = el('ol', { class: 'reports' });
    for (const r of inc.reports || []) {
      const ev = events.get(r.event_id);
      const j = r.joined;
      const joined = !j ? '' : j.by === 'opened' ? '首报立案' : j.by === 'key' ? '同一关联键并入' :
        j.by === 'place' ? '附近同类问题并入：相距 ' + Math.round(j.distance_meters || 0) + ' 米' : j.by;
      list.append(el('li', { class: 'report' },
        el('p', { class: 'report-h' }, el('strong', {}, SOURCE[r.event_type] || r.event_type), ' ',
          r.ticket_id ? '工单 ' + r.ticket_id + ' · ' : '', UB.time(r.at), r.category ? ' · ' + catName(r.category) : '', joined ? ' · ' + joined : ''),
        r.summary ? el('p', { class: 'report-text' }, r.summary) : null,
        r.caller ? el('p', {}, '来电人：', el('span', { class: 'caller-name' }, r.caller.name || '—'), ' · 电话：', el('span', { class: 'caller-phone' }, r.caller.phone || '—')) : null,
        r.device ? el('p', {}, '设备 ', r.device, r.class ? ' · ' + r.class : '', r.count ? ' · ' + r.count + ' 次读数' : '',
          r.peak ? ' · 峰值 ' + Object.entries(r.peak).map(([k, v]) => k + '=' + v).join('，') : '') : null,
        ev ? source(ev) : null));
    }
    return list;
  }

  // source is what the producer sent, as the API shows it (masked for the role).
  function source(ev) {
    const facts = [];
    if (ev.hotline) {
      const h = ev.hotline;
      facts.push(field('渠道', [h.channel, h.request_type, h.urgency].filter(Boolean).join(' · ')),
        field('工单内容', el('span', { class: 'ticket-content' }, h.content || '')),
        h.address ? field('地址', h.address) : null,
        h.category ? field('原分类', h.category) : null,
        field('来电人', (h.caller_name || '—') + ' · ' + (h.caller_phone || '—')));
    }
    if (ev.sensor) {
      facts.push(field('传感器', ev.sensor.device_id + ' · ' + ev.sensor.kind + (ev.sensor.status ? ' · ' + ev.sensor.status : '')),
        field('读数', Object.entries(ev.sensor.metrics || {}).map(([k, v]) => k + '=' + v).join('，')));
    }
    if (ev.video) {
      facts.push(field('摄像头', ev.video.camera_id + ' · ' + ev.video.algorithm + ' · 置信度 ' + ev.video.confidence));
    }
    return el('details', { class: 'source' }, el('summary', {}, '原始事件 ' + ev.id + ' · ' + (ev.source || '') + ' · ' + UB.time(ev.time)),
      el('dl', { class: 'facts' }, ...facts));
  }

  function photoURL(inc, name) {
    if (/^https?:\/\//i.test(name)) {
      try {
        const u = new URL(name);
        return u.origin === location.origin ? u.pathname + u.search : null;
      } catch (_) { return null; }
    }
    return '/api/v1/incidents/' + encodeURIComponent(inc.id) + '/photos/' + encodeURIComponent(name);
  }

  function renderEvidence(inc) {
    const ev = inc.evidence;
    if (!ev) return el('p', { class: 'muted' }, '尚无处置反馈。');
    const photos = el('ul', { class: 'photos' });
    (ev.photos || []).forEach((name, i) => {
      const src = photoURL(inc, name);
      if (!src) {
        // Another origin: the page's CSP loads no image from there; the address is shown.
        photos.append(el('li', {}, '照片 ' + (i + 1) + '（外部地址）：', el('span', { class: 'mono' }, name)));
        return;
      }
      const img = el('img', { src, alt: '处置照片 ' + (i + 1) + '：' + name, loading: 'lazy' });
      img.addEventListener('error', () => img.replaceWith(el('span', { class: 'muted' }, '照片 ' + (i + 1) + ' 无法加载：' + name)));
      photos.append(el('li', {}, el('a', { href: src, target: '_blank', rel: 'noopener noreferrer' }, img)));
    });
    return el('div', {},
      el('dl', { class: 'facts' },
        field('反馈', ev.note || ''),
        field('反馈人', (ev.by || '') + (ev.at ? ' · ' + UB.time(ev.at) : '')),
        ev.location ? field('反馈位置', ev.location.lon.toFixed(5) + ', ' + ev.location.lat.toFixed(5)) : null),
      (ev.photos || []).length ? photos : el('p', { class: 'muted' }, '无照片。'));
  }

  function renderDispatches(inc) {
    const ds = inc.dispatches || [];
    if (!ds.length) return el('p', { class: 'muted' }, '无派遣系统的派遣决定（人工派遣、改派见处理过程）。');
    return el('ol', { class: 'log' }, ds.map((d) => el('li', {},
      el('span', { class: 'when' }, UB.time(d.at)), ' ',
      el('strong', {}, (d.assignment.worker_name || '') + '（' + (d.assignment.worker_id || '') + '）'),
      d.assignment.grid ? ' · ' + gridName(d.assignment.grid) : '',
      d.assignment.agency_name ? ' · ' + d.assignment.agency_name : '',
      d.level ? ' · ' + (LEVEL[d.level] || d.level) + '级' : '',
      d.reason ? el('span', { class: 'why-line' }, d.reason) : null)));
  }

  // The CAP messages published about the incident, each a link to its public document.
  function renderAlerts(inc) {
    const TYPE = { Alert: '发布', Update: '更新', Cancel: '撤销' };
    return el('ol', { class: 'log' }, inc.alerts.map((m, i) => el('li', {},
      el('span', { class: 'when' }, UB.time(m.sent)), ' ',
      el('strong', {}, TYPE[m.msg_type] || m.msg_type), ' ',
      el('span', { class: 'sev sev-' + m.severity }, UB.severityName(m.severity)), ' ',
      el('a', { href: '/api/v1/incidents/' + encodeURIComponent(inc.id) + '/alerts/' + (i + 1) }, 'CAP 文档'),
      m.note ? el('span', { class: 'why-line' }, m.note) : null)));
  }

  function renderTimeline() {
    if (!st.timeline.length) return el('p', { class: 'muted' }, '无记录。');
    return el('ol', { class: 'log timeline' }, st.timeline.map((t) => {
      const kind = t.kind === 'refused' ? '（被拒绝）' : t.kind === 'notify' ? '（通知部门）' : '';
      return el('li', { class: 'tl-' + (t.kind || 'change') },
        el('span', { class: 'when' }, UB.time(t.at)), ' ',
        el('strong', {}, UB.actionName(t.action) + kind), ' ',
        t.from && t.to && t.from !== t.to ? UB.statusName(t.from) + ' → ' + UB.statusName(t.to) + ' ' : '',
        el('span', { class: 'muted' }, actor(t.actor)),
        t.reason ? el('span', { class: 'why-line' }, '理由：' + t.reason) : null,
        t.note ? el('span', { class: 'why-line' }, '说明：' + t.note) : null,
        t.location ? el('span', { class: 'why-line' }, '现场位置：' + t.location.lat.toFixed(5) + ', ' + t.location.lon.toFixed(5)) : null,
        t.error ? el('span', { class: 'why-line error' }, (t.code ? t.code + '：' : '') + t.error) : null);
    }));
  }

  // ---- keyboard ----

  const KEYS = [
    ['j', '队列中下一个事件'], ['k', '队列中上一个事件'], ['Enter', '打开选中的事件'], ['/', '聚焦搜索框'],
    ['d', '派遣 / 分派网格 / 改派'], ['v', '核查通过'], ['c', '结案'], ['e', '督办'], ['x', '误报'], ['m', '并单'],
    ['r', '刷新队列和当前事件'], ['Esc', '关闭表单或帮助'], ['?', '显示本帮助'],
  ];
  function renderHelp() {
    $('help-keys').replaceChildren(...KEYS.flatMap(([k, what]) => [el('dt', {}, el('kbd', {}, k)), el('dd', {}, what)]));
  }
  function openHelp() {
    const d = $('help');
    if (!d.open) d.showModal();
    $('help-close').focus();
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if ($('help').open) return; // the dialog closes itself on Esc
    const t = e.target;
    const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
    if (e.key === 'Escape') {
      if (st.formOpen) { closeForm(); e.preventDefault(); return; }
      if (typing) t.blur();
      return;
    }
    if (typing) return;
    const key = e.key;
    // Enter on a button, link or summary does what it does; elsewhere it opens the selection.
    const native = t && t !== document.body && t.matches && t.matches('button, a[href], summary, [role=button]');
    let done = true;
    switch (key) {
      case 'j': move(1); break;
      case 'k': move(-1); break;
      case 'Enter':
        if (native) { done = false; break; }
        if (st.selected) select(st.selected, true);
        break;
      case '/': $('f-q').focus(); break;
      case '?': openHelp(); break;
      case 'r': loadQueue(); if (st.detail) loadDetail(st.detail.id); break;
      case 'd':
        if (st.detail) run(st.detail.status === 'dispatched' ? 'reassign' : 'dispatch');
        break;
      case 'v': if (st.detail) run('verify'); break;
      case 'c': if (st.detail) run('close'); break;
      case 'e': if (st.detail) run('escalate'); break;
      case 'x': if (st.detail) run('cancel'); break;
      case 'm': if (st.detail) run('merge'); break;
      default: done = false;
    }
    if (done) e.preventDefault();
  }

  start().catch((err) => {
    $('queue-error').textContent = '坐席加载失败：' + err.message;
  });
})();

// The wall-screen page of the leadership cockpit (领导驾驶舱). Plain JavaScript, no build
// step, nothing fetched from elsewhere. It keeps the state of /ws/cockpit (docs/cockpit.md):
// a snapshot, then deltas whose seq must follow one another; on a gap or a dropped
// connection it reconnects and resumes from its last seq, and says so on a banner until the
// stream is whole again.
'use strict';
(function () {
  const SEV = {
    red: { name: '红色', rank: 0, color: '#ff5a5a' },
    orange: { name: '橙色', rank: 1, color: '#ff9a3c' },
    yellow: { name: '黄色', rank: 2, color: '#ffd84a' },
    blue: { name: '蓝色', rank: 3, color: '#4aa8ff' },
  };
  const STATUS = {
    new: '待派遣', dispatched: '已派遣', accepted: '已签收', in_progress: '处置中', resolved: '已反馈',
    verified: '已核查', returned: '已退单', closed: '已结案', cancelled: '误报', merged: '已并单',
  };
  const STAGES = [['dispatch', '派遣'], ['sign_for', '签收'], ['handle', '处置'], ['verify', '核查']];
  const CLOCK_STAGE = { sign_for: '签收', handle: '处置', verify: '核查' };
  const SOURCES = [['sensor', '物联感知', '#37d0ff'], ['hotline', '12345', '#ffb020'], ['video', '视频', '#b07bff']];
  const FILTER_KEYS = ['district', 'street', 'category', 'severity'];
  const HEAT = [[0, 'rgba(18, 52, 100, 0.55)'], [1, '#1b6aa5'], [2, '#c9a91c'], [4, '#e07b24'], [7, '#d63a3a']];
  const STALE_MS = 15000; // KPI frames come every second: this long without a frame is a dead link
  const MAX_ROWS = 30; // rendered at most; as many as fit are shown
  const WEEK = '日一二三四五六';

  const $ = (id) => document.getElementById(id);

  // The token and the filter come in the fragment (/#token=…&district=…), which browsers
  // never send to the server. The token is then kept for this tab only and taken out of
  // the address bar.
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token') || sessionStorage.getItem('urbanbrain.token') || '';
  if (params.has('token')) {
    sessionStorage.setItem('urbanbrain.token', token);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  const filter = {};
  for (const k of FILTER_KEYS) if (params.get(k)) filter[k] = params.get(k);
  const coordsys = params.get('coordsys') || 'wgs84';

  const st = {
    epoch: '', seq: 0, incidents: new Map(), fresh: new Map(),
    grids: null, categories: {}, districtNames: {}, kpi: null, mapCoordsys: '',
    ws: null, opened: false, attempts: 0, lastFrame: 0, live: false, reconnectTimer: 0,
    frames: 0, gaps: 0, reloads: 0,
  };

  // For tests and for a look from the browser console.
  window.urbanbrainCockpit = () => ({
    live: st.live, epoch: st.epoch, seq: st.seq, incidents: st.incidents.size, frames: st.frames,
    gaps: st.gaps, reloads: st.reloads, map: !!st.grids, kpi: !!st.kpi, banner: $('banner').hidden ? '' : $('banner').textContent,
  });

  // ---- connection ----

  function connect() {
    st.reconnectTimer = 0;
    // With a signed-in session the handshake carries the cookie, and no token goes in the URL.
    const q = new URLSearchParams({ kpi: '1', coordsys });
    if (token) q.set('access_token', token);
    if (!st.grids) q.set('map', '1');
    for (const k in filter) q.set(k, filter[k]);
    if (st.epoch) {
      q.set('epoch', st.epoch);
      q.set('seq', String(st.seq));
    }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws/cockpit?${q}`);
    } catch (e) {
      down(null);
      return;
    }
    st.ws = ws;
    st.opened = false;
    ws.onopen = () => {
      st.opened = true;
      st.lastFrame = Date.now();
    };
    ws.onmessage = (ev) => {
      if (st.ws !== ws) return;
      st.lastFrame = Date.now();
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      st.frames++;
      handle(f);
    };
    ws.onclose = (ev) => {
      if (st.ws !== ws) return;
      st.ws = null;
      down(ev);
    };
  }

  // drop abandons the current socket (a gap, or silence) and reconnects with resume.
  function drop(message) {
    const ws = st.ws;
    st.ws = null;
    if (ws) {
      ws.onclose = null;
      try { ws.close(); } catch (e) { /* already closing */ }
    }
    down(null, message);
  }

  function down(ev, message) {
    $('screen').classList.add('stale'); // what is shown may be out of date: say so visibly
    st.live = false;
    st.attempts++;
    setConn('down', '已断开');
    showBanner(message || `连接中断，正在重连（第 ${st.attempts} 次）…`, false);
    if (!st.opened && st.attempts >= 3) checkToken();
    const slow = ev && ev.code === 4000; // dropped as a slow reader: come straight back
    const delay = slow || message ? 200 : Math.min(10000, 500 * 2 ** Math.min(st.attempts, 5)) * (0.75 + Math.random() / 2);
    if (!st.reconnectTimer) st.reconnectTimer = setTimeout(connect, delay);
  }

  // A websocket handshake that fails says nothing of why; the API does.
  function checkToken() {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    fetch('/api/v1/incidents?limit=1', { headers, credentials: 'same-origin' })
      .then((r) => {
        if (r.status === 401) fatal(token ? '访问令牌无效或已过期，请使用新的驾驶舱链接打开本页。' : '登录已失效，请重新登录。');
        else if (r.status === 403) fatal('该账号的角色无权查看驾驶舱。');
      })
      .catch(() => {});
  }

  function handle(f) {
    switch (f.type) {
      case 'snapshot':
        st.epoch = f.epoch;
        st.seq = f.seq;
        st.incidents = new Map(f.incidents.map((i) => [i.id, i]));
        st.fresh.clear();
        goLive();
        dirty();
        break;
      case 'resumed':
        goLive(); // the missed deltas follow
        break;
      case 'reload':
        st.reloads++;
        st.live = false;
        $('screen').classList.add('stale');
        setConn('wait', '重新加载');
        showBanner('数据已无法续传，正在重新加载…', true);
        break;
      case 'delta':
        if (f.seq !== st.seq + 1) {
          st.gaps++;
          drop('数据不连续，正在恢复…');
          return;
        }
        for (const inc of f.upsert) {
          if (!st.incidents.has(inc.id)) st.fresh.set(inc.id, Date.now());
          st.incidents.set(inc.id, inc);
        }
        for (const r of f.remove) st.incidents.delete(r.id);
        st.seq = f.seq;
        dirty();
        break;
      case 'kpi':
        st.kpi = f.kpi;
        renderKPI();
        drawChart();
        break;
      case 'map':
        st.grids = f.grids;
        st.mapCoordsys = f.coordsys;
        st.categories = f.categories || {};
        prepareMap();
        dirty();
        break;
      case 'error':
        console.warn('cockpit:', f.code, f.error);
        break;
    }
    $('seq').textContent = st.epoch ? `序号 ${st.seq}` : '';
  }

  function goLive() {
    $('screen').classList.remove('stale');
    st.live = true;
    st.attempts = 0;
    hideBanner();
    setConn('live', '实时');
  }

  function setConn(kind, text) {
    const el = $('conn');
    el.className = 'pill pill-' + kind;
    el.textContent = text;
  }

  function showBanner(text, reload) {
    const b = $('banner');
    b.textContent = text;
    b.className = reload ? 'banner reload' : 'banner';
    b.hidden = false;
  }

  function hideBanner() {
    $('banner').hidden = true;
  }

  function fatal(text) {
    let el = document.querySelector('.fatal');
    if (!el) {
      el = document.createElement('div');
      el.className = 'fatal';
      $('screen').appendChild(el);
    }
    el.textContent = '';
    const p = document.createElement('div');
    p.textContent = text;
    const login = document.createElement('a');
    login.href = '/login?next=' + encodeURIComponent(location.pathname + location.hash);
    login.textContent = '登录';
    const hint = document.createElement('code');
    hint.textContent = '或使用驾驶舱链接 http://<服务器>/#token=<令牌>（urbanbrain serve --demo 启动时打印）';
    el.append(p, login, hint);
  }

  // ---- rendering ----

  let renderTimer = 0;
  function dirty() {
    if (!renderTimer) renderTimer = setTimeout(() => { renderTimer = 0; renderList(); drawMap(); }, 100);
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  function fmtDur(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}天${h}时`;
    return `${pad(h)}:${pad(m)}:${pad(s % 60)}`;
  }

  function fmtShort(sec) {
    const s = Math.round(sec);
    if (s < 60) return `${s}秒`;
    if (s < 3600) return `${Math.floor(s / 60)}分${pad(s % 60)}秒`;
    if (s < 86400) return `${Math.floor(s / 3600)}时${pad(Math.floor((s % 3600) / 60))}分`;
    return `${Math.floor(s / 86400)}天${Math.floor((s % 86400) / 3600)}时`;
  }

  function zero(t) { return !t || t.startsWith('0001-'); }

  // sla is the countdown of the incident's SLA clock (event.Clock), or its age if it has none.
  function sla(inc, now) {
    const c = inc.clock;
    if (c && !zero(c.due_at)) {
      const stage = CLOCK_STAGE[c.stage] || '';
      if (!zero(c.paused_at)) return { cls: 'paused', text: `${stage}暂停 余${fmtDur((c.remaining_seconds || 0) * 1000)}`, key: 1e15 };
      const left = Date.parse(c.due_at) - now;
      if (left < 0 || c.breached) return { cls: 'over', text: `${stage}超时 ${fmtDur(-left)}`, key: left };
      const warn = c.warned || (!zero(c.warn_at) && now >= Date.parse(c.warn_at));
      return { cls: warn ? 'warn' : '', text: `${stage}剩余 ${fmtDur(left)}`, key: left };
    }
    return { cls: '', text: `已持续 ${fmtDur(now - Date.parse(inc.created_at))}`, key: 1e15 };
  }

  function sorted(now) {
    const rows = [];
    for (const inc of st.incidents.values()) rows.push({ inc, sla: sla(inc, now) });
    rows.sort((a, b) => {
      const ra = (SEV[a.inc.severity] || { rank: 9 }).rank;
      const rb = (SEV[b.inc.severity] || { rank: 9 }).rank;
      if (ra !== rb) return ra - rb;
      if (a.sla.key !== b.sla.key) return a.sla.key - b.sla.key;
      return Date.parse(a.inc.created_at) - Date.parse(b.inc.created_at);
    });
    return rows;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function renderList() {
    const now = Date.now();
    const ol = $('incidents');
    const rows = sorted(now);
    const items = [];
    for (const { inc, sla: s } of rows.slice(0, MAX_ROWS)) {
      const sev = SEV[inc.severity] || { name: inc.severity, color: '#888' };
      const li = el('li');
      li.dataset.id = inc.id;
      const fresh = st.fresh.get(inc.id);
      if (fresh && now - fresh < 2500) li.className = 'fresh';
      li.append(el('div', 'stripe ' + inc.severity));
      const main = el('div', 'main');
      const title = el('div', 'title');
      title.append(el('span', 'badge ' + inc.severity, sev.name), document.createTextNode(inc.title || inc.id));
      const a = inc.area || {};
      const where = [a.district_name, a.street_name, a.grid_name].filter(Boolean).join(' ');
      const cat = st.categories[inc.category] || inc.category;
      const meta = el('div', 'meta');
      meta.append(el('span', 'status-tag', STATUS[inc.status] || inc.status),
        document.createTextNode(` · ${cat} · ${where}` + (inc.report_count > 1 ? ` · 一事多报×${inc.report_count}` : '')));
      main.append(title, meta);
      const side = el('div', 'side');
      side.append(el('div', 'sla ' + s.cls, s.text), el('div', 'muted', (inc.assignment && inc.assignment.worker_name) || ''));
      li.append(main, side);
      items.push(li);
    }
    if (rows.length === 0) items.push(el('li', 'empty', st.epoch ? '当前没有在办事件' : '正在加载…'));
    ol.replaceChildren(...items);
    // Show as many rows as fit the panel, and say how many more there are.
    const more = el('li', 'more');
    let n = rows.length ? items.length : 0;
    const fits = () => ol.scrollHeight <= ol.clientHeight + 1;
    if (rows.length > n) ol.append(more);
    while (n > 0 && !fits()) {
      items[--n].remove();
      if (!more.isConnected) ol.append(more);
      more.textContent = `另有 ${rows.length - n} 件在办…`;
    }
    if (more.isConnected) more.textContent = `另有 ${rows.length - n} 件在办…`;
    $('list-count').textContent = `${rows.length} 件`;
    for (const [id, t] of st.fresh) if (now - t > 10000) st.fresh.delete(id);
  }

  function renderKPI() {
    const k = st.kpi;
    if (!k) return;
    const open = k.open || {};
    $('k-open').textContent = open.total ?? 0;
    const bs = open.by_status || {};
    $('k-open-status').textContent = ['new', 'dispatched', 'accepted', 'in_progress', 'resolved']
      .filter((s) => bs[s]).map((s) => `${STATUS[s]} ${bs[s]}`).join(' · ') || '无在办事件';
    for (const s of ['red', 'orange', 'yellow', 'blue']) $('k-' + s).textContent = (open.by_severity || {})[s] || 0;

    const eps = k.events_per_second || {};
    $('k-eps').textContent = (eps.total || 0).toFixed(1);
    $('k-eps-src').textContent = SOURCES.map(([key, name]) => `${name} ${(eps[key] || 0).toFixed(1)}`).join(' · ');

    const sen = k.sensors || { online: 0, known: 0 };
    $('k-sensors').textContent = sen.known ? `${(100 * sen.online / sen.known).toFixed(1)}%` : '—';
    $('k-sensors-sub').textContent = `在线 ${sen.online} / 已接入 ${sen.known}`;

    const table = $('k-stages');
    const rows = [table.rows[0]];
    for (const [key, name] of STAGES) {
      const s = (k.stages || {})[key] || { count: 0 };
      const tr = document.createElement('tr');
      const rate = s.on_time_rate;
      const rateCell = el('td', rate == null ? '' : rate >= 0.9 ? 'rate-good' : rate >= 0.7 ? 'rate-warn' : 'rate-bad',
        rate == null ? '—' : `${(rate * 100).toFixed(1)}%`);
      tr.append(el('td', '', name), rateCell, el('td', '', s.count ? fmtShort(s.mean_seconds) : '—'), el('td', '', String(s.count)));
      rows.push(tr);
    }
    table.replaceChildren(...rows);

    const byD = Object.entries(open.by_district || {}).sort((a, b) => b[1] - a[1]).slice(0, 6);
    const maxD = Math.max(1, ...byD.map((e) => e[1]));
    $('k-districts').replaceChildren(...byD.map(([code, n]) => {
      const row = el('div', 'bar');
      const track = el('div', 'track');
      const fill = el('div', 'fill');
      fill.style.width = `${(100 * n) / maxD}%`;
      track.append(fill);
      row.append(el('span', '', st.districtNames[code] || code), track, el('span', 'n', String(n)));
      return row;
    }));

    $('hotspots').replaceChildren(...(k.hot_spots || []).map((h, i) => {
      const li = el('li');
      const where = el('span', 'where', h.grid_name || h.grid);
      where.append(el('small', '', [h.district_name, h.street_name].filter(Boolean).join(' ')));
      li.append(el('span', 'rank', String(i + 1)), where, el('span', 'n', h.red ? `${h.open}（红${h.red}）` : String(h.open)));
      return li;
    }));
    if (!(k.hot_spots || []).length) $('hotspots').replaceChildren(el('li', 'empty', '暂无热点'));
  }

  // ---- the map: the grids' GeoJSON drawn on a canvas (no tiles are reachable) ----

  let shapes = []; // {code, district, rings: [[[lon, lat], ...]], bbox}
  let bounds = null;

  function prepareMap() {
    shapes = [];
    bounds = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
    const districts = {};
    for (const f of st.grids.features || []) {
      const g = f.geometry || {};
      const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
      const rings = [];
      for (const poly of polys) for (const ring of poly) rings.push(ring);
      const p = f.properties || {};
      const shape = { code: p.code || f.id, district: p.district, rings, minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
      for (const ring of rings) {
        for (const [x, y] of ring) {
          shape.minX = Math.min(shape.minX, x); shape.maxX = Math.max(shape.maxX, x);
          shape.minY = Math.min(shape.minY, y); shape.maxY = Math.max(shape.maxY, y);
        }
      }
      bounds.minX = Math.min(bounds.minX, shape.minX); bounds.maxX = Math.max(bounds.maxX, shape.maxX);
      bounds.minY = Math.min(bounds.minY, shape.minY); bounds.maxY = Math.max(bounds.maxY, shape.maxY);
      shapes.push(shape);
      if (p.district) {
        st.districtNames[p.district] = p.district_name || p.district;
        const d = districts[p.district] || (districts[p.district] = { name: p.district_name || p.district, sx: 0, sy: 0, n: 0 });
        d.sx += (shape.minX + shape.maxX) / 2; d.sy += (shape.minY + shape.maxY) / 2; d.n++;
      }
    }
    st.districtLabels = Object.values(districts).map((d) => ({ name: d.name, x: d.sx / d.n, y: d.sy / d.n }));
    $('map-note').textContent = `网格 ${shapes.length} 个 · 坐标系 ${st.mapCoordsys === 'gcj02' ? 'GCJ-02' : st.mapCoordsys === 'bd09' ? 'BD-09' : 'WGS-84'}`;
    const legend = $('legend');
    legend.replaceChildren(document.createTextNode('在办事件数'), ...HEAT.map(([n, color], i) => {
      const span = el('span');
      const sw = el('i');
      sw.style.background = color;
      const next = HEAT[i + 1];
      span.append(sw, document.createTextNode(next ? (next[0] - 1 > n ? `${n}–${next[0] - 1}` : String(n)) : `${n}+`));
      return span;
    }));
    if (st.kpi) renderKPI();
  }

  function fitCanvas(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function heat(n) {
    let c = HEAT[0][1];
    for (const [min, color] of HEAT) if (n >= min) c = color;
    return c;
  }

  function drawMap() {
    const canvas = $('map');
    const { ctx, w, h } = fitCanvas(canvas);
    if (!bounds || !shapes.length) {
      ctx.fillStyle = '#6f8fb8';
      ctx.font = '20px sans-serif';
      ctx.fillText('正在加载网格…', 24, 40);
      return;
    }
    const k = Math.cos(((bounds.minY + bounds.maxY) / 2) * Math.PI / 180);
    const padding = 24;
    const scale = Math.min((w - 2 * padding) / ((bounds.maxX - bounds.minX) * k), (h - 2 * padding) / (bounds.maxY - bounds.minY));
    const ox = (w - (bounds.maxX - bounds.minX) * k * scale) / 2;
    const oy = (h - (bounds.maxY - bounds.minY) * scale) / 2;
    const px = (x) => ox + (x - bounds.minX) * k * scale;
    const py = (y) => oy + (bounds.maxY - y) * scale;

    const count = {};
    for (const inc of st.incidents.values()) {
      const g = inc.area && inc.area.grid;
      if (g) count[g] = (count[g] || 0) + 1;
    }
    const hot = new Set(((st.kpi && st.kpi.hot_spots) || []).map((s) => s.grid));
    for (const s of shapes) {
      ctx.beginPath();
      for (const ring of s.rings) {
        ring.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
        ctx.closePath();
      }
      ctx.fillStyle = heat(count[s.code] || 0);
      ctx.fill('evenodd');
      ctx.lineWidth = 1;
      ctx.strokeStyle = 'rgba(90, 150, 230, 0.55)';
      ctx.stroke();
    }
    for (const s of shapes) {
      if (!hot.has(s.code)) continue;
      ctx.beginPath();
      for (const ring of s.rings) {
        ring.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
        ctx.closePath();
      }
      ctx.lineWidth = 3;
      ctx.strokeStyle = '#ffe066';
      ctx.shadowColor = '#ffe066';
      ctx.shadowBlur = 10;
      ctx.stroke();
      ctx.shadowBlur = 0;
    }
    const now = Date.now();
    for (const inc of st.incidents.values()) {
      const loc = inc.location;
      if (!loc) continue;
      const x = px(loc.lon), y = py(loc.lat);
      const color = (SEV[inc.severity] || { color: '#fff' }).color;
      ctx.beginPath();
      ctx.arc(x, y, 5, 0, 2 * Math.PI);
      ctx.fillStyle = color;
      ctx.shadowColor = color;
      ctx.shadowBlur = 8;
      ctx.fill();
      ctx.shadowBlur = 0;
      const fresh = st.fresh.get(inc.id);
      if (fresh && now - fresh < 10000) {
        ctx.beginPath();
        ctx.arc(x, y, 14, 0, 2 * Math.PI);
        ctx.lineWidth = 2;
        ctx.strokeStyle = color;
        ctx.stroke();
      }
    }
    ctx.font = 'bold 22px "Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", sans-serif';
    ctx.textAlign = 'center';
    for (const d of st.districtLabels || []) {
      ctx.lineWidth = 4;
      ctx.strokeStyle = 'rgba(2, 11, 26, 0.85)';
      ctx.strokeText(d.name, px(d.x), py(d.y));
      ctx.fillStyle = '#eaf4ff';
      ctx.fillText(d.name, px(d.x), py(d.y));
    }
    ctx.textAlign = 'start';
  }

  // ---- the events-per-second chart ----

  function drawChart() {
    const { ctx, w, h } = fitCanvas($('chart'));
    const series = st.kpi && st.kpi.events_series;
    const left = 48, right = 12, top = 10, bottom = 26;
    const cw = w - left - right, ch = h - top - bottom;
    let max = 1;
    if (series) for (const [key] of SOURCES) for (const v of series.counts[key] || []) max = Math.max(max, v);
    const step = niceStep(max / 4);
    max = Math.ceil(max / step) * step;
    ctx.font = '13px sans-serif';
    ctx.fillStyle = '#6f8fb8';
    ctx.strokeStyle = 'rgba(47, 111, 192, 0.35)';
    ctx.lineWidth = 1;
    for (let v = 0; v <= max; v += step) {
      const y = top + ch - (v / max) * ch;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + cw, y); ctx.stroke();
      ctx.fillText(String(v), 8, y + 4);
    }
    ctx.fillText('-60秒', left, h - 6);
    ctx.fillText('-30秒', left + cw / 2 - 16, h - 6);
    ctx.fillText('现在', left + cw - 28, h - 6);
    if (!series) return;
    for (const [key, , color] of SOURCES) {
      const vals = series.counts[key] || [];
      ctx.beginPath();
      vals.forEach((v, i) => {
        const x = left + (i / Math.max(1, vals.length - 1)) * cw;
        const y = top + ch - (v / max) * ch;
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      });
      ctx.strokeStyle = color;
      ctx.lineWidth = 2.5;
      ctx.stroke();
    }
  }

  function niceStep(x) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(x, 1))));
    for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  // ---- clock, staleness, start ----

  function tick() {
    const d = new Date();
    $('clock').textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} 星期${WEEK[d.getDay()]} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (st.ws && st.opened && Date.now() - st.lastFrame > STALE_MS) drop('连接无响应，正在重连…');
    renderList(); // the SLA countdowns move every second
  }

  let session = null; // GET /api/v1/session of a signed-in user (no token in the link)

  function describeScope() {
    let text = '全市';
    try {
      const claims = session || JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      if (claims.district) text = `辖区 ${claims.district}`;
      if (claims.grids && claims.grids.length) text = `网格 ${claims.grids.length} 个`;
      if (session) text = `${session.subject} · ${text}`;
    } catch (e) { /* not a readable token: the server will say */ }
    const parts = Object.entries(filter).map(([k, v]) => `${{ district: '区', street: '街道', category: '类别', severity: '等级' }[k]} ${v}`);
    $('scope').textContent = [text, ...parts].join(' · ');
  }

  window.addEventListener('resize', () => { drawMap(); drawChart(); });
  describeScope();
  renderList();
  drawMap();
  drawChart();
  setInterval(tick, 1000);
  tick();
  if (token) {
    connect();
    return;
  }
  // No token in the link: a signed-in session, or the sign-in page.
  fetch('/api/v1/session', { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : null))
    .then((s) => {
      if (!s) {
        fatal('尚未登录。');
        return;
      }
      session = s;
      describeScope();
      connect();
    })
    .catch(() => fatal('无法连接服务器。'));
})();

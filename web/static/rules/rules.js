// The rule studio (规则工作室): the rule list with state and counters, an editor for a rule's
// YAML/expr text with errors marked where the validate API puts them as the author types, field
// completion from the typed environment, dry runs with the per-event "why", backtests with the
// diff against the current version, the version history with diffs, shadow mode,
// enable/disable and saving a new version. Every control is shown or enabled only when the
// account's role and scope allow it (the API's "editable" and UB.can('rules:write')); the API
// checks again. Everything from the API reaches the page as text (UB.el), never as HTML.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const { el } = UB;

  const ROLE = { admin: '管理员', operator: '受理员', supervisor: '值班长', worker: '网格员',
    rule_author: '规则作者', viewer: '查看者', ingest: '接入' };
  const KIND = { '': '即时', for: '持续', window: '窗口', absent: '缺失' };
  const ACTION = { create: '新建', update: '修改', enable: '启用', disable: '停用', delete: '删除', seed: '目录导入' };

  const state = {
    session: null,
    rules: [],
    rule: null,        // the open rule as the API gave it; null for a new, unsaved rule
    baseVersion: 0,    // the version the editor's text was loaded from
    dirty: false,
    errors: [],
    validated: null,   // the rule the last valid check returned
    checkSeq: 0,
    fields: null,      // GET /api/v1/rules/fields, when the server has it
    fieldsByType: {},  // the same per event type (?type=)
    job: null,
  };

  // Names of the city's districts and categories (GET /api/v1/city), and a grid of the
  // account's scope for sample events; codes are shown when the city cannot be read.
  const city = { districts: {}, categories: {}, grid: null };
  async function loadCity() {
    const r = await UB.api('GET', '/api/v1/city');
    if (!r.ok || !r.body) return;
    for (const g of r.body.grids || []) {
      if (g.district) city.districts[g.district] = g.district_name || g.district;
      if (!city.grid) city.grid = g;
    }
    for (const c of r.body.categories || []) city.categories[c.code] = c.name;
  }
  const districtName = (code) => city.districts[code] || code;
  const categoryName = (code) => (city.categories[code] ? `${code} ${city.categories[code]}` : code || '');

  const canWrite = () => UB.can('rules:write');
  const editable = () => canWrite() && (state.rule ? !!state.rule.editable : true);

  // ---- the rule list ----

  function badge(text, kind) { return el('span', { class: 'badge badge-' + kind }, text); }

  function ruleBadges(r) {
    const out = [];
    out.push(r.enabled ? badge('启用', 'on') : badge('停用', 'off'));
    if (r.raise && r.raise.shadow) out.push(badge('影子', 'shadow'));
    out.push(r.district ? badge('区级 · ' + districtName(r.district), 'scope') : badge('全市', 'scope'));
    if (!r.editable) out.push(badge('只读', 'ro'));
    if (r.stats && r.stats.quarantined) out.push(badge('已隔离', 'bad'));
    return out;
  }

  function renderList() {
    const q = $('filter').value.trim().toLowerCase();
    const list = $('rules');
    // A refresh keeps the keyboard where it was.
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#rules .rule-open');
    const refocus = focused ? focused.dataset.id : null;
    list.replaceChildren();
    for (const r of state.rules) {
      const hay = [r.id, r.name, r.description].join(' ').toLowerCase();
      if (q && !hay.includes(q)) continue;
      const s = r.stats || {};
      const counters = el('p', { class: 'counters' },
        `评估 ${s.evaluated || 0} · 命中 ${s.matched || 0}` + (s.cleared ? ` · 解除 ${s.cleared}` : '') +
        ` · 失败 ${s.failed || 0}` + (s.keys ? ` · 状态键 ${s.keys}` : ''));
      const problems = [];
      if (s.quarantine_reason) problems.push(el('p', { class: 'error' }, '隔离原因：' + s.quarantine_reason));
      if (s.last_error) problems.push(el('p', { class: 'error' }, '最近错误：' + s.last_error));
      const open = el('button', { type: 'button', class: 'rule-open', 'aria-current': state.rule && state.rule.id === r.id ? 'true' : null,
        dataset: { id: r.id } }, el('span', { class: 'rule-name' }, r.name || r.id), el('span', { class: 'rule-id' }, r.id + ' · 第 ' + r.version + ' 版 · ' + (KIND[r.kind || ''] || r.kind)));
      open.addEventListener('click', () => openRule(r.id));
      list.append(el('li', { class: 'rule' + (state.rule && state.rule.id === r.id ? ' current' : '') },
        open, el('p', { class: 'badges' }, ruleBadges(r)),
        r.description ? el('p', { class: 'desc' }, r.description) : null, counters, problems));
    }
    if (!list.children.length) list.append(el('li', { class: 'muted' }, q ? '没有符合筛选的规则' : '暂无规则'));
    if (refocus) { const b = list.querySelector(`.rule-open[data-id="${CSS.escape(refocus)}"]`); if (b) b.focus(); }
  }

  async function loadRules() {
    const r = await UB.api('GET', '/api/v1/rules');
    if (!r.ok) {
      $('rules').replaceChildren(el('li', { class: 'error' }, '规则列表读取失败：' + r.error));
      return;
    }
    state.rules = (r.body.rules || []).slice().sort((a, b) => a.id.localeCompare(b.id));
    const cur = state.rule && state.rules.find((x) => x.id === state.rule.id);
    if (cur && cur.version === state.rule.version) { state.rule = cur; $('rule-state').replaceChildren(...ruleBadges(cur)); }
    const e = r.body.engine || {};
    $('engine').textContent = `共 ${r.body.count} 条规则 · 引擎 ${e.rules || 0} 条运行 · 迟到事件 ${e.late || 0} · 重载 ${e.reloads || 0} 次`;
    const broken = Object.entries(r.body.version_errors || {});
    $('version-errors').replaceChildren(broken.length ? el('div', { class: 'version-errors' },
      el('h3', {}, '无法编译的版本'), el('ul', {}, broken.map(([k, v]) => el('li', {}, el('code', {}, k), '：', v)))) : '');
    renderList();
  }

  // ---- opening a rule ----

  const TEMPLATE = `# 新规则：填写编号、名称和条件
id: my-new-rule
name: 新规则
description: 说明这条规则做什么
types: [city.sensor.reading]
when: sensor.kind == "water_level" && sensor.metrics["level_cm"] > 80
raise:
  category: "0104"
  severity: orange
  title: "{{area.street_name}} 水位 {{sensor.metrics.level_cm}}cm"
  correlation_key: "water:{{sensor.device_id}}"
`;

  async function openRule(id) {
    if (state.dirty && !confirm('编辑器中有未保存的修改，确定放弃并打开其他规则？')) return;
    const r = await UB.api('GET', '/api/v1/rules/' + encodeURIComponent(id));
    if (!r.ok) { UB.toast('读取规则失败：' + r.error, 'error'); return; }
    state.rule = r.body;
    state.baseVersion = r.body.version;
    setText(r.body.source || '');
    setDirty(false);
    history.replaceState(null, '', '#' + encodeURIComponent(id));
    showRule();
    loadVersions();
    $('samples').value = sampleEvents(r.body.types || []);
    $('dry-result').replaceChildren();
    $('bt-result').replaceChildren();
    $('save-result').replaceChildren();
  }

  function newRule() {
    if (state.dirty && !confirm('编辑器中有未保存的修改，确定放弃？')) return;
    state.rule = null;
    state.baseVersion = 0;
    const d = state.session && state.session.district;
    // A district author writes only their district's rules: the template says so.
    setText(d ? TEMPLATE.replace('\ntypes:', `\ndistrict: "${d}"\ntypes:`) : TEMPLATE);
    setDirty(true);
    history.replaceState(null, '', '#new');
    showRule();
    $('versions').replaceChildren(el('li', { class: 'muted' }, '新规则尚未保存，没有版本历史'));
    $('diff').replaceChildren();
    $('samples').value = sampleEvents(['city.sensor.reading']);
    $('save-result').replaceChildren();
    $('source').focus();
  }

  // showRule sets the heading, the state badges and which controls the account may use.
  function showRule() {
    const r = state.rule;
    $('editor-title').textContent = r ? `${r.name || r.id}（${r.id} · 第 ${r.version} 版）` : '新建规则';
    $('rule-state').replaceChildren(...(r ? ruleBadges(r) : [badge('未保存', 'off')]));
    const can = editable();
    const note = $('readonly-note');
    if (!canWrite()) { note.hidden = false; note.textContent = '您的角色没有编写规则的权限，只能查看。'; }
    else if (r && !r.editable) {
      note.hidden = false;
      note.textContent = r.district ? `这是区级规则（${districtName(r.district)}），不在您的管辖范围内，只读。` : '这是全市规则，您的账号限于本区，只能查看，不能修改、启用或停用。';
    } else note.hidden = true;
    $('source').readOnly = !can;
    $('save-row').hidden = !can;
    $('save').disabled = !can;
    const t = $('toggle-enabled');
    t.hidden = !(can && r);
    t.disabled = !(can && r);
    if (r) t.textContent = r.enabled ? '停用规则' : '启用规则';
    $('shadow').disabled = !can;
    $('shadow').checked = r ? !!(r.raise && r.raise.shadow) : false;
    renderList();
  }

  // ---- the editor: gutter, error overlay, live check ----

  const src = () => $('source');

  function setText(text) {
    src().value = text;
    src().scrollTop = 0;
    src().scrollLeft = 0;
    state.errors = [];
    renderEditor();
    scheduleCheck(0);
  }

  function lines() { return src().value.split('\n'); }

  // renderEditor redraws the gutter (line numbers, error lines) and the mirror behind the
  // textarea, which holds the error markers at their columns and each message after its line.
  function renderEditor() {
    const ls = lines();
    const byLine = new Map();
    for (const e of state.errors) {
      const ln = e.file_line || 0;
      if (ln < 1 || ln > ls.length) continue;
      if (!byLine.has(ln)) byLine.set(ln, []);
      byLine.get(ln).push(e);
    }
    const gutter = $('gutter');
    gutter.replaceChildren(...ls.map((_, i) => el('div', { class: 'ln' + (byLine.has(i + 1) ? ' ln-error' : ''), dataset: { line: i + 1 } }, String(i + 1))));
    const mirror = $('mirror');
    const parts = [];
    ls.forEach((text, i) => {
      const errs = byLine.get(i + 1);
      if (!errs) { parts.push(text + '\n'); return; }
      errs.sort((a, b) => (a.file_column || 0) - (b.file_column || 0));
      let at = 0;
      for (const e of errs) {
        const col = Math.max(0, Math.min((e.file_column || 1) - 1, text.length));
        if (col < at) continue;
        parts.push(text.slice(at, col));
        const ch = text.slice(col, col + 1) || ' ';
        parts.push(el('span', { class: 'err-marker', dataset: { line: i + 1, column: e.file_column || 0 } }, ch));
        at = col + ch.length;
      }
      parts.push(text.slice(at));
      parts.push(el('span', { class: 'err-msg' }, '  ◀ ' + errs.map((e) => errorText(e)).join('；')));
      parts.push('\n');
    });
    parts.push(' \n');
    mirror.replaceChildren(...parts.map((p) => (typeof p === 'string' ? document.createTextNode(p) : p)));
    fitMessages();
    syncScroll();
  }

  // fitMessages cuts each error message off (…) at the editor's right edge, as the line it
  // follows is left; the whole message is in the list of errors under the editor.
  function fitMessages() {
    const wrap = $('editor-wrap');
    for (const m of $('mirror').querySelectorAll('.err-msg')) {
      m.style.maxWidth = '';
      const room = wrap.clientWidth - m.offsetLeft - 8;
      if (m.offsetWidth > room) m.style.maxWidth = Math.max(120, room) + 'px';
    }
  }

  function syncScroll() {
    const t = src();
    $('gutter').scrollTop = t.scrollTop;
    $('mirror').scrollTop = t.scrollTop;
    $('mirror').scrollLeft = t.scrollLeft;
  }

  const FIELD = { when: '条件', raise: '立案', group_by: '分组', window: '窗口', for: '持续', absent: '缺失', types: '事件类型' };
  function errorText(e) {
    const f = e.field ? (FIELD[e.field.split('.')[0]] ? FIELD[e.field.split('.')[0]] + '（' + e.field + '）' : e.field) + '：' : '';
    return f + (e.message || e.text || '');
  }

  function renderErrors(general) {
    const list = $('errors');
    list.replaceChildren();
    if (general) list.append(el('li', { class: 'error' }, general));
    for (const e of state.errors) {
      const where = e.file_line ? `第 ${e.file_line} 行第 ${e.file_column || 1} 列` : '位置未知';
      const go = el('button', { type: 'button', class: 'link', dataset: { line: e.file_line || 0, column: e.file_column || 0 } }, where);
      go.addEventListener('click', () => moveTo(e.file_line, e.file_column));
      list.append(el('li', { class: 'error err-item', dataset: { line: e.file_line || 0, column: e.file_column || 0 } },
        go, '：', errorText(e), e.event_type ? `（事件类型 ${e.event_type}）` : '',
        e.snippet ? el('pre', { class: 'snippet' }, e.snippet.replace(/^\n/, '')) : null));
    }
  }

  function moveTo(line, column) {
    if (!line) return;
    const ls = lines();
    let pos = 0;
    for (let i = 0; i < line - 1 && i < ls.length; i++) pos += ls[i].length + 1;
    pos += Math.max(0, (column || 1) - 1);
    const t = src();
    t.focus();
    t.setSelectionRange(pos, pos);
  }

  let checkTimer = 0;
  function scheduleCheck(delay = 350) {
    clearTimeout(checkTimer);
    $('editor').dataset.check = 'pending'; // "done" once the answer for the text as it is now is shown
    checkTimer = setTimeout(check, delay);
  }

  // check sends the editor's text to POST /api/v1/rules/validate; an answer that a newer
  // check overtook is dropped.
  async function check() {
    const seq = ++state.checkSeq;
    const text = src().value;
    $('check-state').textContent = '正在校验…';
    const r = await UB.api('POST', '/api/v1/rules/validate', new Blob([text], { type: 'application/yaml' }));
    if (seq !== state.checkSeq) return;
    let general = '';
    if (r.ok) {
      state.errors = [];
      state.validated = r.body.rule || null;
      $('check-state').textContent = '校验通过' + (r.body.kind ? `（${KIND[r.body.kind] || r.body.kind}规则）` : '');
      $('check-state').className = 'check-state ok';
    } else if (r.code === 'invalid_rule') {
      state.errors = (r.body && r.body.errors) || [];
      state.validated = null;
      if (!state.errors.length) general = r.error;
      $('check-state').textContent = `有 ${state.errors.length || 1} 处错误`;
      $('check-state').className = 'check-state bad';
    } else {
      state.validated = null;
      general = '校验失败：' + r.error;
      $('check-state').textContent = general;
      $('check-state').className = 'check-state bad';
    }
    renderEditor();
    renderErrors(general);
    if (src().value === text) $('editor').dataset.check = 'done';
  }

  // ---- field completion ----

  const cmp = { open: false, items: [], active: 0, start: 0 };

  // loadFields reads the typed environment: every type's at once, then each event type's own
  // (cached) once a rule says which types it listens to. A server without the route (404)
  // leaves completion off.
  async function loadFields(type) {
    const key = type || '*';
    if (state.fieldsByType[key] !== undefined) return;
    state.fieldsByType[key] = null;
    const r = await UB.api('GET', '/api/v1/rules/fields' + (type ? '?type=' + encodeURIComponent(type) : ''), undefined, { no401: true });
    if (r.ok && r.body && Array.isArray(r.body.fields)) {
      state.fieldsByType[key] = r.body;
      if (!type) state.fields = r.body;
    }
  }

  // envFor is the environment of the rule's types when known, else of every type.
  function envFor() {
    const types = (state.validated && state.validated.types) || (state.rule && state.rule.types) || [];
    const envs = types.map((t) => state.fieldsByType[t]).filter(Boolean);
    if (!envs.length || envs.length !== types.length) {
      types.forEach((t) => loadFields(t));
      return state.fields;
    }
    const seen = new Set(), fields = [];
    for (const e of envs) for (const f of e.fields || []) if (!seen.has(f.path)) { seen.add(f.path); fields.push(f); }
    return { fields, functions: envs[0].functions || [], builtins: envs[0].builtins || [] };
  }

  // token is the dotted name that ends at the caret: what completion replaces.
  function token() {
    const t = src();
    const before = t.value.slice(0, t.selectionStart);
    const m = before.match(/[A-Za-z_][A-Za-z0-9_.]*$/);
    return { text: m ? m[0] : '', start: t.selectionStart - (m ? m[0].length : 0) };
  }

  // candidates are the fields one level below what is typed ("sensor." offers sensor.kind,
  // sensor.metrics, …), and at the top level the functions too.
  function candidates(prefix) {
    const env = envFor();
    if (!env) return [];
    const p = prefix.toLowerCase();
    const dot = prefix.lastIndexOf('.');
    const parent = prefix.slice(0, dot + 1).toLowerCase();
    const out = [];
    for (const f of env.fields || []) {
      const path = (f.path || '').toLowerCase();
      if (!path.startsWith(p) || f.path === prefix) continue;
      if (path.slice(parent.length).includes('.')) continue;
      out.push({ insert: f.path, label: f.path, detail: (f.type || '') + (f.raise_only ? ' · 仅立案字段' : '') });
    }
    if (dot < 0) {
      for (const fn of env.functions || []) {
        if (fn.name && fn.name.toLowerCase().startsWith(p)) out.push({ insert: fn.name + '(', label: fn.name, detail: fn.signature || fn.doc || '' });
      }
      for (const name of env.builtins || []) {
        if (typeof name === 'string' && name.toLowerCase().startsWith(p) && p) out.push({ insert: name + '(', label: name, detail: '内置函数' });
      }
    }
    return out.slice(0, 60);
  }

  function openCompletion() {
    if (!state.fields || src().readOnly) return false;
    const tk = token();
    const items = candidates(tk.text);
    if (!items.length) { closeCompletion(); return false; }
    cmp.open = true; cmp.items = items; cmp.active = 0; cmp.start = tk.start;
    const list = $('complete');
    list.replaceChildren(...items.map((it, i) => {
      const li = el('li', { id: 'cmp-' + i, role: 'option', class: 'option', 'aria-selected': i === 0 ? 'true' : 'false' },
        el('span', { class: 'opt-label' }, it.label), it.detail ? el('span', { class: 'opt-detail' }, it.detail) : null);
      li.addEventListener('mousedown', (e) => { e.preventDefault(); accept(i); });
      return li;
    }));
    list.hidden = false;
    placeCompletion();
    setActive(0);
    return true;
  }

  function closeCompletion() {
    if (!cmp.open && $('complete').hidden) return;
    cmp.open = false;
    $('complete').hidden = true;
    $('complete').replaceChildren();
    src().removeAttribute('aria-activedescendant');
  }

  function setActive(i) {
    cmp.active = (i + cmp.items.length) % cmp.items.length;
    for (const li of $('complete').children) li.setAttribute('aria-selected', li.id === 'cmp-' + cmp.active ? 'true' : 'false');
    const cur = $('cmp-' + cmp.active);
    src().setAttribute('aria-activedescendant', 'cmp-' + cmp.active);
    if (cur) cur.scrollIntoView({ block: 'nearest' });
  }

  function accept(i) {
    const it = cmp.items[i];
    if (!it) return;
    const t = src();
    const end = t.selectionStart;
    t.setRangeText(it.insert, cmp.start, end, 'end');
    closeCompletion();
    t.focus();
    edited();
  }

  // caretPoint is where the caret is inside the editor box: text up to the caret in a hidden
  // copy of the textarea's box, and a probe at its end.
  function caretPoint() {
    const t = src();
    const m = $('measure');
    const probe = el('span', {}, '\u200b');
    m.replaceChildren(document.createTextNode(t.value.slice(0, t.selectionStart)), probe);
    return { top: probe.offsetTop - t.scrollTop, left: probe.offsetLeft - t.scrollLeft, height: probe.offsetHeight };
  }

  function placeCompletion() {
    const list = $('complete');
    const p = caretPoint();
    const wrap = $('editor-wrap');
    const width = Math.min(list.offsetWidth || 320, wrap.clientWidth);
    list.style.top = Math.max(0, p.top + p.height) + 'px';
    list.style.left = Math.max(0, Math.min(p.left, wrap.clientWidth - width)) + 'px';
  }

  // ---- editing ----

  function setDirty(d) {
    state.dirty = d;
    $('dirty').hidden = !d;
  }

  function edited() {
    setDirty(true);
    renderEditor();
    scheduleCheck();
    syncShadowBox();
  }

  function syncShadowBox() {
    const m = src().value.match(/^[ \t]+shadow:[ \t]*(\S+)/m);
    $('shadow').checked = !!(m && /^(true|yes|on)$/i.test(m[1]));
  }

  // setShadow writes raise.shadow into the text: the rule's text is the truth, saving makes
  // it a version like any other change.
  function setShadow(on) {
    if (!editable()) return;
    const t = src();
    let text = t.value;
    if (/^[ \t]+shadow:[ \t]*\S+/m.test(text)) {
      text = text.replace(/^([ \t]+shadow:[ \t]*)\S+/m, '$1' + (on ? 'true' : 'false'));
    } else if (/^raise:\s*\{/m.test(text)) {
      text = text.replace(/^(raise:\s*\{)/m, '$1shadow: ' + on + ', ');
    } else if (/^raise:\s*(#.*)?$/m.test(text)) {
      const ls = text.split('\n');
      const i = ls.findIndex((l) => /^raise:\s*(#.*)?$/.test(l));
      const next = ls[i + 1] || '';
      const indent = (next.match(/^(\s+)/) || [, '  '])[1];
      ls.splice(i + 1, 0, indent + 'shadow: ' + on);
      text = ls.join('\n');
    } else {
      text = text.replace(/\n*$/, '\n') + 'raise:\n  shadow: ' + on + '\n';
    }
    t.value = text;
    edited();
  }

  function wireEditor() {
    const t = src();
    t.addEventListener('input', (e) => {
      edited();
      if (e.data === '.' || (cmp.open && e.data && /[\w.]/.test(e.data))) openCompletion();
      else if (cmp.open) closeCompletion();
    });
    t.addEventListener('scroll', () => { syncScroll(); if (cmp.open) placeCompletion(); });
    t.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== t) closeCompletion(); }, 150));
    t.addEventListener('keydown', (e) => {
      if ((e.ctrlKey || e.metaKey) && (e.key === 's' || e.key === 'S')) {
        e.preventDefault();
        if (editable()) save();
        return;
      }
      if (e.ctrlKey && (e.key === ' ' || e.code === 'Space')) {
        e.preventDefault();
        if (!openCompletion() && !state.fields) $('check-state').textContent = '字段补全暂不可用';
        return;
      }
      if (!cmp.open) return;
      if (e.key === 'ArrowDown') { e.preventDefault(); setActive(cmp.active + 1); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); setActive(cmp.active - 1); }
      else if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); accept(cmp.active); }
      else if (e.key === 'Escape') { e.preventDefault(); closeCompletion(); }
    });
    t.addEventListener('click', () => closeCompletion());
    $('shadow').addEventListener('change', (e) => setShadow(e.target.checked));
    window.addEventListener('resize', fitMessages);
  }

  // ---- saving, enable/disable ----

  async function save() {
    if (!editable()) return;
    const out = $('save-result');
    out.replaceChildren();
    const comment = $('comment').value.trim();
    const q = new URLSearchParams();
    if (comment) q.set('comment', comment);
    let r;
    const body = new Blob([src().value], { type: 'application/yaml' });
    $('save').disabled = true;
    try {
      if (state.rule) {
        q.set('base_version', String(state.baseVersion));
        r = await UB.api('PUT', '/api/v1/rules/' + encodeURIComponent(state.rule.id) + '?' + q, body);
      } else {
        r = await UB.api('POST', '/api/v1/rules?' + q, body);
      }
    } finally { $('save').disabled = !editable(); }
    if (r.ok) {
      const v = r.body.version || {};
      out.className = 'save-result ok';
      out.textContent = r.status === 202 ? `已保存为第 ${v.version} 版，正在生效…` : `已保存为第 ${v.version} 版，引擎已运行此版本。`;
      setDirty(false);
      $('comment').value = '';
      await loadRules();
      await openRule(v.rule_id);
      out.className = 'save-result ok';
      out.textContent = r.status === 202 ? `已保存为第 ${v.version} 版，正在生效…` : `已保存为第 ${v.version} 版，引擎已运行此版本。`;
      return;
    }
    out.className = 'save-result bad';
    if (r.code === 'version_conflict') {
      const reload = el('button', { type: 'button', class: 'secondary' }, '载入最新版本（放弃我的修改）');
      reload.addEventListener('click', () => { setDirty(false); openRule(state.rule.id); });
      const diff = el('button', { type: 'button', class: 'secondary' }, '查看别人保存的修改');
      diff.addEventListener('click', () => showDiff(state.baseVersion, null));
      out.replaceChildren(el('p', {}, `版本冲突：您是在第 ${state.baseVersion} 版上修改的，但此规则已被他人保存了新版本。`),
        el('p', { class: 'muted' }, r.error), el('p', { class: 'row' }, reload, diff));
    } else if (r.code === 'invalid_rule') {
      state.errors = (r.body && r.body.errors) || [];
      renderEditor();
      renderErrors(state.errors.length ? '' : r.error);
      out.textContent = '规则有错误，未保存：' + (state.errors.length ? `共 ${state.errors.length} 处，见上方错误列表` : r.error);
    } else if (r.code === 'rule_exists') {
      out.textContent = '规则编号已存在：请换一个编号，或打开该规则修改。';
    } else if (r.status === 403) {
      out.textContent = '无权保存：' + r.error;
    } else {
      out.textContent = '保存失败：' + r.error;
    }
  }

  async function toggleEnabled() {
    const rule = state.rule;
    if (!rule || !editable()) return;
    if (state.dirty && !confirm('编辑器中的修改尚未保存，启用/停用会以当前已保存版本为准。继续？')) return;
    const verb = rule.enabled ? 'disable' : 'enable';
    const r = await UB.api('POST', `/api/v1/rules/${encodeURIComponent(rule.id)}/${verb}?base_version=${rule.version}`);
    if (!r.ok) {
      $('save-result').className = 'save-result bad';
      $('save-result').textContent = (r.code === 'version_conflict' ? '版本冲突：规则已有新版本，请重新载入。' : '操作失败：') + r.error;
      return;
    }
    UB.toast(rule.enabled ? '规则已停用' : '规则已启用', 'ok');
    setDirty(false);
    await loadRules();
    await openRule(rule.id);
  }

  // ---- dry runs ----

  function sampleEvents(types) {
    const now = new Date().toISOString();
    const g = city.grid;
    const area = g ? { district: g.district, district_name: g.district_name, street: g.street, street_name: g.street_name,
      community: g.community, community_name: g.community_name, grid: g.code, grid_name: g.name } : { district: '', street: '' };
    const t = types[0] || 'city.sensor.reading';
    let ev;
    if (t === 'city.hotline.ticket') {
      ev = { id: 'sample-1', type: t, source: 'studio', time: now, area,
        hotline: { ticket_id: 'sample-1', channel: 'phone', request_type: '投诉', category_code: '0401', content: '楼下夜间施工噪声扰民' } };
    } else if (t === 'city.video.detection') {
      ev = { id: 'sample-1', type: t, source: 'studio', time: now, area,
        video: { camera_id: 'CAM-1', algorithm: 'garbage_overflow', confidence: 0.9, object_count: 1 } };
    } else {
      ev = { id: 'sample-1', type: 'city.sensor.reading', source: 'studio', time: now, area,
        sensor: { device_id: 'WL-1', kind: 'water_level', metrics: { level_cm: 120 }, status: 'alarm' } };
    }
    return JSON.stringify([ev], null, 2);
  }

  function fmt(v) {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // conditionTree shows the value of every &&/||/! part and both sides of every comparison.
  function conditionTree(c) {
    if (!c) return null;
    const val = c.error ? el('span', { class: 'error' }, '错误：' + c.error)
      : el('span', { class: 'val val-' + (c.value === true ? 'true' : c.value === false ? 'false' : 'other') }, fmt(c.value));
    return el('li', {}, el('code', {}, c.expr), ' → ', val,
      c.operands && c.operands.length ? el('ul', { class: 'operands' }, c.operands.map((o) => el('li', {}, el('code', {}, o.expr), ' = ', el('span', { class: 'val' }, fmt(o.value))))) : null,
      c.parts && c.parts.length ? el('ul', {}, c.parts.map(conditionTree)) : null);
  }

  function signalLine(s) {
    return el('li', { class: 'signal' }, s.kind === 'clear' ? badge('解除', 'off') : badge('触发', 'on'), ' ',
      s.severity ? el('span', { class: 'sev sev-' + s.severity }, UB.severityName(s.severity)) : null, ' ',
      s.title || '', s.shadow ? '（影子）' : '', ' ', el('span', { class: 'muted' }, `归并键 ${s.correlation_key || ''} · 分类 ${categoryName(s.category)}`));
  }

  function stateView(st) {
    if (!st) return null;
    const bits = [];
    if (st.window) bits.push(`窗口 计数 ${st.window.count}` + (st.window.sum != null ? ` 和 ${st.window.sum} 均值 ${st.window.avg} 最小 ${st.window.min} 最大 ${st.window.max}` : ''));
    if (st.having != null) bits.push('having ' + (st.having ? '成立' : '不成立'));
    if (st.holding) bits.push('持续中，自 ' + UB.time(st.since));
    if (st.last_seen) bits.push('最近出现 ' + UB.time(st.last_seen));
    bits.push(st.fired ? '已触发' : '未触发');
    return el('p', { class: 'muted' }, '状态：' + bits.join(' · '));
  }

  function renderDryRun(rep) {
    const out = $('dry-result');
    const steps = rep.steps || [];
    out.replaceChildren(
      el('p', { class: 'summary' }, `规则 ${rep.rule_id} 第 ${rep.version} 版：${steps.length} 条事件，触发 ${rep.fired} 次，解除 ${rep.cleared} 次`),
      el('ol', { class: 'steps' }, steps.map((s) => el('li', { class: 'step ' + (s.matched ? 'matched' : 'missed'), dataset: { event: s.event_id } },
        el('p', { class: 'step-head' }, el('strong', {}, s.event_id), ' ', el('span', { class: 'muted' }, s.event_type + ' · ' + UB.time(s.time)), ' ',
          !s.listens ? badge('不监听此类型', 'off') : s.matched ? badge('条件成立', 'on') : badge('条件不成立', 'off'),
          s.late ? badge('迟到', 'bad') : null),
        s.condition ? el('ul', { class: 'why' }, conditionTree(s.condition)) : null,
        s.group ? el('p', { class: 'muted' }, '分组键：' + s.group) : null,
        stateView(s.state),
        s.signals && s.signals.length ? el('ul', { class: 'signals' }, s.signals.map(signalLine)) : null,
        s.errors && s.errors.length ? el('ul', { class: 'error' }, s.errors.map((e) => el('li', {}, e))) : null))),
      rep.after && rep.after.length ? el('div', {}, el('h3', {}, '时钟推进后'), el('ul', { class: 'signals' }, rep.after.map(signalLine))) : '');
  }

  async function dryRun(events) {
    const out = $('dry-result');
    out.replaceChildren(el('p', { class: 'muted' }, '试运行中…'));
    const body = { source: src().value, events };
    const until = $('dry-until').value ? new Date($('dry-until').value) : null;
    if (until && !isNaN(until)) body.until = until.toISOString();
    const r = await UB.api('POST', '/api/v1/rules/dry-run', body);
    if (!r.ok) {
      if (r.code === 'invalid_rule') { state.errors = (r.body && r.body.errors) || []; renderEditor(); renderErrors(''); }
      out.replaceChildren(el('p', { class: 'error', role: 'alert' }, (r.code === 'too_many_jobs' ? '已有试运行或回测在进行，请稍候：' : '试运行失败：') + r.error));
      return;
    }
    renderDryRun(r.body);
  }

  async function dryRunSamples() {
    let events;
    try {
      events = JSON.parse($('samples').value);
      if (!Array.isArray(events)) events = [events];
    } catch (err) {
      $('dry-result').replaceChildren(el('p', { class: 'error', role: 'alert' }, '样例事件不是有效的 JSON：' + err.message));
      return;
    }
    await dryRun(events);
  }

  async function dryRunStored() {
    const n = Math.max(1, Math.min(1000, parseInt($('stored-count').value, 10) || 20));
    const types = (state.validated && state.validated.types) || (state.rule && state.rule.types) || [];
    const events = [];
    for (const t of types) {
      const r = await UB.api('GET', `/api/v1/events?type=${encodeURIComponent(t)}&limit=${n}`);
      if (!r.ok) { $('dry-result').replaceChildren(el('p', { class: 'error', role: 'alert' }, '读取已存事件失败：' + r.error)); return; }
      events.push(...((r.body && r.body.events) || []));
    }
    if (!events.length) { $('dry-result').replaceChildren(el('p', { class: 'muted' }, '没有此规则事件类型的已存事件。')); return; }
    events.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    await dryRun(events.slice(-n));
  }

  // ---- backtests ----

  function localValue(d) {
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  function setDefaultPeriod() {
    const now = new Date(Date.now() + 60 * 1000);
    $('bt-until').value = localValue(now);
    $('bt-since').value = localValue(new Date(now.getTime() - 61 * 60 * 1000));
  }

  async function backtest() {
    const out = $('bt-result');
    const since = new Date($('bt-since').value), until = new Date($('bt-until').value);
    if (isNaN(since) || isNaN(until) || until <= since) {
      out.replaceChildren(el('p', { class: 'error', role: 'alert' }, '请选择有效的时间段：开始时间须早于结束时间（最长 31 天）。'));
      return;
    }
    out.replaceChildren(el('p', { class: 'muted' }, '回测已提交…'));
    const r = await UB.api('POST', '/api/v1/rules/backtest?async=true', { source: src().value, since: since.toISOString(), until: until.toISOString() });
    if (!r.ok) {
      if (r.code === 'invalid_rule') { state.errors = (r.body && r.body.errors) || []; renderEditor(); renderErrors(''); }
      out.replaceChildren(el('p', { class: 'error', role: 'alert' }, (r.code === 'too_many_jobs' ? '已有试运行或回测在进行，请稍候：' : '回测失败：') + r.error));
      return;
    }
    let job = r.body;
    if (job && job.candidate) { renderBacktest(job); return; } // answered synchronously
    state.job = job.id;
    $('bt-run').disabled = true;
    $('bt-cancel').hidden = false;
    $('bt-progress-row').hidden = false;
    try {
      while (job.state === 'running' && state.job === job.id) {
        showProgress(job);
        await new Promise((res) => setTimeout(res, 400));
        const p = await UB.api('GET', '/api/v1/rule-jobs/' + encodeURIComponent(job.id));
        if (!p.ok) { out.replaceChildren(el('p', { class: 'error', role: 'alert' }, '读取回测进度失败：' + p.error)); return; }
        job = p.body;
      }
      showProgress(job);
      if (job.state === 'done') renderBacktest(job.result);
      else if (job.state === 'cancelled') out.replaceChildren(el('p', { class: 'muted' }, '回测已取消。'));
      else out.replaceChildren(el('p', { class: 'error', role: 'alert' }, '回测失败：' + (job.error || job.state)));
    } finally {
      state.job = null;
      $('bt-run').disabled = false;
      $('bt-cancel').hidden = true;
    }
  }

  function showProgress(job) {
    const total = job.events || 0, done = job.done || 0;
    $('bt-progress').max = Math.max(1, total);
    $('bt-progress').value = Math.min(done, Math.max(1, total));
    $('bt-progress-text').textContent = total ? `${done} / ${total} 条` : (job.state === 'running' ? '读取事件…' : '');
  }

  async function cancelBacktest() {
    const id = state.job;
    if (!id) return;
    await UB.api('DELETE', '/api/v1/rule-jobs/' + encodeURIComponent(id));
  }

  function incidentTable(caption, rows, kind) {
    if (!rows.length) return el('p', { class: 'muted bt-' + kind }, caption + '：无');
    return el('div', { class: 'table-wrap' }, el('table', { class: 'bt-' + kind },
      el('caption', {}, `${caption}（${rows.length}）`),
      el('thead', {}, el('tr', {}, ['归并键', '级别', '标题', '分类', '信号数', '首次'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows.map((x) => el('tr', {},
        el('td', {}, x.correlation_key), el('td', {}, x.severity ? el('span', { class: 'sev sev-' + x.severity }, UB.severityName(x.severity)) : ''),
        el('td', {}, x.title || ''), el('td', {}, categoryName(x.category)), el('td', {}, String(x.signals || 0)), el('td', {}, UB.time(x.first)))))));
  }

  // renderBacktest shows what the edited version would have raised against the current one:
  // incidents added, removed, and changed (the same correlation key with another severity,
  // title, category or number of signals).
  function renderBacktest(rep) {
    const out = $('bt-result');
    const cand = rep.candidate || {}, cur = rep.current;
    const head = el('p', { class: 'summary' }, `${UB.time(rep.since)} 至 ${UB.time(rep.until)}：回放 ${rep.events} 条事件` +
      (rep.truncated ? '（超过上限，只回放了最新的事件）' : '') +
      `。编辑版本：${(cand.incidents || []).length} 起事件、${cand.signals} 个信号、${cand.failures} 次失败` +
      (cur ? `；当前第 ${cur.version} 版：${(cur.incidents || []).length} 起事件、${cur.signals} 个信号` : '；此规则尚无当前版本'));
    const parts = [head];
    if (cand.quarantined) parts.push(el('p', { class: 'error' }, '编辑版本被隔离：' + (cand.quarantine_reason || '')));
    if (cand.last_error) parts.push(el('p', { class: 'error' }, '编辑版本最近错误：' + cand.last_error));
    if (cand.shadow) parts.push(el('p', { class: 'muted' }, '编辑版本为影子模式：只记录，不会立案。'));
    if (rep.compare && cur) {
      const byKey = new Map((cur.incidents || []).map((x) => [x.correlation_key, x]));
      const changed = [];
      for (const x of cand.incidents || []) {
        const y = byKey.get(x.correlation_key);
        if (!y) continue;
        const diffs = [];
        if (x.severity !== y.severity) diffs.push(`级别 ${UB.severityName(y.severity)} → ${UB.severityName(x.severity)}`);
        if (x.title !== y.title) diffs.push(`标题「${y.title}」→「${x.title}」`);
        if (x.category !== y.category) diffs.push(`分类 ${y.category} → ${x.category}`);
        if (x.signals !== y.signals) diffs.push(`信号 ${y.signals} → ${x.signals}`);
        if (diffs.length) changed.push({ key: x.correlation_key, diffs });
      }
      const c = rep.compare;
      parts.push(el('p', { class: 'bt-counts' },
        badge(`新增 ${(c.only_candidate || []).length}`, 'on'), ' ', badge(`减少 ${(c.only_current || []).length}`, 'off'), ' ',
        badge(`变化 ${changed.length}`, 'shadow'), ' ', badge(`相同 ${c.both - changed.length}`, 'scope'),
        ` · 事件数差 ${c.incident_delta >= 0 ? '+' : ''}${c.incident_delta} · 信号数差 ${c.signal_delta >= 0 ? '+' : ''}${c.signal_delta}`));
      parts.push(incidentTable('新增的事件（仅编辑版本立案）', c.only_candidate || [], 'added'));
      parts.push(incidentTable('减少的事件（仅当前版本立案）', c.only_current || [], 'removed'));
      parts.push(changed.length ? el('div', { class: 'bt-changed' }, el('h3', {}, `变化的事件（${changed.length}）`),
        el('ul', {}, changed.map((x) => el('li', {}, el('code', {}, x.key), '：', x.diffs.join('；')))))
        : el('p', { class: 'muted bt-changed' }, '变化的事件：无'));
    } else {
      parts.push(incidentTable('编辑版本会立案的事件', cand.incidents || [], 'added'));
    }
    out.replaceChildren(...parts);
  }

  // ---- versions and diffs ----

  async function loadVersions() {
    const rule = state.rule;
    const list = $('versions');
    $('diff').replaceChildren();
    if (!rule) return;
    const r = await UB.api('GET', `/api/v1/rules/${encodeURIComponent(rule.id)}/versions`);
    if (!r.ok) { list.replaceChildren(el('li', { class: 'error' }, '读取版本历史失败：' + r.error)); return; }
    const vs = (r.body.versions || []).slice().reverse();
    const opts = () => vs.map((v) => el('option', { value: String(v.version) }, `第 ${v.version} 版`));
    $('diff-from').replaceChildren(...opts());
    $('diff-to').replaceChildren(...opts());
    if (vs.length > 1) { $('diff-to').value = String(vs[0].version); $('diff-from').value = String(vs[1].version); }
    $('compare-row').hidden = vs.length < 2;
    list.replaceChildren(...vs.map((v) => {
      const diff = v.version > 1 ? el('button', { type: 'button', class: 'secondary small', 'aria-label': `第 ${v.version} 版与第 ${v.version - 1} 版的差异` }, '差异') : null;
      if (diff) diff.addEventListener('click', () => showDiff(v.version - 1, v.version));
      const load = !v.deleted && editable() ? el('button', { type: 'button', class: 'secondary small', 'aria-label': `把第 ${v.version} 版载入编辑器` }, '载入') : null;
      if (load) load.addEventListener('click', () => loadVersion(v.version));
      return el('li', { class: 'version', dataset: { version: v.version } },
        el('span', { class: 'v-head' }, `第 ${v.version} 版 · ${ACTION[v.action] || v.action} · ${v.author} · ${UB.time(v.at)}`),
        v.deleted ? el('span', { class: 'error' }, '（此版本删除了规则）') : null,
        v.comment ? el('span', { class: 'muted v-comment' }, v.comment) : null, el('span', { class: 'v-actions' }, diff, load));
    }));
  }

  async function loadVersion(n) {
    const rule = state.rule;
    const r = await UB.api('GET', `/api/v1/rules/${encodeURIComponent(rule.id)}/versions/${n}`);
    if (!r.ok) { UB.toast('读取版本失败：' + r.error, 'error'); return; }
    if (state.dirty && !confirm('编辑器中有未保存的修改，确定用第 ' + n + ' 版替换？')) return;
    src().value = r.body.source || '';
    edited();
    UB.toast(`已载入第 ${n} 版，保存后成为新版本`);
  }

  async function showDiff(from, to) {
    const rule = state.rule;
    const q = new URLSearchParams();
    if (from) q.set('from', from);
    if (to) q.set('to', to);
    const r = await UB.api('GET', `/api/v1/rules/${encodeURIComponent(rule.id)}/diff?${q}`);
    const out = $('diff');
    if (!r.ok) { out.replaceChildren(el('p', { class: 'error' }, '读取差异失败：' + r.error)); return; }
    const d = r.body;
    out.replaceChildren(el('h3', {}, `第 ${d.from} 版 → 第 ${d.to} 版`),
      d.changes && d.changes.length ? el('div', { class: 'table-wrap' }, el('table', { class: 'changes' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, '字段'), el('th', { scope: 'col' }, '原值'), el('th', { scope: 'col' }, '新值'))),
        el('tbody', {}, d.changes.map((c) => el('tr', {}, el('td', {}, c.field), el('td', {}, el('code', {}, c.from)), el('td', {}, el('code', {}, c.to)))))))
        : el('p', { class: 'muted' }, '字段没有变化'),
      el('pre', { class: 'unified', tabindex: '0', 'aria-label': '逐行差异' }, (d.unified || '').split('\n').map((l) => el('span', {
        class: l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : l.startsWith('@@') ? 'hunk' : '' }, l + '\n'))));
  }

  // ---- start ----

  async function start() {
    const s = await UB.me();
    state.session = s;
    if (UB.can('incidents:read')) await loadCity();
    $('who').textContent = `${s.subject}（${ROLE[s.role] || s.role}${s.district ? ' · ' + districtName(s.district) : ' · 全市'}）`;
    $('new-rule').hidden = !canWrite();
    $('signout').addEventListener('click', () => UB.signOut());
    if (!canWrite()) {
      // The rule API is for rule authors and admins only: nothing here would answer.
      document.querySelectorAll('.studio > section').forEach((s) => { s.hidden = true; });
      document.querySelector('.studio').append(el('section', { class: 'no-access', role: 'alert' },
        el('h2', {}, '无权使用规则工作室'), el('p', {}, `您的角色（${ROLE[s.role] || s.role}）不能查看或编写规则，请联系管理员。`)));
      document.body.dataset.ready = 'true';
      return;
    }
    $('new-rule').addEventListener('click', newRule);
    $('filter').addEventListener('input', renderList);
    $('refresh').addEventListener('click', loadRules);
    // The counters are this instance's and move with the city: read them again now and then.
    setInterval(() => { if (!document.hidden) loadRules(); }, 20000);
    $('save').addEventListener('click', save);
    $('toggle-enabled').addEventListener('click', toggleEnabled);
    $('dry-samples').addEventListener('click', dryRunSamples);
    $('dry-stored').addEventListener('click', dryRunStored);
    $('bt-run').addEventListener('click', backtest);
    $('bt-cancel').addEventListener('click', cancelBacktest);
    $('diff-run').addEventListener('click', () => showDiff(+$('diff-from').value, +$('diff-to').value));
    wireEditor();
    setDefaultPeriod();
    await Promise.all([loadRules(), loadFields()]);
    const want = decodeURIComponent(location.hash.slice(1));
    if (want && want !== 'new' && state.rules.some((r) => r.id === want)) await openRule(want);
    else if (want === 'new' && canWrite()) newRule();
    else if (state.rules.length) await openRule(state.rules[0].id);
    else if (canWrite()) newRule();
    document.body.dataset.ready = 'true';
  }

  start().catch((err) => UB.toast('规则工作室加载失败：' + err.message, 'error'));
})();

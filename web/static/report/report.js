// report.js: the leadership's daily and weekly report (日报/周报) of GET /api/v1/reports, to read
// on screen and to print on A4. Charts are inline SVG built with DOM calls; every text reaches
// the page as a text node.
(() => {
  'use strict';
  const { el } = UB;
  const SVG = 'http://www.w3.org/2000/svg';
  const STAGE = { dispatch: '派遣', sign_for: '签收', handle: '处置', verify: '核查结案', resolve: '办结（全程）' };
  const WEEKDAY = ['周日', '周一', '周二', '周三', '周四', '周五', '周六'];
  const $ = (id) => document.getElementById(id);
  const form = $('picker'), dateInput = $('date'), main = $('report'), csv = $('csv');

  const pct = (r) => (r == null ? '—' : (r * 100).toFixed(1) + '%');
  const mean = (ms) => (ms ? UB.duration(ms / 1000) : '—');

  // svg builds an SVG element; children are nodes or text.
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  // barChart is a horizontal bar chart of rows {label, value, text?, late?} scaled to max (the
  // largest value when not given), as a figure with a caption; null when there are no rows.
  function barChart(title, rows, { max, unit = '' } = {}) {
    if (!rows.length) return null;
    const top = max || Math.max(1, ...rows.map((r) => r.value));
    const W = 640, rowH = 26, labelW = 170, valueW = 70, barW = W - labelW - valueW;
    const H = rows.length * rowH + 8;
    const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, width: W, height: H },
      svg('title', {}, title));
    rows.forEach((r, i) => {
      const y = 4 + i * rowH, w = Math.max(0, Math.round((r.value / top) * barW));
      const label = r.label.length > 13 ? r.label.slice(0, 12) + '…' : r.label;
      chart.append(
        svg('text', { x: labelW - 8, y: y + 17, 'text-anchor': 'end' }, label),
        svg('rect', { class: 'track', x: labelW, y: y + 4, width: barW, height: rowH - 8 }),
        svg('rect', { class: r.late ? 'bar bar-late' : 'bar', x: labelW, y: y + 4, width: w, height: rowH - 8 },
          svg('title', {}, `${r.label}：${r.text ?? r.value + unit}`)),
        svg('text', { x: labelW + barW + 6, y: y + 17 }, r.text ?? r.value + unit));
    });
    return el('figure', {}, chart, el('figcaption', {}, title));
  }

  // table is a table with a caption; cols are [header, value(row), numeric?].
  function table(caption, cols, rows) {
    if (!rows.length) return el('p', { class: 'empty' }, caption + '：本期无');
    return el('table', {},
      el('caption', {}, caption),
      el('thead', {}, el('tr', {}, cols.map(([h, , num]) => el('th', { scope: 'col', class: num ? 'num' : null }, h)))),
      el('tbody', {}, rows.map((r) => el('tr', {}, cols.map(([, v, num]) => el('td', { class: num ? 'num' : null }, v(r)))))));
  }

  const share = (n, total) => (total ? ((n / total) * 100).toFixed(1) + '%' : '—');
  const counts = (caption, what, list, total) => table(caption, [
    [what, (c) => c.name || c.key || '其他'], ['事件数', (c) => c.count, true], ['占比', (c) => share(c.count, total), true]], list);
  const countBars = (list) => list.slice(0, 10).map((c) => ({ label: c.name || c.key || '其他', value: c.count }));

  function tile(label, value, id) {
    return el('div', { class: 'tile' }, el('dt', {}, label), el('dd', { id }, value));
  }

  function sheet(title, ...children) {
    const id = 'h-' + Math.random().toString(36).slice(2, 8);
    return el('section', { class: 'sheet', 'aria-labelledby': id }, el('h2', { id }, title), children);
  }

  function scopeName(r) {
    if (r.district) return ((r.by_district || []).find((d) => d.key === r.district) || {}).name || r.district;
    if (r.grids) return '我的网格';
    return '全市';
  }

  function periodText(r) {
    const start = new Date(r.date + 'T00:00:00+08:00');
    if (r.period === 'week') {
      const end = new Date(start.getTime() + 6 * 86400e3);
      const d = (t) => `${t.getUTCFullYear()}年${t.getUTCMonth() + 1}月${t.getUTCDate()}日`;
      const day = (t) => new Date(t.getTime() + 8 * 3600e3);
      return `${d(day(start))}（周一）至 ${d(day(end))}（周日）`;
    }
    const t = new Date(start.getTime() + 8 * 3600e3);
    return `${t.getUTCFullYear()}年${t.getUTCMonth() + 1}月${t.getUTCDate()}日（${WEEKDAY[t.getUTCDay()]}）`;
  }

  function render(r) {
    const stage = (name) => r.stages.find((s) => s.stage === name) || {};
    const resolve = stage('resolve');
    const kind = r.period === 'week' ? '周报' : '日报';
    document.title = `城市运行${kind} ${r.date} · 城市运行管理中心`;

    const cover = sheet(`城市运行${kind}`,
      el('p', { class: 'meta' }, periodText(r), ' · ', scopeName(r), ' · 统计本期新立案的事件（北京时间）'),
      el('dl', { class: 'tiles' },
        tile('新增事件', String(r.total), 'kpi-total'),
        tile('已办结', String(resolve.completed || 0), 'kpi-resolved'),
        tile('签收按时率', pct(stage('sign_for').on_time_rate), 'kpi-signfor'),
        tile('处置按时率', pct(stage('handle').on_time_rate), 'kpi-handle'),
        tile('平均办结用时', mean(resolve.mean_ms), 'kpi-resolve-time'),
        tile('重复问题', String(r.repeats.length), 'kpi-repeats')),
      el('h3', {}, '事件来源'),
      barChart('按来源的新增事件', countBars(r.by_source)),
      counts('按来源', '来源', r.by_source, r.total));

    const spread = sheet('事件分布',
      el('h3', {}, '按类别'),
      barChart('按类别的新增事件（前十）', countBars(r.by_category)), counts('按类别', '类别', r.by_category, r.total),
      el('h3', {}, '按区'),
      barChart('按区的新增事件', countBars(r.by_district)), counts('按区', '区', r.by_district, r.total));

    const limited = r.stages.filter((s) => s.on_time_rate != null);
    const stages = sheet('各环节时效',
      barChart('各环节按时率', limited.map((s) => ({ label: STAGE[s.stage] || s.stage, value: Math.round(s.on_time_rate * 1000) / 10,
        text: pct(s.on_time_rate), late: s.on_time_rate < 0.9 })), { max: 100 }),
      table('各环节完成数、平均用时与按时率', [
        ['环节', (s) => STAGE[s.stage] || s.stage], ['完成数', (s) => s.completed, true], ['平均用时', (s) => mean(s.mean_ms), true],
        ['考核数', (s) => s.limited, true], ['按时数', (s) => s.on_time, true], ['按时率', (s) => pct(s.on_time_rate), true]], r.stages));

    const gridCols = [['网格', (g) => g.name || g.grid || '网格外'], ['区', (g) => g.district_name || g.district],
      ['事件数', (g) => g.incidents, true], ['超时数', (g) => g.overdue, true]];
    const grids = sheet('问题网格',
      barChart('事件最多的网格', r.worst_grids.map((g) => ({ label: g.name || g.grid || '网格外', value: g.incidents }))),
      table('事件最多的网格（前十）', gridCols, r.worst_grids),
      barChart('超时最多的网格', r.overdue_grids.map((g) => ({ label: g.name || g.grid || '网格外', value: g.overdue, late: true }))),
      table('超时最多的网格（前十，超过任一环节时限即计超时）', gridCols, r.overdue_grids));

    const repeats = sheet('重复问题',
      table(`同一网格同类事件 ${r.min_repeat} 起及以上`, [
        ['网格', (p) => p.grid_name || p.grid || '网格外'], ['类别', (p) => p.category_name || p.category], ['事件数', (p) => p.incidents, true]], r.repeats),
      table(`一事多报（${r.min_reports} 次及以上）`, [
        ['事件', (i) => i.id], ['标题', (i) => i.title], ['报告数', (i) => i.reports, true]], r.reported));

    const rules = sheet('规则命中',
      barChart('各规则立案数', r.rules.slice(0, 10).map((h) => ({ label: h.rule || '人工立案', value: h.incidents }))),
      table('各规则立案数与报告数', [
        ['规则', (h) => h.rule || '人工立案'], ['立案数', (h) => h.incidents, true], ['报告数', (h) => h.reports, true]], r.rules));

    main.replaceChildren(cover, spread, stages, grids, repeats, rules);
  }

  function chosen() {
    const period = form.elements.period.value || 'day';
    const q = new URLSearchParams({ period });
    if (dateInput.value) q.set('date', dateInput.value);
    return q;
  }

  async function load(q) {
    main.setAttribute('aria-busy', 'true');
    $('error').textContent = '';
    const res = await UB.api('GET', '/api/v1/reports?' + q);
    main.setAttribute('aria-busy', 'false');
    if (!res.ok) {
      $('error').textContent = '报告生成失败：' + res.error;
      return;
    }
    const r = res.body;
    dateInput.value = r.date;
    form.elements.period.value = r.period;
    const shown = new URLSearchParams({ period: r.period, date: r.date });
    history.replaceState(null, '', '?' + shown);
    csv.href = '/api/v1/reports?' + shown + '&format=csv';
    render(r);
  }

  async function start() {
    const me = await UB.me();
    $('who').textContent = '当前用户：' + (me.subject || '');
    $('signout').addEventListener('click', UB.signOut);
    $('print').addEventListener('click', () => window.print());
    form.addEventListener('submit', (e) => { e.preventDefault(); load(chosen()); });
    for (const radio of form.elements.period) radio.addEventListener('change', () => load(chosen()));
    const q = new URLSearchParams(location.search);
    const p = new URLSearchParams();
    if (q.get('period')) p.set('period', q.get('period'));
    if (q.get('date')) p.set('date', q.get('date'));
    await load(p);
  }

  start();
})();

// map.js: the desk's small incident map, an SVG drawn from the grids' GeoJSON (the cockpit
// feed's map frame) or, before that arrives, from the grid centroids of GET /api/v1/city. No
// tiles and no CDN: a command centre's network reaches neither.
(() => {
  'use strict';
  const NS = 'http://www.w3.org/2000/svg';
  const W = 480, H = 300;

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, String(v));
    for (const c of children) if (c != null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  let shapes = []; // {code, name, rings: [[[lon, lat], …]], minX, minY, maxX, maxY}

  // setGrids takes the GeoJSON FeatureCollection of a cockpit map frame (WGS-84).
  function setGrids(fc) {
    shapes = [];
    for (const f of (fc && fc.features) || []) {
      const g = f.geometry || {};
      const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
      const rings = [];
      for (const poly of polys) for (const ring of poly) rings.push(ring);
      const p = f.properties || {};
      const s = { code: p.code || f.id, name: p.name || '', rings, minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
      for (const ring of rings) for (const [x, y] of ring) {
        s.minX = Math.min(s.minX, x); s.maxX = Math.max(s.maxX, x);
        s.minY = Math.min(s.minY, y); s.maxY = Math.max(s.maxY, y);
      }
      if (rings.length) shapes.push(s);
    }
  }

  // draw returns an SVG of the incident's surroundings: the grids around it (its own grid and
  // a suggested one outlined), the incident as a dot coloured by severity. grids are the city
  // grids (code, name, centroid) for a map without GeoJSON and for the suggestion's label.
  function draw(inc, { suggest, grids } = {}) {
    const byCode = new Map((grids || []).map((g) => [g.code, g]));
    const mine = inc.area && inc.area.grid;
    const shapeOf = (code) => shapes.find((s) => s.code === code);
    const centreOf = (code) => {
      const s = shapeOf(code);
      if (s) return { lon: (s.minX + s.maxX) / 2, lat: (s.minY + s.maxY) / 2 };
      const g = byCode.get(code);
      return g && g.centroid;
    };
    const at = inc.location || (mine && centreOf(mine));
    const label = '事件位置示意图' + (mine ? '：网格 ' + ((byCode.get(mine) || {}).name || mine) : '：未入格') +
      (suggest && suggest !== mine ? '，建议网格 ' + ((byCode.get(suggest) || {}).name || suggest) : '');
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'map-svg', role: 'img', 'aria-label': label }, svg('title', {}, label));
    root.append(svg('rect', { x: 0, y: 0, width: W, height: H, class: 'map-bg' }));
    if (!at) {
      root.append(svg('text', { x: 16, y: 32, class: 'map-note' }, '无位置信息'));
      return root;
    }
    // The window: about 500 m around the incident, widened to take in its own grid and the
    // suggested one whole, with a margin.
    let minX = at.lon - 0.004, maxX = at.lon + 0.004, minY = at.lat - 0.003, maxY = at.lat + 0.003;
    const other = suggest && suggest !== mine ? centreOf(suggest) : null;
    for (const code of [mine, suggest]) {
      if (!code) continue;
      const s = shapeOf(code), c = centreOf(code);
      const box = s ? [s.minX, s.minY, s.maxX, s.maxY] : c ? [c.lon - 0.003, c.lat - 0.002, c.lon + 0.003, c.lat + 0.002] : null;
      if (!box) continue;
      minX = Math.min(minX, box[0]); minY = Math.min(minY, box[1]); maxX = Math.max(maxX, box[2]); maxY = Math.max(maxY, box[3]);
    }
    const mx = (maxX - minX) * 0.08, my = (maxY - minY) * 0.08;
    minX -= mx; maxX += mx; minY -= my; maxY += my;
    const k = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
    const scale = Math.min(W / ((maxX - minX) * k), H / (maxY - minY));
    const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    const px = (x) => W / 2 + (x - cx) * k * scale;
    const py = (y) => H / 2 - (y - cy) * scale;
    const visible = (s) => s.maxX >= minX && s.minX <= maxX && s.maxY >= minY && s.minY <= maxY;
    const layer = svg('g', {});
    if (shapes.length) {
      for (const s of shapes) {
        if (!visible(s)) continue;
        const d = s.rings.map((ring) => 'M' + ring.map(([x, y]) => px(x).toFixed(1) + ',' + py(y).toFixed(1)).join('L') + 'Z').join('');
        const cls = 'grid' + (s.code === mine ? ' grid-mine' : '') + (s.code === suggest && s.code !== mine ? ' grid-suggest' : '');
        layer.append(svg('path', { d, class: cls }, svg('title', {}, s.name || s.code)));
      }
    } else {
      for (const g of grids || []) {
        const c = g.centroid;
        if (!c || c.lon < minX || c.lon > maxX || c.lat < minY || c.lat > maxY) continue;
        const cls = 'grid-dot' + (g.code === mine ? ' grid-mine' : '') + (g.code === suggest && g.code !== mine ? ' grid-suggest' : '');
        layer.append(svg('circle', { cx: px(c.lon).toFixed(1), cy: py(c.lat).toFixed(1), r: 5, class: cls }, svg('title', {}, g.name || g.code)));
      }
    }
    root.append(layer);
    if (other) {
      root.append(svg('line', { x1: px(at.lon), y1: py(at.lat), x2: px(other.lon), y2: py(other.lat), class: 'map-link' }));
      const right = px(other.lon) > W * 0.6;
      root.append(svg('text', { x: px(other.lon) + (right ? -8 : 8), y: py(other.lat) - 8, class: 'map-label',
        'text-anchor': right ? 'end' : 'start' }, '建议：' + ((byCode.get(suggest) || {}).name || suggest)));
      root.append(svg('circle', { cx: px(other.lon), cy: py(other.lat), r: 4, class: 'map-centre' }));
    }
    root.append(svg('circle', { cx: px(at.lon), cy: py(at.lat), r: 9, class: 'map-dot map-dot-' + (inc.severity || 'blue') }));
    root.append(svg('text', { x: 8, y: H - 10, class: 'map-note' },
      shapes.length ? '网格边界（WGS-84）' : '网格中心点（边界加载中）'));
    return root;
  }

  // nearest is the grid whose centroid is nearest to p (equirectangular distance: fine at a
  // city's scale), among grids.
  function nearest(p, grids) {
    if (!p) return null;
    let best = null, bestD = Infinity;
    const k = Math.cos(p.lat * Math.PI / 180);
    for (const g of grids) {
      if (!g.centroid) continue;
      const dx = (g.centroid.lon - p.lon) * k, dy = g.centroid.lat - p.lat;
      const d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = g; }
    }
    return best && { grid: best, meters: Math.sqrt(bestD) * 111320 };
  }

  window.DeskMap = { setGrids, draw, nearest, hasShapes: () => shapes.length > 0 };
})();

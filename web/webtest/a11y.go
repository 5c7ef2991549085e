package webtest

import (
	"fmt"
	"time"

	"github.com/chromedp/chromedp"
)

// a11yCheck runs in the page and lists what breaks the basics: a form control without a
// label, a button or link without a name, an image without alt text, a positive tabindex
// (which breaks the focus order), severity badges (.sev) whose text contrast is under WCAG
// AA's 4.5:1, and a page wider than its viewport (unusable at 200 % zoom, where the viewport
// is half as wide in CSS pixels).
const a11yCheck = `(() => {
  const out = [];
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const name = (e) => (e.getAttribute('aria-label') || '').trim() ||
    (e.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean).map(id => (document.getElementById(id) || {}).textContent || '').join('').trim() ||
    (e.getAttribute('title') || '').trim();
  const describe = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '');
  for (const e of document.querySelectorAll('input, select, textarea')) {
    if (!visible(e) || e.type === 'hidden') continue;
    const labelled = (e.labels && e.labels.length) || name(e);
    if (!labelled) out.push('no label: ' + describe(e));
  }
  for (const e of document.querySelectorAll('button, a[href], [role=button]')) {
    if (!visible(e)) continue;
    if (!(e.textContent || '').trim() && !name(e) && !e.querySelector('img[alt]:not([alt=""])')) out.push('no name: ' + describe(e));
  }
  for (const e of document.querySelectorAll('img')) if (visible(e) && !e.hasAttribute('alt')) out.push('no alt: ' + describe(e));
  for (const e of document.querySelectorAll('[tabindex]')) if (e.tabIndex > 0) out.push('positive tabindex: ' + describe(e));
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (e) => {
    for (let n = e; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
    }
    return [255, 255, 255];
  };
  for (const e of document.querySelectorAll('.sev')) {
    if (!visible(e)) continue;
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(background(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) out.push('contrast ' + ratio.toFixed(2) + ':1 of ' + describe(e) + ' "' + e.textContent.trim() + '"');
  }
  if (document.documentElement.scrollWidth > innerWidth + 1) out.push('page wider than the viewport: ' + document.documentElement.scrollWidth + ' > ' + innerWidth);
  return out;
})()`

// Accessibility lists what the page in the browser breaks of the basics (labels, names, alt
// text, focus order, severity contrast, no sideways scrolling). An empty list is a pass.
func (b *Browser) Accessibility() []string {
	b.t.Helper()
	return Eval[[]string](b, a11yCheck)
}

// Zoom200 shows the page as at 200 % browser zoom on a screen of size ("1366x768"): the same
// window, half as many CSS pixels each way.
func (b *Browser) Zoom200(size string) {
	b.t.Helper()
	var w, h int64
	if _, err := fmt.Sscanf(size, "%dx%d", &w, &h); err != nil {
		b.t.Fatalf("viewport %q: %v", size, err)
	}
	b.Do("zoom to 200 %", 10*time.Second, chromedp.EmulateViewport(w/2, h/2, chromedp.EmulateScale(2)))
}

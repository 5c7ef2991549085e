// The sign-in page: POST /api/v1/session, then on to the page the user came from (a path of
// this server only) or the page of their role. The session is an HttpOnly cookie the script never
// sees; the CSRF token of the answer is kept for this tab, for the pages that send commands.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  // Where each role works when it signed in without a ?next=: the desk, the phone app, the rule
  // studio, else the wall screen.
  const HOME = { operator: '/desk/', supervisor: '/desk/', admin: '/desk/', worker: '/m/', rule_author: '/rules/' };
  const next = (() => {
    const n = new URLSearchParams(location.search).get('next') || '';
    // Only a path on this server: never another origin, never a protocol-relative URL.
    return n.startsWith('/') && !n.startsWith('//') && !n.startsWith('/\\') ? n : '';
  })();
  const show = (text) => { $('message').textContent = text; };

  $('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const username = $('username').value.trim();
    const password = $('password').value;
    if (!username || !password) {
      show('请输入用户名和密码。');
      return;
    }
    $('submit').disabled = true;
    show('');
    try {
      const r = await fetch('/api/v1/session', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        sessionStorage.setItem('urbanbrain.csrf', body.csrf || '');
        sessionStorage.removeItem('urbanbrain.token');
        location.replace(next || HOME[(body.account || {}).role] || '/');
        return;
      }
      if (r.status === 401) show('用户名或密码错误。');
      else if (body.code === 'locked') show('密码错误次数过多，账号已暂时锁定，请 15 分钟后再试。');
      else if (r.status === 429) show('尝试过于频繁，请稍候再试。');
      else show('登录失败：' + (body.error || r.status));
    } catch (err) {
      show('无法连接服务器，请检查网络后重试。');
    } finally {
      $('submit').disabled = false;
      $('password').value = '';
    }
  });
  // The form works only through this script (the page's CSP allows no form submission, so a
  // password never goes into a URL): the button is enabled once the handler is in place.
  $('submit').disabled = false;
  $('username').focus();
})();

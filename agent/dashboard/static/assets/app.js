// rouse dashboard: a client of the agent's REST API and event stream.
// No framework and no build step. Everything the agent sends is put in the
// page as text (never as HTML), and presentation changes only through
// classes, data-* attributes, the hidden attribute and SVG geometry, as the
// Content-Security-Policy requires.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);
  const SVG = 'http://www.w3.org/2000/svg';

  // ---- state ---------------------------------------------------------------

  const st = {
    health: null,
    services: new Map(), // name -> wire.Service
    order: [], // component names, in the agent's order
    wakes: [], // newest first
    jobs: null, // null: not loaded or no scheduler
    plan: null, // the dry-run plan of the wake under way
    wake: { phase: 'idle', pending: 0, total: 0, startedAt: 0, current: null },
    busy: new Set(), // buttons waiting for an answer: "restart:name"
  };

  // ---- helpers -------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // keepFocus runs a re-render and gives the focus back to the same action
  // button, so a keyboard user does not lose their place.
  function keepFocus(render) {
    const a = document.activeElement;
    const key = a && a.dataset && a.dataset.action ? [a.dataset.action, a.dataset.name] : null;
    render();
    if (key && !document.body.contains(a)) {
      const b = document.querySelector('button[data-action="' + CSS.escape(key[0]) + '"][data-name="' + CSS.escape(key[1]) + '"]');
      if (b) b.focus();
    }
  }

  function badge(state, label) {
    return el('span', { class: 'badge', 'data-state': state, text: label || state.replace('_', ' ') });
  }

  // fmtDur formats milliseconds for people: 850 ms, 1.3 s, 4 min 5 s, 2 h 5 min, 3 d 4 h.
  function fmtDur(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.round(s - m * 60) + ' s';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m - h * 60) + ' min';
    const d = Math.floor(h / 24);
    return d + ' d ' + (h - d * 24) + ' h';
  }

  // rel says how far a time is from now: "12 s ago", "in 3 h 5 min".
  function rel(iso) {
    if (!iso) return '–';
    const t = Date.parse(iso);
    if (Number.isNaN(t) || t <= 0) return '–';
    const d = t - Date.now();
    if (Math.abs(d) < 1500) return 'just now';
    return d < 0 ? fmtDur(-d).replace(/ \d+ (s|min)$/, '') + ' ago' : 'in ' + fmtDur(d).replace(/ \d+ s$/, '');
  }

  function clock(iso) {
    if (!iso) return '';
    const t = new Date(iso);
    const today = new Date();
    const opts = t.toDateString() === today.toDateString()
      ? { hour: '2-digit', minute: '2-digit', second: '2-digit' }
      : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
    return t.toLocaleString(undefined, opts);
  }

  // A <time> whose text is kept relative by the ticker.
  function relTime(iso) {
    const e = el('time', { datetime: iso || '', title: iso ? new Date(iso).toLocaleString() : '', 'data-rel': iso || '' });
    e.textContent = rel(iso);
    return e;
  }

  let noticeTimer = 0;
  function notice(msg, kind) {
    const n = $('#notice');
    n.textContent = msg;
    n.dataset.kind = kind || 'ok';
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, kind === 'error' ? 12000 : 5000);
  }

  // ---- the session ---------------------------------------------------------
  // The login page redirects here with the session secret in the URL
  // fragment (never sent to a server). It is kept in this tab's
  // sessionStorage, which belongs to this origin alone (port included), and
  // sent as a header: no cookie, so no other local port ever receives it.

  const SESSION_KEY = 'rouse.session';
  (() => {
    const m = /^#session=([0-9a-f]{16,128})$/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(SESSION_KEY, m[1]);
      history.replaceState(null, '', location.pathname + location.search);
    }
  })();
  const session = () => sessionStorage.getItem(SESSION_KEY) || '';

  // ---- the API -------------------------------------------------------------

  class APIError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function call(method, path) {
    const init = { method, credentials: 'omit', headers: { Accept: 'application/json', 'X-Rouse-Session': session() } };
    if (method === 'POST') {
      init.headers['Content-Type'] = 'application/json';
      init.body = '{}';
    }
    const resp = await fetch(path, init);
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const e = body && body.error ? body.error : { code: '', message: resp.status + ' ' + resp.statusText };
      if (resp.status === 401) sessionLost();
      throw new APIError(resp.status, e.code, e.message);
    }
    return body;
  }

  function sessionLost() {
    const c = $('#conn');
    c.textContent = 'logged out: run "rouse open" for a new login link';
    c.dataset.live = 'error';
    sessionStorage.removeItem(SESSION_KEY);
    loggedOut = true;
    $('#logout').hidden = true;
    if (events) { events.close(); events = null; }
  }
  let loggedOut = false;

  async function logout(button) {
    button.disabled = true;
    try {
      await call('POST', '/api/v1/logout');
    } catch (_) { /* ended either way */ }
    sessionLost();
  }

  // ---- loading -------------------------------------------------------------

  async function loadHealth() {
    const h = await call('GET', '/api/v1/health');
    st.health = h;
    st.services.clear();
    st.order = [];
    for (const s of h.components || []) {
      st.services.set(s.name, s);
      st.order.push(s.name);
    }
    renderHeader();
    renderComponents();
    if (h.waking && st.wake.phase === 'idle') beginWake(h.last_wake && !h.last_wake.done ? h.last_wake : null, 'restoring');
    if (h.asleep) setPhase('asleep');
    if (!h.waking && !h.asleep && st.wake.phase !== 'idle' && st.wake.phase !== 'done') {
      // The stream missed the end of a wake (a reconnect): settle.
      st.wake.phase = 'done';
    }
    renderWake();
  }

  async function loadWakes() {
    const w = await call('GET', '/api/v1/wakes?limit=30');
    st.wakes = w.wakes || [];
    renderHistory();
    renderWake();
  }

  async function loadJobs() {
    try {
      const j = await call('GET', '/api/v1/jobs');
      st.jobs = j.jobs || [];
    } catch (e) {
      if (e.status === 401) throw e;
      st.jobs = null; // the scheduler is disabled or not running
    }
    renderJobs();
  }

  async function loadAll() {
    try {
      await Promise.all([loadHealth(), loadWakes(), loadJobs()]);
    } catch (e) {
      if (e.status !== 401) notice('Cannot reach the agent: ' + e.message, 'error');
    }
  }

  // A burst of events costs one reload of the details (attempts, errors, ...).
  let reloadTimer = 0;
  function reloadSoon(what) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      const jobs = what === 'all' ? loadJobs() : Promise.resolve();
      Promise.all([loadHealth(), jobs]).catch(() => {});
    }, 400);
  }

  // ---- header --------------------------------------------------------------

  function renderHeader() {
    const h = st.health;
    if (!h) return;
    const o = $('#overall');
    const phase = st.wake.phase;
    let state = h.status;
    let label = { ok: 'all good', degraded: 'degraded', starting: 'starting', error: 'error' }[h.status] || h.status;
    if (h.asleep) { state = 'asleep'; label = 'asleep'; } else if (h.waking || phase === 'restoring' || phase === 'waking') { state = 'restoring'; label = 'recovering'; }
    o.dataset.state = state;
    o.textContent = label;
    const comps = h.components || [];
    const ready = comps.filter((c) => c.state === 'ready' || c.state === 'catching_up').length;
    const active = comps.filter((c) => c.desired !== 'stopped' && c.state !== 'idle').length;
    const idle = comps.filter((c) => c.state === 'idle').length;
    let text = ready + '/' + active + ' ready';
    if (idle) text += ' · ' + idle + ' idle (on demand)';
    const lw = st.wakes[0] || h.last_wake;
    if (lw) {
      text += ' · woke ' + rel(lw.woke_at);
      if (state === 'restoring') text += ' · recovering now';
      else if (lw.done) text += ' · recovered in ' + fmtDur(lw.restore.duration_ms);
    }
    // After a real wake (not the boot restore), the components still
    // starting are reconnecting: said quietly, here and in the tray.
    const cw = st.wake.current;
    if (state === 'restoring' && cw && cw.detected_by && cw.detected_by !== 'boot') {
      const rc = comps.filter((c) => c.desired !== 'stopped' && c.state === 'starting').map((c) => c.name);
      if (rc.length) text = 'Reconnecting ' + rc.join(', ') + '… · ' + text;
    }
    $('#summary').textContent = text;
    const foot = ['rouse ' + (h.version || ''), 'agent up since ' + clock(h.started_at)];
    if (h.store) foot.push('store ' + h.store.state + (h.store.error ? ' (' + h.store.error + ')' : ''));
    if (h.network) foot.push((h.network.online ? 'online' : 'offline') + ' since ' + clock(h.network.since));
    if (h.config) foot.push('config ' + h.config.state + (h.config.path ? ' (' + h.config.path + ')' : '') + (h.config.error ? ': ' + h.config.error : ''));
    $('#foot').textContent = foot.join(' · ');
  }

  // ---- components ----------------------------------------------------------

  function componentRow(s) {
    const details = el('td', { 'data-label': 'Details' });
    if (s.blocked) details.append(el('div', { class: 'blocked', text: s.blocked }));
    else if (s.last_error) details.append(el('div', { class: 'err', text: s.last_error }));
    if (s.next_retry) details.append(el('div', { class: 'muted next-try' }, 'next try ', relTime(s.next_retry)));
    if (s.last_exit) {
      // Its error is usually the last error above: say only what it adds.
      const x = s.last_exit;
      let how = ' (stopped)';
      if (typeof x.code === 'number') how = ' (exit code ' + x.code + ')';
      else if (x.error && x.error !== s.last_error) how = ': ' + x.error;
      else if (x.error) how = '';
      details.append(el('div', { class: 'muted last-exit' }, 'last exit ', relTime(s.last_exit.at), how));
    }
    if (s.health) {
      // The health check: what runs, the last result, failures in a row.
      const hc = s.health;
      const line = el('div', { class: 'muted health' }, 'health: ' + hc.check + ' every ' + (hc.interval_ms / 1000) + 's');
      if (hc.last_check) line.append(' · last ' + hc.last_result + ' ', relTime(hc.last_check));
      else line.append(' · not checked yet');
      if (hc.consecutive_failures) line.append(' · ' + hc.consecutive_failures + ' of ' + hc.retries + ' failures in a row');
      if (hc.health_restarts) line.append(' · restarted ' + hc.health_restarts + '× for failing it');
      details.append(line);
      if (hc.last_output && hc.consecutive_failures) details.append(el('div', { class: 'err health-output', text: hc.last_output }));
    }
    if (s.on_demand) details.append(el('div', { class: 'muted on-demand', text: 'starts on demand at ' + s.on_demand }));
    else if (s.state === 'idle') details.append(el('div', { class: 'muted on-demand', text: 'starts with the on-demand components that need it' }));
    if (s.depends_on && s.depends_on.length) details.append(el('div', { class: 'muted', text: 'needs ' + s.depends_on.join(', ') }));
    if (!details.childNodes.length && s.ready_at && (s.state === 'ready' || s.state === 'catching_up')) details.append(el('div', { class: 'muted' }, 'ready since ', relTime(s.ready_at)));

    const actions = el('div', { class: 'actions' });
    const stopped = s.desired === 'stopped' || s.state === 'idle';
    const btn = (action, label) => {
      const key = action + ':' + s.name;
      const b = el('button', { type: 'button', 'data-action': action, 'data-name': s.name, 'aria-label': label + ' ' + s.name, text: label });
      b.disabled = st.busy.has(key);
      return b;
    };
    if (s.output && s.output.length) actions.append(btn('output', 'Output'));
    if (s.kind !== 'store') {
      if (!stopped) actions.append(btn('restart', 'Restart'));
      actions.append(stopped ? btn('start', 'Start') : btn('stop', 'Stop'));
    }

    const tr = el('tr', { 'data-name': s.name, 'data-state': s.state },
      el('td', { 'data-label': 'Name' }, el('span', { class: 'name', text: s.name }), s.required ? null : el('span', { class: 'muted', text: ' (optional)' })),
      el('td', { 'data-label': 'Kind', text: s.kind }),
      el('td', { 'data-label': 'State' }, badge(s.state)),
      el('td', { 'data-label': 'Since' }, relTime(s.since)),
      el('td', { 'data-label': 'Attempts', class: 'num attempts', text: String(s.attempts) }),
      el('td', { 'data-label': 'Restarts', class: 'num restarts', text: String(s.restarts || 0) }),
      details,
      el('td', { 'data-label': 'Actions', class: 'actions-cell' }, actions));
    return tr;
  }

  function renderComponents() {
    const tbody = $('#components tbody');
    const old = new Map([...tbody.children].map((tr) => [tr.dataset.name, tr.dataset.state]));
    keepFocus(() => tbody.replaceChildren(...st.order.map((n) => {
      const s = st.services.get(n);
      const tr = componentRow(s);
      if (old.has(n) && old.get(n) !== s.state) tr.classList.add('changed');
      return tr;
    })));
  }

  // A state event changes one row at once, before the details reload.
  function applyState(ev) {
    const s = st.services.get(ev.name);
    if (!s) { reloadSoon(); return; }
    s.state = ev.state;
    s.since = new Date().toISOString();
    if (ev.error) s.last_error = ev.error;
    // The event carries the counts as the agent had them at the change, so
    // the row never shows a state with the attempts of the one before.
    if (typeof ev.attempts === 'number') s.attempts = ev.attempts;
    if (typeof ev.restarts === 'number') s.restarts = ev.restarts;
    if (ev.state !== 'waiting') s.blocked = '';
    const tbody = $('#components tbody');
    const old = tbody.querySelector('tr[data-name="' + CSS.escape(ev.name) + '"]');
    const tr = componentRow(s);
    tr.classList.add('changed');
    keepFocus(() => { if (old) old.replaceWith(tr); else tbody.append(tr); });
    renderSteps();
    renderHeader();
    reloadSoon();
    if (outputOf === ev.name) showOutput(ev.name);
  }

  // ---- a component's output ------------------------------------------------

  // outputOf is the component whose output the log view shows, if open.
  let outputOf = '';

  async function showOutput(name) {
    const d = $('#output');
    outputOf = name;
    $('#output-h').textContent = 'Output of ' + name;
    if (!d.open) d.showModal();
    try {
      const s = await call('GET', '/api/v1/services/' + encodeURIComponent(name));
      const lines = s.output || [];
      $('#output-text').textContent = lines.length ? lines.join('\n') : '(no output yet)';
      const meta = ['last ' + lines.length + ' lines', s.state, 'restarts ' + (s.restarts || 0)];
      if (s.last_exit) meta.push('last exit ' + rel(s.last_exit.at) + (s.last_exit.error ? ': ' + s.last_exit.error : ''));
      $('#output-meta').textContent = meta.join(' · ');
      const pre = $('#output-text');
      pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      $('#output-text').textContent = 'Cannot read the output: ' + e.message;
    }
  }

  function closeOutput() {
    outputOf = '';
    $('#output').close();
  }

  // ---- the wake panel ------------------------------------------------------

  function setPhase(p) {
    st.wake.phase = p;
    renderWake();
    renderHeader();
  }

  async function beginWake(w, phase) {
    st.wake.phase = phase;
    st.wake.current = w;
    st.wake.startedAt = w && w.woke_at ? Math.min(Date.parse(w.woke_at), Date.now()) : Date.now();
    st.wake.pending = st.wake.total = 0;
    st.plan = null;
    renderWake();
    renderHeader();
    try {
      st.plan = await call('POST', '/api/v1/wake?dry_run=true');
    } catch (_) {
      st.plan = null; // the estimates are a nicety: the live states still show
    }
    renderWake();
  }

  function renderWake() {
    const sec = $('#wake');
    const w = st.wake;
    sec.dataset.phase = w.phase;
    const h2 = $('#wake-h');
    const text = $('#wake-text');
    const prog = $('#wake-progress');
    if (w.phase === 'sleeping' || w.phase === 'asleep') {
      h2.textContent = 'Going to sleep';
      text.textContent = 'The machine is going to sleep: components are paused and the store is checkpointed. rouse brings them back when it wakes.';
      prog.hidden = true;
      $('#wake-steps').replaceChildren();
      return;
    }
    if (w.phase === 'waking' || w.phase === 'restoring') {
      h2.textContent = 'Recovering';
      const total = w.total || (st.plan ? st.plan.components.filter((c) => !c.skipped).length : 0);
      const done = total ? total - w.pending : 0;
      const elapsed = Date.now() - w.startedAt;
      let t = total ? 'Restoring ' + done + '/' + total + ' · ' + fmtDur(elapsed) + ' so far' : 'Waking up · ' + fmtDur(elapsed) + ' so far';
      if (st.plan && st.plan.estimated_total_ms) {
        const left = st.plan.estimated_total_ms - elapsed;
        t += left > 0 ? ' · about ' + fmtDur(left) + ' to go' : ' · taking longer than usual (' + fmtDur(st.plan.estimated_total_ms) + ' expected)';
      }
      text.textContent = t;
      prog.hidden = false;
      const bar = $('#wake-bar');
      bar.max = total || 1;
      bar.value = done;
      bar.textContent = done + '/' + total;
      $('#wake-count').textContent = done + '/' + total;
      renderSteps();
      return;
    }
    // idle or done: the last wake.
    h2.textContent = 'Last wake';
    prog.hidden = true;
    const lw = st.wakes[0] || (st.health && st.health.last_wake);
    if (!lw) {
      text.textContent = 'No wake recorded yet. rouse records one each time the machine resumes, or when you press "Wake now".';
      $('#wake-steps').replaceChildren();
      return;
    }
    const r = lw.restore || {};
    const parts = [];
    parts.push('Woke ' + rel(lw.woke_at) + ' (' + lw.detected_by + (lw.slept_seconds > 0 ? ', slept ' + fmtDur(lw.slept_seconds * 1000) : '') + ')');
    if (lw.done) {
      let o = 'recovered in ' + fmtDur(r.duration_ms) + ': ' + r.ready + ' ready';
      if (r.timed_out) o += ', ' + r.timed_out + ' timed out';
      if (r.failed) o += ', ' + r.failed + ' failed';
      if (r.skipped) o += ', ' + r.skipped + ' stopped';
      parts.push(o);
    } else {
      parts.push('still restoring');
    }
    text.textContent = parts.join(' · ');
    $('#wake-steps').replaceChildren(...(lw.components || []).map((c) => el('li', {},
      el('span', { class: 'step-name', text: c.name }),
      badge(c.state),
      el('span', { class: 'step-eta', text: 'took ' + fmtDur(c.duration_ms) + (c.waited_ms ? ' after waiting ' + fmtDur(c.waited_ms) : '') + (c.error ? ' · ' + c.error : '') }))));
  }

  // renderSteps shows each planned component with its live state and estimate.
  function renderSteps() {
    const w = st.wake;
    if (w.phase !== 'waking' && w.phase !== 'restoring') return;
    const steps = st.plan ? st.plan.components : st.order.map((n) => ({ name: n, waits_for: [], estimated_ms: 0, samples: 0 }));
    $('#wake-steps').replaceChildren(...steps.filter((p) => !p.skipped).map((p) => {
      const s = st.services.get(p.name);
      const state = s ? s.state : 'unknown';
      let eta = '';
      if (p.samples > 0) eta = 'usually ' + fmtDur(p.estimated_ms) + ' (from ' + p.samples + ' past wake' + (p.samples === 1 ? '' : 's') + ')';
      else if (st.plan) eta = 'no history yet · deadline ' + fmtDur(p.deadline_ms);
      if (p.waits_for && p.waits_for.length && state === 'waiting') eta = 'waiting for ' + p.waits_for.join(', ') + (eta ? ' · ' + eta : '');
      return el('li', { 'data-name': p.name }, el('span', { class: 'step-name', text: p.name }), badge(state), eta ? el('span', { class: 'step-eta', text: eta }) : null);
    }));
  }

  function onWakeEvent(ev) {
    switch (ev.phase) {
      case 'sleeping':
      case 'asleep':
        setPhase(ev.phase);
        break;
      case 'waking':
        beginWake(ev.wake, 'waking');
        break;
      case 'restoring':
        if (st.wake.phase !== 'restoring' && st.wake.phase !== 'waking') beginWake(ev.wake, 'restoring');
        st.wake.phase = 'restoring';
        st.wake.pending = ev.pending;
        st.wake.total = ev.total;
        renderWake();
        renderHeader();
        break;
      case 'done':
        st.wake.phase = 'done';
        if (ev.wake) {
          st.wakes = [ev.wake, ...st.wakes.filter((w) => w.id !== ev.wake.id)];
          renderHistory();
        }
        renderWake();
        renderHeader();
        Promise.all([loadWakes(), loadHealth(), loadJobs()]).catch(() => {});
        break;
      default:
        break;
    }
  }

  // ---- wake history chart --------------------------------------------------

  function renderHistory() {
    const wakes = st.wakes.slice().reverse(); // oldest first
    const box = $('#chart');
    // Drawn at the size it is shown, so text stays at its CSS size.
    const W = Math.max(300, Math.round(box.clientWidth || 720)), H = 250, L = 64, R = 12, top1 = 22, h1 = 80, top2 = 140, h2 = 80;
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-labelledby': 'chart-title' });
    const done = wakes.filter((w) => w.done);
    const title = done.length
      ? wakes.length + ' wakes; recovery took ' + fmtDur(Math.min(...done.map((w) => w.restore.duration_ms))) + ' to ' + fmtDur(Math.max(...done.map((w) => w.restore.duration_ms)))
      : 'No wakes recorded yet';
    root.append(svg('title', { id: 'chart-title' }, title));
    root.append(svg('text', { x: 0, y: 14, class: 'title' }, 'Slept for'));
    root.append(svg('text', { x: 0, y: top2 - 8, class: 'title' }, 'Recovered in'));
    root.append(svg('line', { x1: L, x2: W - R, y1: top1 + h1, y2: top1 + h1, class: 'axis' }));
    root.append(svg('line', { x1: L, x2: W - R, y1: top2 + h2, y2: top2 + h2, class: 'axis' }));
    if (!wakes.length) {
      root.append(svg('text', { x: L + 10, y: top1 + h1 / 2, class: 'empty' }, 'No wakes yet: the history fills in after the next resume or "Wake now".'));
      box.replaceChildren(root);
      renderWakeTable();
      return;
    }
    const maxSlept = Math.max(1000, ...wakes.map((w) => w.slept_seconds * 1000));
    const maxRec = Math.max(1, ...wakes.map((w) => (w.restore ? w.restore.duration_ms : 0)));
    root.append(svg('text', { x: L - 6, y: top1 + 10, class: 'label', 'text-anchor': 'end' }, fmtDur(maxSlept)));
    root.append(svg('text', { x: L - 6, y: top1 + h1, class: 'label', 'text-anchor': 'end' }, '0'));
    root.append(svg('text', { x: L - 6, y: top2 + 10, class: 'label', 'text-anchor': 'end' }, fmtDur(maxRec)));
    root.append(svg('text', { x: L - 6, y: top2 + h2, class: 'label', 'text-anchor': 'end' }, '0'));
    const slot = (W - L - R) / Math.max(wakes.length, 8);
    const bw = Math.max(3, Math.min(36, slot * 0.7));
    wakes.forEach((w, i) => {
      const x = L + i * slot + (slot - bw) / 2;
      const r = w.restore || {};
      const outcome = r.failed ? 'failed' : r.timed_out ? 'timed_out' : 'ok';
      const tip = 'Wake #' + w.id + ' · ' + clock(w.woke_at) + ' · ' + w.detected_by +
        ' · slept ' + (w.slept_seconds > 0 ? fmtDur(w.slept_seconds * 1000) : '–') +
        ' · recovered in ' + (w.done ? fmtDur(r.duration_ms) : '(still restoring)') +
        ' · ' + (r.ready || 0) + ' ready' + (r.timed_out ? ', ' + r.timed_out + ' timed out' : '') + (r.failed ? ', ' + r.failed + ' failed' : '');
      const g = svg('g', { class: 'wake-col', 'data-id': w.id });
      g.append(svg('title', {}, tip));
      const sh = Math.max(w.slept_seconds > 0 ? 2 : 0, (w.slept_seconds * 1000 / maxSlept) * h1);
      if (sh > 0) g.append(svg('rect', { x, y: top1 + h1 - sh, width: bw, height: sh, rx: 2, class: 'bar-slept' }));
      else g.append(svg('text', { x: x + bw / 2, y: top1 + h1 - 4, 'text-anchor': 'middle', class: 'manual' }, { manual: 'M', boot: 'B' }[w.detected_by] || '·'));
      const rh = Math.max(2, ((r.duration_ms || 0) / maxRec) * h2);
      g.append(svg('rect', { x, y: top2 + h2 - rh, width: bw, height: rh, rx: 2, class: 'bar-recovered ' + outcome }));
      root.append(g);
    });
    root.append(svg('text', { x: L, y: H - 4, class: 'label' }, 'oldest'));
    root.append(svg('text', { x: W - R, y: H - 4, class: 'label', 'text-anchor': 'end' }, 'newest · M: manual wake · B: agent start'));
    box.replaceChildren(root);
    renderWakeTable();
  }

  function renderWakeTable() {
    $('#wakes tbody').replaceChildren(...st.wakes.map((w) => {
      const r = w.restore || {};
      const outcome = !w.done ? badge('restoring', 'restoring') : r.failed ? badge('failed', r.failed + ' failed') : r.timed_out ? badge('timed_out', r.timed_out + ' timed out') : badge('ok', r.ready + ' ready');
      return el('tr', { 'data-id': w.id },
        el('td', { 'data-label': 'Woke', text: clock(w.woke_at) }),
        el('td', { 'data-label': 'Detected by', text: w.detected_by }),
        el('td', { 'data-label': 'Slept for', text: w.slept_seconds > 0 ? fmtDur(w.slept_seconds * 1000) : '–' }),
        el('td', { 'data-label': 'Recovered in', text: w.done ? fmtDur(r.duration_ms) : '…' }),
        el('td', { 'data-label': 'Outcome' }, outcome));
    }));
  }

  // ---- jobs ----------------------------------------------------------------

  function renderJobs() {
    const jobs = st.jobs || [];
    $('#jobs-empty').hidden = jobs.length > 0;
    $('#jobs-empty').textContent = st.jobs === null ? 'The scheduler is not running.' : 'No scheduled jobs.';
    $('#jobs').hidden = jobs.length === 0;
    keepFocus(() => $('#jobs tbody').replaceChildren(...jobs.map((j) => {
      const last = el('td', { 'data-label': 'Last run' });
      if (j.last_run) {
        const lr = j.last_run;
        last.append(badge(lr.result), ' ', relTime(lr.ended_at || lr.started_at || lr.scheduled_at));
        if (lr.started_at && lr.ended_at) last.append(el('span', { class: 'muted', text: ' · took ' + fmtDur(Date.parse(lr.ended_at) - Date.parse(lr.started_at)) }));
        if (lr.error) last.append(el('div', { class: 'err', text: lr.error }));
      } else {
        last.append(el('span', { class: 'muted', text: 'never' }));
      }
      if (j.running > 0) last.append(' ', badge('running', 'running now'));
      const key = 'run:' + j.name;
      const b = el('button', { type: 'button', 'data-action': 'run', 'data-name': j.name, 'aria-label': 'Run ' + j.name + ' now', text: 'Run now' });
      b.disabled = st.busy.has(key);
      return el('tr', { 'data-name': j.name },
        el('td', { 'data-label': 'Name' }, el('span', { class: 'name', text: j.name }), j.built_in ? el('span', { class: 'muted', text: ' (built in)' }) : null),
        el('td', { 'data-label': 'Schedule' }, el('code', { text: j.schedule }), el('span', { class: 'muted', text: (j.timezone ? ' ' + j.timezone : '') + ' · misfire ' + j.misfire })),
        el('td', { 'data-label': 'Next run' }, j.next_run ? relTime(j.next_run) : el('span', { class: 'muted', text: '–' }), j.next_run ? el('span', { class: 'muted', text: ' (' + clock(j.next_run) + ')' }) : null),
        last,
        el('td', { 'data-label': 'Actions', class: 'actions-cell' }, el('div', { class: 'actions' }, b)));
    })));
  }

  // ---- actions -------------------------------------------------------------

  const actionPaths = {
    restart: (n) => '/api/v1/services/' + encodeURIComponent(n) + '/restart',
    stop: (n) => '/api/v1/services/' + encodeURIComponent(n) + '/stop',
    start: (n) => '/api/v1/services/' + encodeURIComponent(n) + '/start',
    run: (n) => '/api/v1/jobs/' + encodeURIComponent(n) + '/run',
  };

  async function act(action, name, button) {
    const key = action + ':' + name;
    if (st.busy.has(key)) return;
    st.busy.add(key);
    if (button) button.disabled = true;
    try {
      const r = await call('POST', actionPaths[action](name));
      if (action === 'run') notice('Job ' + name + ': ' + (r.status || 'started') + '.');
      else notice(name + ': ' + r.status + '.', r.status === 'started with timeout' ? 'error' : 'ok');
    } catch (e) {
      notice(name + ': ' + e.message, 'error');
    } finally {
      st.busy.delete(key);
      await Promise.all([loadHealth(), action === 'run' ? loadJobs() : null]).catch(() => {});
    }
  }

  async function wakeNow(button) {
    button.disabled = true;
    try {
      const w = await call('POST', '/api/v1/wake');
      if (st.wake.phase !== 'restoring' && st.wake.phase !== 'waking') beginWake(w, 'waking');
      notice('Recovery started (wake #' + w.id + ').');
    } catch (e) {
      notice('Wake now: ' + e.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    if (b.id === 'wake-now') { wakeNow(b); return; }
    if (b.id === 'logout') { logout(b); return; }
    if (b.id === 'output-close') { closeOutput(); return; }
    if (b.id === 'output-refresh') { if (outputOf) showOutput(outputOf); return; }
    if (b.dataset.action === 'output') { showOutput(b.dataset.name); return; }
    const action = b.dataset.action;
    if (action && actionPaths[action]) act(action, b.dataset.name, b);
  });

  $('#output').addEventListener('close', () => { outputOf = ''; }); // Escape closes it too

  // ---- the event stream ----------------------------------------------------

  // An EventSource cannot send the session header, so each connection
  // opens with a one-time ticket bought with the session; the page
  // reconnects itself (a ticket works once), resuming after the last event.
  let events = null;
  let lastEventID = '';
  async function connect() {
    const c = $('#conn');
    if (loggedOut) return;
    let ticket;
    try {
      ticket = (await call('POST', '/api/v1/event-tickets')).ticket;
    } catch (e) {
      if (e.status !== 401) setTimeout(connect, 2000);
      return;
    }
    let url = '/api/v1/events?ticket=' + encodeURIComponent(ticket);
    if (lastEventID) url += '&last_event_id=' + encodeURIComponent(lastEventID);
    const es = new EventSource(url);
    events = es;
    es.addEventListener('open', () => {
      c.textContent = 'live';
      c.dataset.live = 'yes';
      loadAll(); // catch up on what happened while disconnected
    });
    es.addEventListener('error', () => {
      if (events !== es) return;
      es.close();
      events = null;
      c.textContent = 'reconnecting…';
      c.dataset.live = 'no';
      setTimeout(connect, 2000);
    });
    const parse = (fn) => (m) => {
      if (m.lastEventId) lastEventID = m.lastEventId;
      try { fn(JSON.parse(m.data)); } catch (err) { console.warn('rouse: bad event', err); }
    };
    es.addEventListener('state', parse((ev) => applyState(ev.state)));
    es.addEventListener('wake', parse((ev) => onWakeEvent(ev.wake)));
    es.addEventListener('config', parse(() => { reloadSoon('all'); notice('The config changed.'); }));
  }

  // ---- the ticker: relative times and the wake's elapsed time ---------------

  setInterval(() => {
    for (const t of document.querySelectorAll('time[data-rel]')) t.textContent = rel(t.dataset.rel);
    if (st.wake.phase === 'waking' || st.wake.phase === 'restoring') renderWake();
  }, 1000);

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderHistory, 150);
  });

  if (!session()) {
    sessionLost();
  } else {
    loadAll();
    connect();
  }
})();

// trainerd's web console: one page over the JSON API (api.js), with charts.js's charts.
// The token the user pastes is kept in this tab's sessionStorage (no cookies). Every
// value from the server is put on the page as text, never as markup.
'use strict';

const TOKEN_KEY = 'trainerd.token';
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const STATES = ['QUEUED', 'STARTING', 'RUNNING', 'RESTARTING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
const main = document.getElementById('main');
let me = null;          // {user, admin} once signed in
let leaveView = null;   // stops the current view's timers and streams

// ---- small helpers ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits = 4) {
  if (value === undefined || value === null || Number.isNaN(value)) return '-';
  if (Math.abs(value) >= 1e4 || (Math.abs(value) > 0 && Math.abs(value) < 1e-3)) return value.toExponential(2);
  return Number(value).toPrecision(digits).replace(/\.?0+$/, '');
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - Number(ms)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d`;
}

function when(ms) { return Number(ms) ? new Date(Number(ms)).toLocaleString() : '-'; }

function stateCell(job) {
  const cell = el('td', {}, el('span', { class: `state ${job.state}`, text: job.state }));
  if (job.queue_position) cell.append(' ', el('span', { class: 'muted', text: `#${job.queue_position}` }));
  const why = job.queue_reason || (job.state === 'FAILED' ? job.error : '');
  if (why) cell.append(el('div', { class: 'reason', text: why.split('\n')[0] }));
  return cell;
}

function progressOf(job) {
  const p = job.progress || {};
  const step = Number(p.step || 0), max = Number(p.max_steps || 0);
  return el('span', {}, el('progress', { max: max || 1, value: max ? step : 0, 'aria-label': 'progress' }),
            ' ', el('span', { class: 'muted', text: max ? `${step}/${max}` : '' }));
}

function evalMetric(job) {
  const metrics = (job.progress && job.progress.eval_metrics) || {};
  const name = Object.keys(metrics).find((k) => k !== 'eval_loss' && !/runtime|per_second|epoch/.test(k)) ||
               (metrics.eval_loss !== undefined ? 'eval_loss' : null);
  return name ? `${name.replace(/^eval_/, '')} ${fmt(metrics[name])}` : '-';
}

function mayChange(job) { return me && (me.admin || job.owner === me.user); }

// ---- sign in ----

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  showSignIn(message);
}

function showSignIn(message) {
  if (leaveView) { leaveView(); leaveView = null; }
  document.getElementById('whoami').textContent = '';
  document.getElementById('signout').hidden = true;
  const input = el('input', { type: 'password', id: 'token', autocomplete: 'off', 'aria-label': 'access token',
                              placeholder: 'trd_...' });
  const error = el('p', { class: 'error', id: 'signin-error', role: 'alert', text: message || '' });
  const form = el('form', { class: 'signin', id: 'signin' },
    el('h1', { text: 'Sign in to trainerd' }),
    el('label', { for: 'token', text: 'Your access token (trainerd user add, or ~/.config/trainerd/token)' }),
    input, el('button', { type: 'submit', text: 'Sign in' }), error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await signedIn();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(e.message);
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function signedIn() {
  me = await api('/api/v1/whoami');
  document.getElementById('whoami').textContent = `${me.user}${me.admin ? ' (admin)' : ''}`;
  document.getElementById('signout').hidden = false;
  route();
}

// ---- the jobs ----

function showJobs() {
  const state = el('select', { id: 'state-filter', 'aria-label': 'state' },
    el('option', { value: '', text: 'All states' }),
    el('option', { value: 'QUEUED,STARTING,RUNNING,RESTARTING,CANCELLING', text: 'Active' }),
    ...STATES.map((s) => el('option', { value: s, text: s })));
  const mine = el('input', { type: 'checkbox', id: 'mine' });
  const status = el('span', { class: 'muted', id: 'jobs-status', 'aria-live': 'polite' });
  const body = el('tbody', { id: 'jobs' });
  const saved = JSON.parse(sessionStorage.getItem('trainerd.filters') || '{}');
  state.value = saved.state || '';
  mine.checked = !!saved.mine;
  main.replaceChildren(
    el('h1', { text: 'Jobs' }),
    el('div', { class: 'filters' }, state, el('label', {}, mine, ' Mine only'), status),
    el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, ...['Job', 'Name', 'Owner', 'State', 'Progress', 'Loss', 'Eval', 'Age']
        .map((h, i) => el('th', { scope: 'col', class: i === 2 || i === 7 ? 'hide-narrow' : null, text: h })))),
      body)));
  let timer = null, stopped = false;
  const rows = new Map();  // job id -> its row
  function rowOf(job) {
    let row = rows.get(job.id);
    if (!row) {
      row = el('tr', { 'data-job': job.id },
        el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(job.id)}`, text: job.id })));
      rows.set(job.id, row);
    }
    const p = job.progress || {};
    while (row.children.length > 1) row.lastElementChild.remove();
    row.append(
      el('td', { text: job.name || '-' }),
      el('td', { class: 'hide-narrow', text: job.owner || '-' }),
      stateCell(job),
      el('td', {}, progressOf(job)),
      el('td', { class: 'num', text: fmt(p.loss) }),
      el('td', { text: evalMetric(job) }),
      el('td', { class: 'hide-narrow num', text: age(job.created_unix_ms) }));
    return row;
  }
  async function refresh() {
    clearTimeout(timer);
    sessionStorage.setItem('trainerd.filters', JSON.stringify({ state: state.value, mine: mine.checked }));
    const query = new URLSearchParams({ page_size: '1000' });
    if (state.value) query.set('state', state.value);
    if (mine.checked) query.set('mine', 'true');
    try {
      const list = await api(`/api/v1/jobs?${query}`);
      if (stopped) return;
      const started = performance.now();
      const seen = new Set();
      const ordered = (list.jobs || []).map((job) => { seen.add(job.id); return rowOf(job); });
      for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
      // Rows keep their elements from one refresh to the next, and move only when the
      // order changed: a keyboard user's focus on a job's link survives the refresh.
      const current = [...body.children];
      if (current.length !== ordered.length || current.some((row, i) => row !== ordered[i])) {
        body.replaceChildren(...ordered);
      }
      const count = (list.jobs || []).length;
      status.textContent = `${count} job${count === 1 ? '' : 's'}${list.next_page_token ? ' (newest 1000)' : ''}`;
      // For bench/web_console_bench.py: when the list was on the page, and how long building it took.
      performance.mark('jobs-rendered', { detail: { count, build_ms: performance.now() - started } });
    } catch (e) {
      if (!stopped && e.status !== 401) status.textContent = e.message;
    }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  state.addEventListener('change', refresh);
  mine.addEventListener('change', refresh);
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

// ---- one job ----

function showJob(id) {
  const path = `/api/v1/jobs/${encodeURIComponent(id)}`;
  const heading = el('h1', {}, `Job ${id}`);
  const facts = el('dl', { class: 'facts', id: 'job-facts' });
  const actions = el('div', { class: 'actions', id: 'job-actions' });
  const message = el('p', { class: 'error', role: 'alert', id: 'job-error' });
  const attempts = el('tbody', { id: 'attempts' });
  const chartBox = el('div', { class: 'charts', id: 'charts', 'data-points': '0' });
  const logs = el('div', { class: 'logs', id: 'logs', tabindex: '0', 'aria-label': 'logs', 'aria-live': 'off' });
  const rank = el('select', { id: 'log-rank', 'aria-label': 'rank' }, el('option', { value: '', text: 'All ranks' }));
  const level = el('select', { id: 'log-level', 'aria-label': 'level' },
    ...['debug', 'info', 'warning', 'error'].map((l) => el('option', { value: l, text: l === 'debug' ? 'All levels' : `${l} and above` })));
  const checkpoints = el('tbody', { id: 'checkpoints' });
  const spec = el('pre', { class: 'spec', id: 'spec' });
  main.replaceChildren(heading, message, actions, facts,
    el('h2', { text: 'Curves' }), chartBox,
    el('h2', { text: 'Logs' }), el('div', { class: 'filters' }, rank, level), logs,
    el('h2', { text: 'Attempts' }), el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, ...['#', 'Started', 'Ended', 'Reason', 'Resumed from'].map((h) => el('th', { text: h })))),
      attempts)),
    el('h2', { text: 'Checkpoints' }), el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, ...['Step', 'Path', 'Metrics', 'Best'].map((h) => el('th', { text: h })))),
      checkpoints)),
    el('h2', { text: 'Spec' }), spec);
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);

  const charts = new MetricCharts(chartBox);
  let stopped = false, job = null, attemptsSeen = -1, logStream = null, flushTimer = null;
  let checkpointsFor = '', checkpointsAt = 0;
  // The watch's connection, and how many stored points the charts hold (GetMetrics'
  // stored_points, then one more per metric event): a reconnect sends only newer ones.
  let watchConnection = new AbortController(), metricsOffset = null, metricsLoaded = null;

  function renderJob() {
    heading.replaceChildren(`Job ${job.id} `, el('span', { class: `state ${job.state}`, id: 'job-state', text: job.state }));
    const p = job.progress || {};
    const rows = [['Name', job.name || '-'], ['Owner', job.owner || '-'],
      ['Progress', progressOf(job)], ['Loss', fmt(p.loss)], ['Learning rate', fmt(p.learning_rate)],
      ['Eval', evalMetric(job)], ['Created', when(job.created_unix_ms)], ['Output', job.output_dir || '-'],
      ['Best checkpoint', job.best_checkpoint || '-']];
    if (job.queue_reason) rows.splice(2, 0, ['Waiting', `#${job.queue_position}: ${job.queue_reason}`]);
    if (job.error) rows.splice(2, 0, ['Error', job.error]);
    facts.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]));
    // The buttons stay the same elements (a keyboard user keeps their focus); only
    // whether each may be pressed changes.
    const owner = mayChange(job), finished = TERMINAL.has(job.state);
    if (!actions.childElementCount) {
      actions.append(
        el('button', { type: 'button', id: 'cancel', text: 'Cancel', onclick: () => act(':cancel', 'POST') }),
        el('button', { type: 'button', id: 'resume', text: 'Resume', onclick: () => act(':resume', 'POST') }),
        el('button', { type: 'button', id: 'delete', class: 'danger', text: 'Delete', onclick: () => {
          if (confirm(`Delete job ${job.id} and its records? Its files stay.`)) act('', 'DELETE');
        } }));
    }
    actions.querySelector('#cancel').disabled = !owner || finished || job.state === 'CANCELLING';
    actions.querySelector('#resume').disabled = !owner || !finished;
    actions.querySelector('#delete').disabled = !owner || !finished;
    attempts.replaceChildren(...(job.attempts || []).map((a) => el('tr', {},
      el('td', { text: a.number }), el('td', { text: when(a.started_unix_ms) }),
      el('td', { text: Number(a.ended_unix_ms) ? when(a.ended_unix_ms) : 'running' }),
      el('td', { text: a.reason || '-' }), el('td', { text: a.resumed_from || '-' }))));
    for (let r = rank.options.length - 1; r < (job.resources && job.resources.ranks || 1); ++r) {
      rank.append(el('option', { value: String(r), text: `rank ${r}` }));
    }
    if (!spec.textContent) spec.textContent = JSON.stringify(job.spec, null, 2);
    const attemptCount = (job.attempts || []).length;
    if (attemptCount !== attemptsSeen) {  // a new attempt may replace points of earlier ones
      attemptsSeen = attemptCount;
      metricsLoaded = loadMetrics();
    }
    // Checkpoints: again when the state or the best one changed, else at most every 10 s.
    const checkpointKey = `${job.state}/${job.best_checkpoint}`;
    if (checkpointKey !== checkpointsFor || Date.now() - checkpointsAt > 10000) {
      checkpointsFor = checkpointKey;
      checkpointsAt = Date.now();
      loadCheckpoints();
    }
  }

  async function act(suffix, method) {
    message.textContent = '';
    try {
      await api(`${path}${suffix}`, { method });
      if (method === 'DELETE') { location.hash = '#/'; return; }
      job = await api(path);
      renderJob();
    } catch (e) { message.textContent = e.message; }
  }

  async function loadMetrics() {
    try {
      const metrics = await api(`${path}/metrics`);
      if (stopped) return;
      charts.reset(metrics.points || []);
      metricsOffset = Number(metrics.stored_points);
      watchConnection.abort();  // reconnects from the new offset
      performance.mark('charts-rendered', { detail: { count: (metrics.points || []).length } });
    } catch (e) { if (!stopped) message.textContent = e.message; }
  }

  async function loadCheckpoints() {
    try {
      const list = await api(`${path}/checkpoints`);
      if (stopped) return;
      checkpoints.replaceChildren(...(list.checkpoints || []).map((c) => el('tr', {},
        el('td', { class: 'num', text: c.step }), el('td', { text: c.path }),
        el('td', { text: Object.entries(c.metrics || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(', ') || '-' }),
        el('td', { text: c.is_best ? 'best' : '' }))));
    } catch (e) { /* shown by the next change */ }
  }

  // The job's changes and its metric points as they are stored; reconnects until the
  // job has ended.
  async function watch() {
    while (!stopped) {
      watchConnection = new AbortController();
      const offset = metricsOffset;
      try {
        await followEvents(`${path}/events?metrics_offset=${offset === null ? 0 : offset}`, watchConnection.signal,
          (name, data) => {
            if (name === 'job') {
              job = data;
              renderJob();
            } else if (name === 'metric' && metricsOffset !== null) {
              charts.add(data);
              metricsOffset += 1;
            } else if (name === 'error') {
              message.textContent = data.message;
            }
          });
        if (job && TERMINAL.has(job.state)) return;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      } catch (e) {
        if (stopped) return;
        if (e.name === 'AbortError') continue;  // new offset: reconnect at once
        if (e.status === 401 || e.status === 403 || e.status === 404) {
          message.textContent = e.message;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  // Logs: the last 500 lines, then each new one; the filters reopen the stream.
  function followLogs() {
    if (logStream) logStream.abort();
    const controller = new AbortController();
    logStream = controller;
    logs.replaceChildren();
    let next = 0;
    // Lines arriving together are added in one go, once per frame: measuring whether
    // the view is at its end costs a layout, which one per line would make slow.
    let pending = [];
    const flush = () => {
      if (controller.signal.aborted) return;
      const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(...pending);
      pending = [];
      while (logs.childElementCount > 5000) logs.firstElementChild.remove();
      if (atEnd) logs.scrollTop = logs.scrollHeight;
    };
    const query = () => {
      const q = new URLSearchParams({ follow: 'true' });
      if (next) q.set('since', String(next)); else q.set('tail', '500');
      if (rank.value) q.set('rank', rank.value);
      if (level.value !== 'debug') q.set('level', level.value);
      return q;
    };
    (async () => {
      while (!stopped && !controller.signal.aborted) {
        try {
          await followEvents(`${path}/logs?${query()}`, controller.signal, (name, line) => {
            if (name !== 'line') return;
            next = Number(line.seq) + 1;
            pending.push(el('div', { class: line.level, 'data-seq': line.seq }, `[${line.rank}] ${line.text}`));
            if (pending.length === 1) requestAnimationFrame(flush);
          });
          if (job && TERMINAL.has(job.state)) return;
        } catch (e) {
          if (controller.signal.aborted || e.status === 401 || e.status === 403 || e.status === 404) return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    })();
  }

  rank.addEventListener('change', followLogs);
  level.addEventListener('change', followLogs);
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  const recolour = () => charts.recolour();
  scheme.addEventListener('change', recolour);
  (async () => {
    try {
      job = await api(path);
      renderJob();
      followLogs();
      flushTimer = setInterval(() => charts.flush(), 500);
      await metricsLoaded;  // the watch sends only the points stored after these
      watch();
    } catch (e) {
      message.textContent = e.message;
    }
  })();
  return () => {
    stopped = true;
    scheme.removeEventListener('change', recolour);
    watchConnection.abort();
    if (logStream) logStream.abort();
    clearInterval(flushTimer);
    charts.destroy();
  };
}

// ---- routing ----

function route() {
  if (leaveView) { leaveView(); leaveView = null; }
  if (!token() || !me) { showSignIn(); return; }
  const job = location.hash.match(/^#\/jobs\/([^/]+)$/);
  const sweep = location.hash.match(/^#\/sweeps\/([^/]+)$/);
  if (job) leaveView = showJob(decodeURIComponent(job[1]));
  else if (sweep) leaveView = showSweep(decodeURIComponent(sweep[1]));
  else if (location.hash === '#/sweeps') leaveView = showSweeps();
  else leaveView = showJobs();
}

window.addEventListener('hashchange', () => { if (me) route(); });
document.getElementById('signout').addEventListener('click', () => signOut(''));
if (token()) {
  signedIn().catch((e) => signOut(e.message));
} else {
  showSignIn();
}

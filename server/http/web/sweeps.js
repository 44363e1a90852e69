// The web console's sweeps (docs/sweeps.md): the list, and one sweep's trials sorted by
// the objective with each one's latest decision, its best trial and the steps early
// stopping saved. Both refresh every 2 s; app.js routes to them (#/sweeps, #/sweeps/ID).
'use strict';

function sweepState(sweep) { return (sweep.state || '').replace(/^SWEEP_/, ''); }

function sweepSteps(sweep) {
  const trained = Number(sweep.steps_trained || 0), all = Number(sweep.steps_without_stopping || 0);
  return all ? `${trained} of ${all} (${(100 * trained / all).toFixed(1)}%)` : '-';
}

function sweepBest(sweep) {
  return Number(sweep.best_trial) ? `trial ${sweep.best_trial}: ${sweep.spec.objective.metric} ${fmt(sweep.best_objective)}`
    : '-';
}

// Refreshes `load()` every 2 s until the view is left; returns the view's leave().
function refreshing(load, status) {
  let timer = null, stopped = false;
  async function refresh() {
    try {
      await load(() => stopped);
    } catch (e) {
      if (!stopped && e.status !== 401) status.textContent = e.message;
    }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

function showSweeps() {
  const body = el('tbody', { id: 'sweeps' });
  const status = el('span', { class: 'muted', id: 'sweeps-status', 'aria-live': 'polite' });
  main.replaceChildren(el('h1', { text: 'Sweeps' }), el('div', { class: 'filters' }, status),
    el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, ...['Sweep', 'Name', 'Owner', 'State', 'Searcher', 'Trials', 'Best', 'Steps']
        .map((h) => el('th', { scope: 'col', text: h })))),
      body)));
  return refreshing(async (stopped) => {
    const list = await api('/api/v1/sweeps?page_size=200');
    if (stopped()) return;
    body.replaceChildren(...(list.sweeps || []).map((s) => el('tr', { 'data-sweep': s.id },
      el('td', {}, el('a', { href: `#/sweeps/${encodeURIComponent(s.id)}`, text: s.id })),
      el('td', { text: s.name }), el('td', { text: s.owner }), el('td', { text: sweepState(s) }),
      el('td', { text: s.spec.searcher.name }), el('td', { class: 'num', text: `${s.trials_ended}/${s.spec.n_trials}` }),
      el('td', { text: sweepBest(s) }), el('td', { class: 'num', text: sweepSteps(s) }))));
    const count = (list.sweeps || []).length;
    status.textContent = `${count} sweep${count === 1 ? '' : 's'}`;
  }, status);
}

// Trials with an objective first: the furthest rung, then the best value.
function sortedTrials(sweep) {
  const sign = sweep.spec.objective.direction === 'maximize' ? -1 : 1;
  const has = (t) => t.objective !== undefined && t.objective !== null;
  return [...(sweep.trials || [])].sort((a, b) => {
    if (has(a) !== has(b)) return has(a) ? -1 : 1;
    if (!has(a)) return a.number - b.number;
    if (a.rung !== b.rung) return b.rung - a.rung;
    return sign * (Number(a.objective) - Number(b.objective));
  });
}

function showSweep(id) {
  const path = `/api/v1/sweeps/${encodeURIComponent(id)}`;
  const heading = el('h1', {}, `Sweep ${id}`);
  const message = el('p', { class: 'error', role: 'alert', id: 'sweep-error' });
  const facts = el('dl', { class: 'facts', id: 'sweep-facts' });
  const cancel = el('button', { type: 'button', id: 'sweep-cancel', text: 'Cancel', disabled: true });
  const head = el('tr', {});
  const trials = el('tbody', { id: 'trials' });
  main.replaceChildren(heading, message, el('div', { class: 'actions' }, cancel), facts,
    el('h2', { text: 'Trials' }), el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, head), trials)));
  let sweep = null;
  cancel.onclick = async () => {
    message.textContent = '';
    try { sweep = await api(`${path}:cancel`, { method: 'POST' }); render(); } catch (e) { message.textContent = e.message; }
  };
  function render() {
    heading.replaceChildren(`Sweep ${sweep.id} `, el('span', { class: 'state', id: 'sweep-state', text: sweepState(sweep) }));
    const s = sweep.spec;
    facts.replaceChildren(...[['Name', sweep.name], ['Owner', sweep.owner],
      ['Searcher', s.searcher.name === 'asha' ? `asha (max_length ${s.searcher.max_length}, divisor ${s.searcher.divisor}, `
        + `${s.searcher.max_rungs} rungs)` : s.searcher.name],
      ['Objective', `${s.objective.metric}, ${s.objective.direction}`],
      ['Trials', `${sweep.trials_ended} ended, ${sweep.trials_running} running, of ${s.n_trials}`],
      ['Best', sweepBest(sweep)], ['Best checkpoint', sweep.best_checkpoint || '-'],
      ['Steps trained', sweepSteps(sweep)], ...(sweep.error ? [['Error', sweep.error]] : [])]
      .flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
    cancel.disabled = !(me && (me.admin || sweep.owner === me.user)) || sweep.state !== 'SWEEP_RUNNING';
    const fields = (s.search_space || []).map((p) => p.field.split('.').pop());
    head.replaceChildren(...['Trial', 'Job', 'State', 'Rung', 'Steps', s.objective.metric, ...fields, 'Decision']
      .map((h) => el('th', { scope: 'col', text: h })));
    trials.replaceChildren(...sortedTrials(sweep).map((t) => {
      const decisions = t.decisions || [];
      const last = t.state === 'TRIAL_FAILED' && t.error ? t.error : decisions.length ? decisions[decisions.length - 1].reason : '-';
      return el('tr', { 'data-trial': String(t.number) },
        el('td', { class: 'num', text: t.number }),
        el('td', {}, t.job_id ? el('a', { href: `#/jobs/${encodeURIComponent(t.job_id)}`, text: t.job_id }) : '-'),
        el('td', { text: (t.state || '').replace(/^TRIAL_/, '').toLowerCase() }),
        el('td', { class: 'num', text: t.rung >= 0 ? t.rung : '-' }), el('td', { class: 'num', text: t.steps }),
        el('td', { class: 'num', text: fmt(t.objective) }),
        ...(t.values || []).map((v) => el('td', { text: v.slice(v.indexOf('=') + 1) })),
        el('td', { class: 'decision', text: last }));
    }));
  }
  return refreshing(async (stopped) => {
    const got = await api(path);
    if (stopped()) return;
    sweep = got;
    render();
  }, message);
}

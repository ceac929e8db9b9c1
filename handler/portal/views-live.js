// The live queue of each service (polled every few seconds) with the explanation of
// any task one click away, and the parked messages (operators).
import {api, tenantPath, ApiError} from './api.js';
import {h, replace, title, table, notice, errorNotice, timeTag, formatSeconds, formatClock, showDialog} from './ui.js';
import {presenceCell, phaseCell, strategyLabel, agentAction} from './views-services.js';

// pollMs is how often the live queue is read (a test may shorten it for its tab).
function pollMs() {
  const v = Number(sessionStorage.getItem('teamscc.portal.pollMs'));
  return v >= 200 ? v : 3000;
}

const reasons = {
  Chosen: 'Chosen: offered the task',
  Eligible: 'Eligible, ranked after the chosen',
  LostRace: 'Eligible, but another service reserved the agent first',
  AlreadyTried: 'Offered this task before and did not take it',
  NotMember: 'Not a member of the service',
  Inactive: 'Switched this service off',
  OffDuty: 'Off duty',
  NotOnDuty: 'Not on duty for this service',
  MissingSkill: 'Lacks a required skill',
  ZeroWeight: 'Weight 0',
  NoPresence: 'No presence known',
  Offline: 'Offline',
  PresenceUnknown: 'Presence unknown',
  PresenceStale: 'Presence not read lately',
  DoNotDisturb: 'Do not disturb',
  Presenting: 'Presenting',
  InACall: 'In a call',
  InAConferenceCall: 'In a conference call',
  BusyNotAllowed: 'Busy, and the service does not allow Busy',
  AwayNotAllowed: 'Away, and the service does not allow Away',
  Ringing: 'Ringing with another call',
  Connected: 'On another call',
  RONA: 'Blocked after not answering (RONA)',
  ACW: 'In after-call work',
  ServiceNotRouting: 'The service does not route',
};

const taskStates = {Waiting: ['Waiting', 'warn'], Offered: ['Ringing', 'info'], Connected: ['Connected', 'ok']};

function strategyName(s) {
  return strategyLabel(s).toLowerCase();
}

function badge([text, kind]) {
  return h('span', {class: `badge badge-${kind}`}, text);
}

export async function liveView(ctx) {
  ctx.main.append(title('Live queues'));
  const {data} = await api('GET', tenantPath(ctx.tid, 'services'));
  if (!ctx.alive()) return;
  const services = (data.services || []).filter((s) => !s.pendingDeletion && s.type !== 'None');
  if (services.length === 0) {
    ctx.main.append(notice('info', 'This tenant has no service with a queue.'));
    return;
  }
  const sid = services.some((s) => s.id === ctx.id) ? ctx.id : services[0].id;
  const base = `#/t/${encodeURIComponent(ctx.tid)}/live/`;
  const summary = h('p', {class: 'summary', 'aria-live': 'polite', 'aria-atomic': 'true'});
  const updated = h('p', {class: 'meta'});
  const problem = h('div');
  const tasks = h('div');
  const agents = h('div');
  ctx.main.append(
    h('nav', {'aria-label': 'Services', class: 'tabs'}, h('ul', null, services.map((s) =>
      h('li', null, h('a', {href: base + encodeURIComponent(s.id), 'aria-current': s.id === sid ? 'page' : null}, s.name || s.id))))),
    h('section', {'aria-labelledby': 'queue-h', class: 'live', 'data-service': sid},
      h('h2', {id: 'queue-h'}, `Queue of ${(services.find((s) => s.id === sid) || {}).name || sid}`),
      summary, updated, problem, tasks,
      h('h2', null, 'Agents'), agents));

  let timer = 0;
  let stopped = false;
  ctx.onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });

  const operate = async (path, what) => {
    try {
      await api('POST', path, {body: what.body});
      replace(problem, notice('success', what.done));
    } catch (err) {
      replace(problem, errorNotice(err, what.failed));
    }
    problem.dataset.kind = 'operation';
    await poll(false);
  };

  const render = (q) => {
    const keep = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : '';
    const c = q.counts;
    const text = `${c.waiting} waiting · ${c.ringing} ringing · ${c.connected} connected · ${c.idle} of ${c.agents} agents idle${q.closed ? ' · the service is closed' : ''}`;
    if (summary.textContent !== text) summary.textContent = text;
    replace(updated, 'Updated ', timeTag(q.at, true), '. It refreshes by itself.');
    const names = (refs) => (refs || []).map((r) => r.displayName || r.id).join(', ');
    replace(tasks, table(`Open tasks of ${q.name || q.serviceId}`, [
      ['Task', (t) => [t.kind === 'outbound' ? 'Outbound ' : 'Call ', h('code', null, t.id)]],
      ['State', (t) => badge(taskStates[t.state] || [t.state, 'neutral'])],
      ['Priority', (t) => t.priority],
      ['Waiting', (t) => formatSeconds(t.waitingSeconds)],
      ['Ringing', (t) => names(t.offeredTo)],
      ['Connected', (t) => (t.connectedAgent ? names([t.connectedAgent]) : '')],
      ['Offers', (t) => String(t.attempts)],
      ['', (t) => h('button', {type: 'button', 'data-key': `why-${t.id}`, 'aria-label': `Why: explain task ${t.id}`, onclick: () => explain(ctx, sid, t)}, 'Why?')],
    ], q.tasks, {empty: 'No calls are waiting, ringing or connected.', rowAttrs: (t) => ({'data-task': t.id, 'data-state': t.state})}));
    replace(agents, table(`Agents of ${q.name || q.serviceId}`, [
      ['Name', (a) => a.displayName || a.id],
      ['State', (a) => phaseCell(a.phase, a.until)],
      ['Presence', (a) => presenceCell(a)],
      ['Routing', (a) => (a.offDuty ? 'Off duty' : a.active ? 'Active' : 'Switched off')],
      ['', (a) => agentAction(ctx, a, (path, body, done, failed) => operate(path, {body, done, failed}))],
    ], q.agents, {empty: 'The service has no agents.', rowAttrs: (a) => ({'data-agent': a.id, 'data-phase': a.phase})}));
    if (keep) {
      const again = ctx.main.querySelector(`[data-key="${CSS.escape(keep)}"]`);
      if (again) again.focus();
    }
  };

  const poll = async (schedule = true) => {
    if (stopped) return;
    clearTimeout(timer);
    let again = schedule;
    if (!document.hidden) {
      try {
        const r = await api('GET', tenantPath(ctx.tid, 'services', sid, 'queue'));
        if (stopped) return;
        render(r.data);
        if (problem.dataset.kind === 'poll') replace(problem);
      } catch (err) {
        if (stopped) return;
        problem.dataset.kind = 'poll';
        replace(problem, errorNotice(err, 'The queue could not be read'));
        // A role that may not read it will not be allowed on the next try either.
        if (err instanceof ApiError && (err.status === 403 || err.status === 404 || err.status === 401)) again = false;
      }
    }
    if (again && !stopped) timer = setTimeout(poll, pollMs());
  };
  await poll();
}

// explain shows why a task went where it did: its routing attempt and, for a call,
// its timeline.
async function explain(ctx, sid, t) {
  const body = h('div', {'aria-busy': 'true'}, 'Loading…');
  const opened = showDialog(`Task ${t.id}`, body);
  try {
    const [ex, call] = await Promise.allSettled([
      api('GET', tenantPath(ctx.tid, 'services', sid, 'tasks', t.id, 'explain')),
      t.callId ? api('GET', tenantPath(ctx.tid, 'calls', t.callId)) : Promise.reject(new Error('no call')),
    ]);
    if (ex.status === 'rejected') throw ex.reason;
    const v = ex.value.data;
    const who = (id) => (v.agents && v.agents[id] ? v.agents[id].displayName || v.agents[id].upn || id : id);
    const e = v.explain;
    replace(body,
      h('dl', {class: 'facts'},
        h('dt', null, 'State'), h('dd', null, (taskStates[v.state] || [v.state])[0], v.outcome ? ` (${v.outcome})` : ''),
        h('dt', null, 'Offers so far'), h('dd', null, String(v.attempts))),
      e ? [
        h('h3', null, 'Last routing decision'),
        h('p', {class: 'explain-summary'}, `${formatClock(e.at)}, ${strategyName(e.strategy)}: ${e.considered} agents considered, ${e.eligible} eligible`,
          e.chosen && e.chosen.length ? `; chosen: ${e.chosen.map(who).join(', ')}` : '; nobody chosen', '.'),
        e.note ? h('p', null, e.note) : '',
        table('Agents considered', [
          ['Agent', (a) => who(a.agentId)],
          ['Why', (a) => reasons[a.reason] || a.reason],
          ['Detail', (a) => a.detail || ''],
        ], e.agents || [], {captionVisible: true, class: 'explain'}),
        e.truncated ? h('p', null, `${e.truncated} more agents are not listed.`) : '',
      ] : h('p', null, 'Routing has not looked at this task yet.'),
      (v.history || []).length ? table('Offers', [
        ['Offer', (a) => String(a.attempt)],
        ['Agent', (a) => who(a.agentId)],
        ['When', (a) => timeTag(a.at, true)],
        ['Result', (a) => a.result],
      ], v.history, {captionVisible: true}) : '',
      call.status === 'fulfilled' ? [
        h('h3', null, 'Call timeline'),
        h('ol', {class: 'timeline'}, (call.value.data.steps || []).map((s) => h('li', null, timeTag(s.at, true), ' ', s.what,
          s.agent ? ` · ${(call.value.data.agents || {})[s.agent] ? call.value.data.agents[s.agent].displayName : s.agent}` : '',
          s.detail ? ` (${s.detail})` : ''))),
      ] : '');
  } catch (err) {
    replace(body, errorNotice(err, 'The explanation could not be read'));
  }
  body.setAttribute('aria-busy', 'false');
  await opened;
}

export async function parkedView(ctx) {
  ctx.main.append(title('Parked messages'));
  const filterId = 'parked-function';
  const filter = h('input', {id: filterId, type: 'text', placeholder: 'All functions', autocomplete: 'off'});
  const list = h('div');
  const show = async () => {
    const q = new URLSearchParams({limit: '100'});
    if (filter.value.trim()) q.set('function', filter.value.trim());
    const {data} = await api('GET', `/api/ops/parked?${q}`);
    if (!ctx.alive()) return;
    replace(list, table('Parked messages, newest first', [
      ['Parked', (m) => timeTag(m.parkedAt)],
      ['Function', (m) => m.function],
      ['Reason', (m) => m.reason],
      ['Message', (m) => [m.messageId ? h('code', null, m.messageId) : '', m.deliveryCount ? ` (delivery ${m.deliveryCount})` : '']],
      ['Body', (m) => (m.body ? h('details', null, h('summary', null, 'Show'), h('pre', null, m.body)) : '')],
    ], data.messages || [], {captionVisible: true, empty: 'No message is parked.'}));
  };
  const form = h('form', {class: 'inline-form', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await show();
    } catch (err) {
      replace(list, errorNotice(err, 'The parked messages could not be read'));
    }
  }}, h('div', {class: 'field'}, h('label', {for: filterId}, 'Function'), filter), h('button', {type: 'submit'}, 'Show'));
  ctx.main.append(h('p', null, 'Service Bus messages that can never succeed are kept here with the reason, for platform operators.'), form, list);
  await show();
}

// Views of a tenant's services, agents and outbound tasks.
import {api, tenantPath, ApiError} from './api.js';
import {
  h, replace, title, table, notice, errorNotice, describeError, field, readField, markFieldError, clearFieldErrors,
  timeTag, confirmAction,
} from './ui.js';
import {versionedEditor} from './edit.js';

export const strategies = [
  ['LongestIdle', 'Longest idle'], ['RoundRobin', 'Round robin'], ['Serial', 'Serial (top-down)'],
  ['Broadcast', 'Broadcast to the N longest idle'], ['WeightedRandom', 'Weighted random'], ['BestSkill', 'Best skill match'],
];

export async function servicesView(ctx) {
  ctx.main.append(title('Services'));
  const {data} = await api('GET', tenantPath(ctx.tid, 'services'));
  if (!ctx.alive()) return;
  const base = `#/t/${encodeURIComponent(ctx.tid)}`;
  const numbers = (s) => [...(s.phoneNumbers || []).map((p) => p.number), ...(s.targets || []).filter((x) => x.startsWith('+'))];
  ctx.main.append(
    h('p', null, 'Each service is a queue of calls with its own distribution, prompts, numbers and exit.'),
    table('Services', [
      ['Name', (s) => h('a', {href: `${base}/services/${encodeURIComponent(s.id)}`}, s.name || s.id)],
      ['ID', (s) => h('code', null, s.id)],
      ['Type', (s) => s.type],
      ['Distribution', (s) => (strategies.find(([v]) => v === (s.distribution.strategy || 'LongestIdle')) || [, s.distribution.strategy])[1]],
      ['Numbers', (s) => [...new Set(numbers(s))].join(', ')],
      ['Status', (s) => (s.pendingDeletion ? h('span', {class: 'badge badge-bad'}, 'Pending deletion')
        : s.calls && s.calls.closed ? h('span', {class: 'badge badge-warn'}, 'Closed') : 'Open')],
      ['Queue', (s) => h('a', {href: `${base}/live/${encodeURIComponent(s.id)}`, 'aria-label': `Live queue of ${s.name || s.id}`}, 'Live queue')],
    ], data.services || [], {empty: 'This tenant has no services yet.'}));
}

const serviceForm = [
  ['General', [
    {name: 'name', label: 'Name'},
    {name: 'pstnLicence', label: 'PSTN licence (may transfer to and call phone numbers)', type: 'checkbox'},
    {name: 'team', label: 'Team (group id)', hint: 'Teams-based services: its members are the agents.'},
    {name: 'owners', label: 'Team owners (object ids)', type: 'lines', hint: 'One per line.'},
  ]],
  ['Distribution', [
    {name: 'distribution.strategy', label: 'Who gets a call first', type: 'select', options: strategies, def: 'LongestIdle'},
    {name: 'distribution.broadcastN', label: 'Broadcast rings this many', type: 'int', min: 1, max: 25},
    {name: 'distribution.ringTimeoutSeconds', label: 'Ring timeout (seconds)', type: 'int', min: 5, max: 300, hint: 'Empty: 30.'},
    {name: 'distribution.queueTimeoutSeconds', label: 'Queue timeout (seconds)', type: 'int', min: 0, hint: 'Empty: none.'},
    {name: 'distribution.maxQueueLength', label: 'Longest queue', type: 'int', min: 0, hint: 'Empty: unlimited.'},
    {name: 'distribution.skills', label: 'Required skills', type: 'skills', hint: 'skill:level, comma-separated, for example en:3, fr:2.'},
    {name: 'distribution.allowBusy', label: 'Offer calls to agents who are Busy', type: 'checkbox'},
    {name: 'distribution.allowAway', label: 'Offer calls to agents who are Away', type: 'checkbox'},
    {name: 'distribution.routeOnStalePresence', label: 'Route on stale presence', type: 'checkbox'},
  ]],
  ['No answer and after-call work', [
    {name: 'distribution.rona.enabled', label: 'Block an agent who does not answer (RONA)', type: 'checkbox'},
    {name: 'distribution.rona.persistent', label: 'Keep the block until reset', type: 'checkbox'},
    {name: 'distribution.rona.resetSeconds', label: 'RONA lasts (seconds)', type: 'int', min: 10, max: 28800, hint: 'Empty: 600.'},
    {name: 'distribution.acw.seconds', label: 'After-call work (seconds)', type: 'int', min: 0, hint: 'Empty: 20; 0: none.'},
    {name: 'distribution.acw.allowEarlyEnd', label: 'Agents may end after-call work early', type: 'checkbox'},
    {name: 'distribution.acw.maxExtensionSeconds', label: 'Agents may extend it by up to (seconds)', type: 'int', min: 0},
  ]],
  ['Numbers', [
    {name: 'phoneNumbers', label: 'Phone numbers', type: 'phones'},
    {name: 'targets', label: 'Resource accounts and other targets', type: 'lines', hint: 'One per line: resource account object ids or E.164 numbers.'},
  ]],
  ['Calls flow', [
    {name: 'calls.closed', label: 'Closed: take no calls now', type: 'checkbox'},
    {name: 'calls.prompts.greeting', label: 'Greeting', type: 'url', placeholder: 'https://…/greeting.wav'},
    {name: 'calls.prompts.music', label: 'Queue music', type: 'url'},
    {name: 'calls.prompts.queueTimeout', label: 'Queue timeout announcement', type: 'url'},
    {name: 'calls.prompts.queueFull', label: 'Queue full announcement', type: 'url'},
    {name: 'calls.prompts.closed', label: 'Closed announcement', type: 'url'},
    {name: 'calls.prompts.transferFailed', label: 'Transfer failed announcement', type: 'url'},
    {name: 'calls.exit.action', label: 'Exit', type: 'select', def: 'HangUp',
      options: [['HangUp', 'Hang up'], ['Transfer', 'Transfer to a user or number'], ['Service', 'Queue in another service']]},
    {name: 'calls.exit.target', label: 'Exit target', hint: 'A user\'s object id or an E.164 number (Transfer), a service id (Service).'},
  ]],
];

export async function serviceView(ctx) {
  const heading = title('Service');
  const meta = h('p', {class: 'meta'});
  const editor = versionedEditor({
    noun: 'service',
    url: tenantPath(ctx.tid, 'services', ctx.sid),
    groups: serviceForm,
    cleared: null, // a merge patch: null removes the field (its default applies)
    onChange: (s) => {
      heading.textContent = s.name || s.id;
      replace(meta, 'Service ', h('code', null, s.id), ` · ${s.type} · version ${s.version}`,
        s.updatedAt ? [' · updated ', timeTag(s.updatedAt)] : '',
        s.pendingDeletion ? [' · ', h('span', {class: 'badge badge-bad'}, 'Pending deletion')] : '');
    },
  });
  await editor.load();
  if (!ctx.alive()) return;
  ctx.main.append(heading, meta,
    h('p', null, h('a', {href: `#/t/${encodeURIComponent(ctx.tid)}/live/${encodeURIComponent(ctx.sid)}`}, 'Show the live queue'),
      ' · ', h('a', {href: `#/t/${encodeURIComponent(ctx.tid)}/services`}, 'All services')),
    editor.form);
}

export async function agentsView(ctx) {
  ctx.main.append(title('Agents'));
  const [agents, presence] = await Promise.allSettled([
    api('GET', tenantPath(ctx.tid, 'agents')),
    api('GET', tenantPath(ctx.tid, 'presence')),
  ]);
  if (!ctx.alive()) return;
  if (agents.status === 'rejected') throw agents.reason;
  const byID = new Map();
  if (presence.status === 'fulfilled') for (const p of presence.value.data.agents || []) byID.set(p.agentId, p);
  const list = agents.value.data.agents || [];
  ctx.main.append(
    h('p', null, 'Every agent with their routing profile, where they are in the routing cycle and the Teams presence routing sees now. ',
      h('a', {href: `#/t/${encodeURIComponent(ctx.tid)}/live`}, 'Live queues'), ' show who rings and who is connected.'),
    presence.status === 'rejected' ? errorNotice(presence.reason, 'Presence is not shown') : '',
    table('Agents', [
      ['Name', (a) => a.displayName || a.id],
      ['UPN', (a) => a.upn || ''],
      ['State', (a) => phaseCell(a.phase, a.phaseUntil)],
      ['Presence', (a) => presenceCell(byID.get(a.id))],
      ['Services', (a) => (a.services || []).map((s) => (a.active && a.active[s] === false ? `${s} (inactive)` : s)).join(', ')],
      ['Duty', (a) => (a.duty && a.duty.offDuty ? h('span', {class: 'badge badge-warn'}, 'Off duty')
        : ['On duty', a.duty && a.duty.services && a.duty.services.length ? ` for ${a.duty.services.join(', ')}` : ''])],
      ['Skills', (a) => Object.entries(a.skills || {}).map(([k, v]) => `${k} ${v}`).join(', ')],
    ], list, {empty: 'No agents yet.', rowAttrs: (a) => ({'data-agent': a.id})}));
}

const phases = {
  Idle: ['Idle', 'ok'], Ringing: ['Ringing', 'warn'], Connected: ['On a call', 'info'], RONA: ['RONA', 'bad'], ACW: ['After-call work', 'neutral'],
};

// phaseCell shows where an agent is in the routing cycle, and until when.
export function phaseCell(phase, until) {
  const [text, kind] = phases[phase] || [phase || 'Unknown', 'neutral'];
  return [h('span', {class: `badge badge-${kind}`}, text), until && phase !== 'Connected' ? [' until ', timeTag(until, true)] : ''];
}

// presenceCell shows an agent's presence: availability, activity, when read.
export function presenceCell(p) {
  if (!p) return '';
  const av = p.availability || 'PresenceUnknown';
  return h('span', {class: `presence presence-${av.toLowerCase()}`},
    h('span', {class: 'dot', 'aria-hidden': 'true'}), words(av), p.activity && p.activity !== av ? ` (${words(p.activity)})` : '');
}

// words spells Teams' presence values as words: "BeRightBack" reads "Be right back".
export function words(s) {
  if (s === 'PresenceUnknown') return 'Unknown';
  const w = s.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/([A-Z])([A-Z][a-z])/g, '$1 $2').toLowerCase();
  return w.charAt(0).toUpperCase() + w.slice(1);
}

export async function outboundView(ctx) {
  ctx.main.append(title('Outbound'));
  const {data} = await api('GET', tenantPath(ctx.tid, 'services'));
  if (!ctx.alive()) return;
  const services = (data.services || []).filter((s) => s.type !== 'None' && !s.pendingDeletion);
  if (services.length === 0) {
    ctx.main.append(notice('info', 'This tenant has no service that takes outbound tasks.'));
    return;
  }
  const pickId = 'outbound-service';
  const pick = h('select', {id: pickId}, services.map((s) => h('option', {value: s.id}, s.name || s.id)));
  const list = h('div', {'aria-live': 'polite'});
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'edit', novalidate: true},
    h('fieldset', null, h('legend', null, 'Schedule a task'),
      h('div', {class: 'grid'},
        field({name: 'customer', label: 'Customer', hint: 'An E.164 number (+41441234567) or a Teams user\'s UPN.'}, ''),
        field({name: 'due', label: 'Due', type: 'datetime-local', hint: 'Your local time; empty: as soon as possible.'}, ''),
        field({name: 'priority', label: 'Priority', type: 'select', options: ['Normal', 'High', 'Strict']}, 'Normal'),
        field({name: 'taskId', label: 'Task id', hint: 'Empty: one is made up.'}, ''),
        field({name: 'notes', label: 'Notes for the agent', type: 'textarea'}, ''))),
    status, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Schedule')));

  const show = async () => {
    const sid = pick.value;
    try {
      const r = await api('GET', tenantPath(ctx.tid, 'services', sid, 'outbound'));
      if (!ctx.alive()) return;
      replace(list, table(`Scheduled and running outbound tasks of ${pick.selectedOptions[0].textContent}`, [
        ['Task', (t) => h('code', null, t.taskId)],
        ['Customer', (t) => t.customer],
        ['Due', (t) => timeTag(t.due)],
        ['Priority', (t) => t.priority],
        ['State', (t) => t.state],
        ['Notes', (t) => t.notes || ''],
        ['', (t) => (t.state === 'Scheduled' ? h('button', {type: 'button', class: 'danger', 'aria-label': `Cancel task ${t.taskId}`, onclick: () => cancel(t)}, 'Cancel') : '')],
      ], r.data.tasks || [], {captionVisible: true, empty: 'No outbound task is scheduled.', rowAttrs: (t) => ({'data-task': t.taskId})}));
    } catch (err) {
      replace(list, errorNotice(err, 'The tasks could not be read'));
    }
  };
  const cancel = async (t) => {
    if (!(await confirmAction('Cancel this task?', `Task ${t.taskId} will not be called, and its slot is freed.`, 'Cancel the task'))) return;
    try {
      await api('DELETE', tenantPath(ctx.tid, 'services', pick.value, 'outbound', t.taskId));
      replace(status, notice('success', `Task ${t.taskId} was cancelled.`));
    } catch (err) {
      replace(status, errorNotice(err, 'Not cancelled'));
    }
    await show();
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const val = (n) => readField(form.elements.namedItem(n));
    const due = val('due');
    const body = {
      taskId: val('taskId') || `portal-${Date.now().toString(36)}`,
      customer: val('customer'),
      due: due ? new Date(due).toISOString() : new Date().toISOString(),
      priority: val('priority'),
    };
    if (val('notes')) body.notes = val('notes');
    try {
      const r = await api('POST', tenantPath(ctx.tid, 'services', pick.value, 'outbound'), {body});
      replace(status, notice('success', r.status === 201 ? `Task ${r.data.taskId} is scheduled.` : `Task ${r.data.taskId} was scheduled already.`));
      form.reset();
      await show();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'OutboundLimitReached') {
        replace(status, notice('error', `Not scheduled: the service has ${err.body.error.current} of at most ${err.body.error.limit} tasks scheduled or running.`));
        return;
      }
      if (err instanceof ApiError && err.field) markFieldError(form, err.field, describeError(err));
      replace(status, errorNotice(err, 'Not scheduled'));
    }
  });
  pick.addEventListener('change', show);
  ctx.main.append(h('div', {class: 'field picker'}, h('label', {for: pickId}, 'Service'), pick), list, form);
  await show();
}

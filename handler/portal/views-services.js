// Views of a tenant's services, agents and outbound tasks.
import {api, tenantPath, ApiError} from './api.js';
import {
  h, replace, title, table, notice, errorNotice, field, clearFieldErrors, value, showError,
  timeTag, confirmAction, uid,
} from './ui.js';
import {versionedEditor} from './edit.js';

export const strategies = [
  ['LongestIdle', 'Longest idle'], ['RoundRobin', 'Round robin'], ['Serial', 'Serial (top-down)'],
  ['Broadcast', 'Broadcast to the N longest idle'], ['WeightedRandom', 'Weighted random'], ['BestSkill', 'Best skill match'],
];

// strategyLabel names a distribution strategy in words.
export function strategyLabel(s) {
  return (strategies.find(([v]) => v === (s || 'LongestIdle')) || [, s])[1];
}

// agentAction is the button that ends an agent's RONA or after-call work ("" in the
// other phases); run(path, body, done, failed) sends it and says how it went.
export function agentAction(ctx, a, run) {
  const who = a.displayName || a.id;
  if (a.phase === 'RONA') {
    return h('button', {type: 'button', 'data-key': `rona-${a.id}`, onclick: () => run(tenantPath(ctx.tid, 'agents', a.id, 'rona', 'reset'), undefined,
      `RONA of ${who} was reset.`, 'RONA not reset')}, 'Reset RONA');
  }
  if (a.phase === 'ACW') {
    return h('button', {type: 'button', 'data-key': `acw-${a.id}`, onclick: () => run(tenantPath(ctx.tid, 'agents', a.id, 'acw'), {action: 'end'},
      `After-call work of ${who} was ended.`, 'After-call work not ended')}, 'End after-call work');
  }
  return '';
}

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
      ['Distribution', (s) => strategyLabel(s.distribution.strategy)],
      ['Numbers', (s) => [...new Set(numbers(s))].join(', ')],
      ['Status', (s) => (s.pendingDeletion ? h('span', {class: 'badge badge-bad'}, 'Pending deletion')
        : s.calls && s.calls.closed ? h('span', {class: 'badge badge-warn'}, 'Closed') : 'Open')],
      ['Queue', (s) => h('a', {href: `${base}/live/${encodeURIComponent(s.id)}`, 'aria-label': `Live queue of ${s.name || s.id}`}, 'Live queue')],
    ], data.services || [], {empty: 'This tenant has no services yet.'}),
    newServiceForm(ctx));
}

// syncSummary says what a Team sync did, in words.
function syncSummary(r) {
  return `${r.members} members in the Team: ${r.added} added, ${r.removed} removed as agents` +
    (r.ownersAdded || r.ownersRemoved ? `, ${r.ownersAdded} owners added, ${r.ownersRemoved} removed` : '') + '.';
}

// newServiceForm creates a service (tenant admins, partner admins, operators); a
// Teams-based one naming its Team has its members as agents when it opens.
function newServiceForm(ctx) {
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'edit', novalidate: true, 'aria-labelledby': 'new-service'},
    h('h2', {id: 'new-service'}, 'New service'),
    h('div', {class: 'grid'},
      field({name: 'id', label: 'Service id', hint: 'a-z, 0-9 and hyphens, up to 40; it cannot change later.'}, ''),
      field({name: 'name', label: 'Name'}, ''),
      field({name: 'type', label: 'Type', type: 'select', options: [['TeamsBased', 'Teams-based: a Team\'s members are its agents'],
        ['SkillBased', 'Skill-based: agents are added one by one'], ['None', 'None: no queue (transfers only)']]}, 'TeamsBased'),
      field({name: 'team', label: 'Team (group id)', hint: 'Teams-based services: its members become the agents.'}, '')),
    status, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Create the service')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const body = {id: value(form, 'id'), name: value(form, 'name'), type: value(form, 'type')};
    if (value(form, 'team')) body.team = value(form, 'team');
    replace(status, notice('info', 'Creating…'));
    try {
      const {data} = await api('POST', tenantPath(ctx.tid, 'services'), {body});
      const said = [`Service ${data.name} was created.`, data.sync ? syncSummary(data.sync) : '', ...(data.warnings || [])];
      ctx.sayNext(data.warnings && data.warnings.length ? 'warning' : 'success', said.filter(Boolean).join(' '));
      ctx.go(`#/t/${encodeURIComponent(ctx.tid)}/services/${encodeURIComponent(data.id)}`);
    } catch (err) {
      showError(form, status, err, 'Not created');
    }
  });
  return form;
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
    url: tenantPath(ctx.tid, 'services', ctx.id),
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
  const agents = h('section', {'aria-labelledby': 'service-agents'});
  ctx.main.append(heading, meta,
    h('p', null, h('a', {href: `#/t/${encodeURIComponent(ctx.tid)}/live/${encodeURIComponent(ctx.id)}`}, 'Show the live queue'),
      ' · ', h('a', {href: '#service-agents'}, 'Its agents'),
      ' · ', h('a', {href: `#/t/${encodeURIComponent(ctx.tid)}/services`}, 'All services')),
    editor.form, agents);
  await serviceAgents(ctx, editor.resource(), agents);
}

// serviceAgents shows a service's agents: a Teams-based service's Team members (with
// a sync now), a skill-based service's agents (added from the directory, removed).
async function serviceAgents(ctx, svc, box) {
  if (svc.type === 'None') return;
  const teams = svc.type === 'TeamsBased';
  const status = h('div', {class: 'form-status'});
  const list = h('div');
  const show = async () => {
    try {
      const {data} = await api('GET', tenantPath(ctx.tid, 'agents'));
      if (!ctx.alive()) return;
      const mine = (data.agents || []).filter((a) => (teams ? a.services : (a.duty && a.duty.services) || []).includes(svc.id));
      replace(list, table(`Agents of ${svc.name || svc.id}`, [
        ['Name', (a) => h('a', {href: agentHref(ctx, a.id)}, a.displayName || a.id)],
        ['UPN', (a) => a.upn || ''],
        ['State', (a) => phaseCell(a.phase, a.phaseUntil)],
        [teams ? 'Takes its calls' : 'Skills', (a) => (teams ? (a.active && a.active[svc.id] === false ? 'No: switched off' : 'Yes')
          : Object.entries(a.skills || {}).map(([k, v]) => `${k} ${v}`).join(', '))],
        ...(teams ? [] : [['', (a) => h('button', {type: 'button', class: 'danger', 'aria-label': `Remove ${a.displayName || a.id} from the service`,
          onclick: () => remove(a)}, 'Remove')]]),
      ], mine, {empty: teams ? 'No members yet: sync with the Team.' : 'No agents yet: add some from the directory.',
        rowAttrs: (a) => ({'data-agent': a.id})}));
    } catch (err) {
      replace(list, errorNotice(err, 'The agents could not be read'));
    }
  };
  const remove = async (a) => {
    if (!(await confirmAction('Remove this agent?', `${a.displayName || a.id} stops receiving calls of ${svc.name || svc.id}; their history stays.`, 'Remove'))) return;
    try {
      await api('DELETE', tenantPath(ctx.tid, 'services', svc.id, 'agents', a.id));
      replace(status, notice('success', `${a.displayName || a.id} was removed.`));
    } catch (err) {
      replace(status, errorNotice(err, 'Not removed'));
    }
    await show();
  };
  let controls;
  if (teams) {
    controls = h('p', null, h('button', {type: 'button', onclick: async () => {
      replace(status, notice('info', 'Syncing with the Team…'));
      try {
        const {data} = await api('POST', tenantPath(ctx.tid, 'services', svc.id, 'members', 'sync'));
        replace(status, notice('success', syncSummary(data)));
      } catch (err) {
        replace(status, errorNotice(err, 'Not synced'));
      }
      await show();
    }}, 'Sync with the Team now'));
  } else {
    controls = addAgentForm(ctx, svc, status, show);
  }
  replace(box, h('h2', {id: 'service-agents', tabindex: '-1'}, 'Agents'),
    h('p', null, teams ? 'The members of the service\'s Team; the directory sync follows it every few minutes.'
      : 'People of the tenant\'s directory who take this service\'s calls, as their skills match.'),
    controls, status, list);
  await show();
}

// addAgentForm adds a directory user to a skill-based service: the name field
// suggests people of the directory as the admin types.
function addAgentForm(ctx, svc, status, show) {
  const listId = uid('people');
  const people = h('datalist', {id: listId});
  const input = field({name: 'user', label: 'Add a person', hint: 'Start typing a name, UPN or mail, or paste an object id.'}, '');
  const control = input.querySelector('input');
  control.setAttribute('list', listId);
  let timer = 0;
  let asked = '';
  control.addEventListener('input', () => {
    clearTimeout(timer);
    const q = control.value.trim();
    if (q.length < 2 || q === asked) return;
    timer = setTimeout(async () => {
      asked = q;
      try {
        const {data} = await api('GET', `${tenantPath(ctx.tid, 'directory', 'users')}?search=${encodeURIComponent(q)}&$top=10`);
        replace(people, (data.value || []).map((u) => h('option', {value: u.upn || u.id}, u.displayName || u.upn)));
      } catch {
        replace(people); // suggestions are a help; adding still works by UPN or id
      }
    }, 250);
  });
  const form = h('form', {class: 'inline-form', novalidate: true}, input, people, h('button', {type: 'submit', class: 'primary'}, 'Add'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    try {
      const {data} = await api('POST', tenantPath(ctx.tid, 'services', svc.id, 'agents'), {body: {user: control.value.trim()}});
      replace(status, notice('success', `${data.displayName || data.upn || data.id} now takes calls of ${svc.name || svc.id}.`));
      control.value = '';
      await show();
    } catch (err) {
      showError(form, status, err, 'Not added');
    }
  });
  return form;
}

function agentHref(ctx, id) {
  return `#/t/${encodeURIComponent(ctx.tid)}/agents/${encodeURIComponent(id)}`;
}

export async function agentsView(ctx) {
  ctx.main.append(title('Agents'));
  const {data} = await api('GET', tenantPath(ctx.tid, 'agents'));
  if (!ctx.alive()) return;
  const list = data.agents || [];
  ctx.main.append(
    h('p', null, 'Every agent with their routing profile, where they are in the routing cycle and the Teams presence routing sees now. ',
      h('a', {href: `#/t/${encodeURIComponent(ctx.tid)}/live`}, 'Live queues'), ' show who rings and who is connected.'),
    table('Agents', [
      ['Name', (a) => h('a', {href: agentHref(ctx, a.id)}, a.displayName || a.id)],
      ['UPN', (a) => a.upn || ''],
      ['State', (a) => phaseCell(a.phase, a.phaseUntil)],
      ['Presence', (a) => (a.availability ? presenceCell(a) : '')],
      ['Services', (a) => (a.services || []).map((s) => (a.active && a.active[s] === false ? `${s} (inactive)` : s)).join(', ')],
      ['Duty', (a) => (a.duty && a.duty.offDuty ? h('span', {class: 'badge badge-warn'}, 'Off duty')
        : ['On duty', a.duty && a.duty.services && a.duty.services.length ? ` for ${a.duty.services.join(', ')}` : ''])],
      ['Skills', (a) => Object.entries(a.skills || {}).map(([k, v]) => `${k} ${v}`).join(', ')],
    ], list, {empty: 'No agents yet.', rowAttrs: (a) => ({'data-agent': a.id})}));
}

// agentView is one agent: where they are, and their routing profile to change (skills,
// duty, the active flag of each Teams-based service); RONA reset and end of after-call
// work when they apply.
export async function agentView(ctx) {
  const heading = title('Agent');
  const facts = h('dl', {class: 'facts'});
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'edit', novalidate: true});
  ctx.main.append(heading, facts, form);
  const path = tenantPath(ctx.tid, 'agents', ctx.id);
  const [got, services] = await Promise.all([api('GET', path), api('GET', tenantPath(ctx.tid, 'services')).catch(() => ({data: {services: []}}))]);
  if (!ctx.alive()) return;
  let a = got.data;
  const skillBased = (services.data.services || []).filter((s) => s.type === 'SkillBased' && !s.pendingDeletion);
  const fill = () => {
    heading.textContent = a.displayName || a.id;
    replace(facts,
      h('dt', null, 'UPN'), h('dd', null, a.upn || '—'),
      h('dt', null, 'State'), h('dd', null, phaseCell(a.phase, a.phaseUntil), ' ', agentAction(ctx, a, act)),
      h('dt', null, 'Teams-based services'), h('dd', null, (a.services || []).join(', ') || '—'));
    const skills = Object.entries(a.skills || {}).map(([k, v]) => `${k}:${v}`).join(', ');
    replace(form,
      h('fieldset', null, h('legend', null, 'Routing profile'), h('div', {class: 'grid'},
        field({name: 'skills', label: 'Skills', hint: 'skill:level (1..100), comma-separated, for example en:80, fr:40.'}, skills),
        field({name: 'duty.offDuty', label: 'Off duty: offered no calls', type: 'checkbox'}, a.duty && a.duty.offDuty),
        field({name: 'duty.skills', label: 'Works with these of their skills only', type: 'lines', hint: 'One skill per line; empty: all.'}, (a.duty && a.duty.skills) || []))),
      skillBased.length ? h('fieldset', null, h('legend', null, 'Skill-based services on duty for'), h('div', {class: 'grid'},
        skillBased.map((s) => field({name: `duty.services.${s.id}`, label: s.name || s.id, type: 'checkbox'}, ((a.duty && a.duty.services) || []).includes(s.id))))) : '',
      (a.services || []).length ? h('fieldset', null, h('legend', null, 'Takes calls of these Teams-based services'), h('div', {class: 'grid'},
        a.services.map((s) => field({name: `active.${s}`, label: s, type: 'checkbox'}, !(a.active && a.active[s] === false))))) : '',
      status, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Save changes')));
  };
  const act = async (url, body, done, failed) => {
    try {
      await api('POST', url, {body});
      a = (await api('GET', path)).data;
      fill();
      replace(status, notice('success', done));
    } catch (err) {
      replace(status, errorNotice(err, failed));
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const patch = {};
    const skills = {};
    for (const part of value(form, 'skills').split(',').map((x) => x.trim()).filter(Boolean)) {
      const [k, v] = part.split(':').map((x) => x.trim());
      skills[k] = Number(v || 0);
    }
    const changedSkills = {};
    for (const [k, v] of Object.entries(skills)) if ((a.skills || {})[k] !== v) changedSkills[k] = v;
    for (const k of Object.keys(a.skills || {})) if (!(k in skills)) changedSkills[k] = null;
    if (Object.keys(changedSkills).length) patch.skills = changedSkills;
    const duty = {offDuty: value(form, 'duty.offDuty'), skills: value(form, 'duty.skills'),
      services: [...((a.duty && a.duty.services) || []).filter((s) => !skillBased.some((x) => x.id === s)),
        ...skillBased.filter((s) => value(form, `duty.services.${s.id}`)).map((s) => s.id)]};
    const was = a.duty || {};
    if (duty.offDuty !== !!was.offDuty || JSON.stringify(duty.skills) !== JSON.stringify(was.skills || []) ||
      JSON.stringify([...duty.services].sort()) !== JSON.stringify([...(was.services || [])].sort())) patch.duty = duty;
    const active = {};
    for (const sv of a.services || []) {
      const on = value(form, `active.${sv}`);
      if (on !== !(a.active && a.active[sv] === false)) active[sv] = on;
    }
    if (Object.keys(active).length) patch.active = active;
    if (Object.keys(patch).length === 0) {
      replace(status, notice('info', 'Nothing to save: no field was changed.'));
      return;
    }
    try {
      a = (await api('PATCH', path, {body: patch})).data;
      fill();
      replace(status, notice('success', 'Saved.'));
    } catch (err) {
      showError(form, status, err, 'Not saved', err.field && err.field.replace(/^skills\..*/, 'skills'));
    }
  });
  fill();
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
    const due = value(form, 'due');
    const body = {
      taskId: value(form, 'taskId') || `portal-${Date.now().toString(36)}`,
      customer: value(form, 'customer'),
      due: due ? new Date(due).toISOString() : new Date().toISOString(),
      priority: value(form, 'priority'),
    };
    if (value(form, 'notes')) body.notes = value(form, 'notes');
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
      showError(form, status, err, 'Not scheduled');
    }
  });
  pick.addEventListener('change', show);
  ctx.main.append(h('div', {class: 'field picker'}, h('label', {for: pickId}, 'Service'), pick), list, form);
  await show();
}

// Views of a tenant: the list, its details (edited with If-Match), presence health
// with Test UPN, and Interact settings with the widget key.
import {api, tenantPath} from './api.js';
import {
  h, replace, title, table, notice, errorNotice, field, setField, clearFieldErrors, value, showError,
  getPath, timeTag, formatTime, confirmAction, copyText,
} from './ui.js';
import {versionedEditor} from './edit.js';

export async function tenantsView(ctx) {
  ctx.main.append(title('Tenants'));
  const {data} = await api('GET', '/api/tenants');
  if (!ctx.alive()) return;
  const list = data.tenants || [];
  ctx.main.append(
    h('p', null, 'The tenants you administer. Open one to see and change its details, services, agents and queues.'),
    table('Tenants', [
      ['Name', (t) => h('a', {href: `#/t/${encodeURIComponent(t.id)}`}, t.name || t.id)],
      ['Tenant ID', (t) => h('code', null, t.id)],
      ['Company', (t) => getPath(t, 'details.companyName') || ''],
      ['Microsoft 365 domain', (t) => getPath(t, 'details.o365Domain') || ''],
      ['Status', (t) => (t.deleted ? h('span', {class: 'badge badge-bad'}, 'Pending deletion') : 'Active')],
      ['Updated', (t) => timeTag(t.updatedAt)],
    ], list, {empty: 'You administer no tenant yet.'}),
    newTenantForm(ctx));
}

// newTenantForm adds a customer tenant: operators, or partner admins naming their own
// partner administration group (the API refuses others, naming the field).
function newTenantForm(ctx) {
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'edit', novalidate: true, 'aria-labelledby': 'new-tenant'},
    h('h2', {id: 'new-tenant'}, 'New tenant'),
    h('div', {class: 'grid'},
      field({name: 'id', label: 'Tenant ID', hint: 'The customer\'s Microsoft Entra tenant id (a GUID).'}, ''),
      field({name: 'name', label: 'Name'}, ''),
      field({name: 'security.partnerAdminGroup', label: 'Partner administration group', hint: 'Partners: the object id of your own administration group.'}, '')),
    status, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Create the tenant')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const body = {id: value(form, 'id'), name: value(form, 'name')};
    if (value(form, 'security.partnerAdminGroup')) body.security = {partnerAdminGroup: value(form, 'security.partnerAdminGroup')};
    replace(status, notice('info', 'Creating…'));
    try {
      const {data} = await api('POST', '/api/tenants', {body});
      ctx.tenantsChanged();
      ctx.sayNext('success', `Tenant ${data.name} was created. Set its presence, services and groups next.`);
      ctx.go(`#/t/${encodeURIComponent(data.id)}`);
    } catch (err) {
      showError(form, status, err, 'Not created');
    }
  });
  return form;
}

// The tenant's fields, grouped as the form shows them; the names are the API's paths.
const tenantForm = [
  ['Tenant information', [
    {name: 'name', label: 'Name'},
    {name: 'details.companyName', label: 'Company name'},
    {name: 'details.o365Domain', label: 'Microsoft 365 domain', placeholder: 'contoso.com'},
    {name: 'details.crmId', label: 'CRM ID'},
    {name: 'details.partner', label: 'Partner'},
  ]],
  ['Billing address', [
    {name: 'details.billing.street1', label: 'Street'},
    {name: 'details.billing.street2', label: 'Street, second line'},
    {name: 'details.billing.zip', label: 'Postal code'},
    {name: 'details.billing.city', label: 'City'},
    {name: 'details.billing.country', label: 'Country', hint: 'Two-letter ISO code, for example CH or DE.'},
  ]],
  ['Technical contact', [
    {name: 'details.technicalContact.name', label: 'Name'},
    {name: 'details.technicalContact.email', label: 'Email', type: 'email'},
    {name: 'details.technicalContact.phone', label: 'Phone', type: 'tel', hint: 'E.164, for example +41441234567.'},
    {name: 'details.technicalContact.sip', label: 'SIP address'},
  ]],
  ['Security groups', [
    {name: 'security.tenantAdminGroup', label: 'Tenant administration group', hint: 'Object id of a group in the tenant\'s directory.'},
    {name: 'security.partnerAdminGroup', label: 'Partner administration group', hint: 'Object id of a group in the partner\'s directory.'},
    {name: 'security.supervisorGroup', label: 'Supervisor group', hint: 'Object id of a group in the tenant\'s directory.'},
  ]],
  ['Privacy', [
    {name: 'privacy.partnerSeesUserIdentifiers', label: 'Partners may see user identifiers', type: 'checkbox'},
    {name: 'privacy.partnerSeesCustomerIdentifiers', label: 'Partners may see customer identifiers', type: 'checkbox'},
    {name: 'privacy.trackUserStates', label: 'Track user states for reports', type: 'checkbox', hint: 'Records every agent state change with its duration.'},
  ]],
  ['Outbound and provisioning', [
    {name: 'extensions.outboundCap', label: 'Scheduled outbound tasks per service', type: 'int', min: 1, max: 50},
    {name: 'extensions.directInvitePstn', label: 'Directly invite PSTN customers', type: 'checkbox', hint: 'Platform operators only.'},
    {name: 'extensions.directInviteUpn', label: 'Directly invite Teams users', type: 'checkbox', hint: 'Platform operators only.'},
    {name: 'extensions.assistantOwnAcs', label: 'Assistant uses its own Communication Services', type: 'checkbox'},
    {name: 'extensions.attendantTeamVisibility', label: 'Attendant console shows', type: 'select',
      options: [['NoMembers', 'No members'], ['OwnMembers', 'Members of own services'], ['AllMembers', 'All members']]},
    {name: 'extensions.graphFilter', label: 'Graph filter for contact search', hint: 'A $filter fragment, stored as given.'},
    {name: 'extensions.defaultOrganizationUnit', label: 'Default organization unit'},
    {name: 'extensions.whoMayProvision', label: 'Who may provision services from Teams', type: 'select',
      options: [['Everyone', 'Everyone'], ['TenantAndOUAdmins', 'Tenant and OU admins'], ['TenantAdmins', 'Tenant admins'], ['NoOne', 'No one']]},
  ]],
  ['Presence', [
    {name: 'presence.enabled', label: 'Presence tracking on', type: 'checkbox'},
    {name: 'presence.mode', label: 'How presence is read', type: 'select', def: 'Accounts',
      options: [['Accounts', 'Presence accounts (delegated)'], ['Application', 'Application permission']]},
    {name: 'presence.account1', label: 'Presence account 1', placeholder: 'presence1@contoso.com'},
    {name: 'presence.account1Password', label: 'Password of account 1', type: 'password', secret: 'presence-account-1-password', autocomplete: 'new-password'},
    {name: 'presence.account2', label: 'Presence account 2 (fallback)', placeholder: 'presence2@contoso.com'},
    {name: 'presence.account2Password', label: 'Password of account 2', type: 'password', secret: 'presence-account-2-password', autocomplete: 'new-password'},
  ]],
  ['Retention in days', [
    {name: 'retention.finishedTasksDays', label: 'Finished routing tasks', type: 'int', min: 1, max: 3650},
    {name: 'retention.endedCallsDays', label: 'Ended calls', type: 'int', min: 1, max: 3650},
    {name: 'retention.closedSessionsDays', label: 'Closed Interact sessions', type: 'int', min: 1, max: 365},
    {name: 'retention.userStatesDays', label: 'User-state records', type: 'int', min: 1, max: 3650},
  ]],
];

export async function tenantView(ctx) {
  const heading = title('Tenant');
  let shown = '';
  const meta = h('p', {class: 'meta'});
  const editor = versionedEditor({
    noun: 'tenant',
    url: tenantPath(ctx.tid),
    groups: tenantForm,
    cleared: '',
    secretSet: (t, spec) => !!(t.secretsSet && t.secretsSet[spec.secret]),
    onChange: (t) => {
      if (shown && shown !== (t.name || t.id)) ctx.tenantsChanged(); // renamed: the picker reads the list again
      shown = t.name || t.id;
      heading.textContent = shown;
      replace(meta, 'Tenant ID ', h('code', null, t.id), ` · version ${t.version}`,
        t.updatedAt ? [' · updated ', timeTag(t.updatedAt)] : '', t.deleted ? [' · ', h('span', {class: 'badge badge-bad'}, 'Pending deletion')] : '');
    },
  });
  await editor.load();
  if (!ctx.alive()) return;
  const audit = h('details', {class: 'audit', ontoggle: async (e) => {
    if (!e.target.open || e.target.dataset.loaded) return;
    e.target.dataset.loaded = '1';
    const box = e.target.querySelector('.audit-body');
    try {
      const {data} = await api('GET', `${tenantPath(ctx.tid, 'audit')}?limit=50`);
      replace(box, table('Recent changes', [
        ['When', (a) => timeTag(a.at)],
        ['Who', (a) => a.actorId || ''],
        ['What', (a) => a.operation],
        ['Fields', (a) => Object.entries(a.fields || {}).map(([k, v]) => `${k} = ${v}`).join('; ')],
      ], data.entries || [], {empty: 'No changes recorded.'}));
    } catch (err) {
      replace(box, errorNotice(err, 'The audit log could not be read'));
    }
  }}, h('summary', null, 'Recent changes (audit log)'), h('div', {class: 'audit-body'}, 'Loading…'));
  ctx.main.append(heading, meta,
    h('p', null, 'Change what your role allows and save. A change names the version it is based on, so nobody overwrites another admin\'s change unseen.'),
    editor.form, audit);
}

export async function presenceView(ctx) {
  ctx.main.append(title('Presence'));
  const health = h('div');
  const result = h('div', {class: 'test-result'});
  const upn = field({name: 'upn', label: 'User principal name', placeholder: 'someone@contoso.com', autocomplete: 'off'}, '');
  const form = h('form', {class: 'inline-form', novalidate: true}, upn, h('button', {type: 'submit', class: 'primary'}, 'Test UPN'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    replace(result, notice('info', 'Reading presence…'));
    try {
      const {data} = await api('POST', tenantPath(ctx.tid, 'presence', 'test'), {body: {upn: value(form, 'upn')}});
      replace(result,
        data.answeredBy
          ? notice('success', `Answered by ${credentialName(data.answeredBy)}: ${data.availability || 'unknown'}${data.activity && data.activity !== data.availability ? ` (${data.activity})` : ''}.`)
          : notice('error', 'No credential could read this user\'s presence.'),
        table('Credentials tried', [
          ['Credential', (a) => credentialName(a.credential)],
          ['Result', (a) => (a.ok ? 'Answered' : 'Refused')],
          ['Error code', (a) => a.errorCode || ''],
        ], data.attempts || []));
    } catch (err) {
      showError(form, result, err, 'Test failed');
    }
  });
  ctx.main.append(health,
    h('section', {'aria-labelledby': 'test-upn'}, h('h2', {id: 'test-upn'}, 'Test UPN'),
      h('p', null, 'Reads one user\'s presence now and says which credential answered.'), form, result));
  const {data} = await api('GET', tenantPath(ctx.tid, 'presence', 'health'));
  if (!ctx.alive()) return;
  const hl = data.health || {};
  const account = (name, key) => ({name, s: hl[key] || {}});
  replace(health,
    h('dl', {class: 'facts'},
      fact('Status', h('span', {class: `badge badge-${statusClass(data.status)}`}, statusText(data.status))),
      fact('Mode', data.mode || ''),
      fact('Credential in use', hl.active ? credentialName(hl.active) : '—'),
      fact('In use since', timeTag(hl.activeSince) || '—'),
      fact('Last poll', timeTag(hl.lastPollAt) || '—'),
      fact('Last read', timeTag(hl.lastReadAt) || '—'),
      fact('Agents', String(hl.agents ?? 0)),
      fact('Last error code', hl.lastErrorCode || '—')),
    table('Credentials', [
      ['Credential', (a) => a.name],
      ['Status', (a) => (a.s.checkedAt ? (a.s.ok ? h('span', {class: 'badge badge-ok'}, 'Working') : h('span', {class: 'badge badge-bad'}, 'Failing')) : 'Not tried')],
      ['Checked', (a) => timeTag(a.s.checkedAt)],
      ['Error code', (a) => a.s.errorCode || ''],
    ], [account('Account 1', 'account1'), account('Account 2', 'account2'), account('Application permission', 'application')], {captionVisible: true}),
    (hl.warnings || []).length
      ? h('section', {'aria-labelledby': 'warn-h'}, h('h2', {id: 'warn-h'}, 'Warnings'),
        h('ul', {class: 'warnings'}, hl.warnings.map((w) => h('li', null, h('strong', null, w.code), ': ', w.message,
          w.fix ? [' Fix: ', w.fix] : ''))))
      : '');
}

function fact(term, desc) {
  return [h('dt', null, term), h('dd', null, desc)];
}

function credentialName(c) {
  return {account1: 'account 1', account2: 'account 2', application: 'the application permission', basic: 'basic presence'}[c] || c;
}

function statusText(s) {
  return {ok: 'OK', degraded: 'Degraded', basic: 'Basic presence only', notPolledYet: 'Not polled yet', disabled: 'Presence tracking off'}[s] || s;
}

function statusClass(s) {
  return {ok: 'ok', degraded: 'warn', basic: 'bad'}[s] || 'neutral';
}

const interactForm = [
  {name: 'enabled', label: 'Interact on', type: 'checkbox'},
  {name: 'authMode', label: 'Authorization', type: 'select',
    options: [['None', 'Widget key only'], ['VerifyToken', 'Widget key and a valid token'], ['VerifyTokenAndTenant', 'Widget key and a token of this tenant']]},
  {name: 'recoveryTimeoutSeconds', label: 'Session recovery timeout (seconds)', type: 'int', min: 5, max: 60},
  {name: 'allowedOrigins', label: 'Allowed origins', type: 'lines', hint: 'One per line, for example https://www.contoso.com.'},
  {name: 'tokenAudiences', label: 'Token audiences', type: 'lines', hint: 'One per line: application ids or api:// URIs.'},
  {name: 'meetingUserId', label: 'Meetings are created for (user object id)'},
  {name: 'acsConnectionString', label: 'Communication Services connection string', type: 'password', autocomplete: 'new-password', hint: 'Write-only.'},
];

export async function interactView(ctx) {
  ctx.main.append(title('Interact'));
  let {data: v} = await api('GET', tenantPath(ctx.tid, 'interact'));
  if (!ctx.alive()) return;
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'edit', novalidate: true},
    h('fieldset', null, h('legend', null, 'Settings'), h('div', {class: 'grid'}, interactForm.map((f) => field(f, undefined)))),
    status, h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Save settings')));
  const fill = () => {
    for (const spec of interactForm) {
      const c = form.elements.namedItem(spec.name);
      setField(c, v[spec.name]);
      if (spec.type === 'password') c.placeholder = v.acsConnectionStringSet ? 'Set (leave empty to keep)' : 'Not set';
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const patch = {};
    for (const spec of interactForm) {
      const x = value(form, spec.name);
      const was = spec.type === 'lines' ? (v[spec.name] || []) : v[spec.name];
      if (spec.type === 'password' ? x === '' : JSON.stringify(x) === JSON.stringify(was ?? (spec.type === 'checkbox' ? false : ''))) continue;
      patch[spec.name] = x;
    }
    if (Object.keys(patch).length === 0) {
      replace(status, notice('info', 'Nothing to save: no field was changed.'));
      return;
    }
    try {
      v = (await api('PATCH', tenantPath(ctx.tid, 'interact'), {body: patch})).data;
      fill();
      renderKey();
      replace(status, notice('success', 'Saved.'));
    } catch (err) {
      showError(form, status, err, 'Not saved');
    }
  });

  const keyBox = h('div');
  const keyStatus = h('div');
  const renderKey = () => {
    const key = v.widgetKey || '';
    replace(keyBox,
      h('dl', {class: 'facts'},
        fact('Widget key', key ? h('code', {class: 'key', 'data-testid': 'widget-key'}, key) : (v.widgetKeyStatus === 'none' ? 'None yet: saving the settings creates one.' : 'Not readable')),
        fact('Refreshed', timeTag(v.widgetKeyRefreshedAt) || '—'),
        v.previousKeyValidUntil ? fact('Previous key works until', timeTag(v.previousKeyValidUntil)) : ''),
      h('div', {class: 'actions'},
        key ? h('button', {type: 'button', onclick: async () => {
          const ok = await copyText(key);
          replace(keyStatus, ok ? notice('success', 'Copied the widget key.')
            : notice('warning', 'The browser did not allow copying: select the key and copy it.'));
        }}, 'Copy key') : '',
        h('button', {type: 'button', class: 'danger', onclick: refresh}, 'Refresh widget key'),
        h('button', {type: 'button', onclick: checkACS}, 'Check Communication Services')));
  };
  const refresh = async () => {
    if (!(await confirmAction('Refresh the widget key?', 'The current key stops working (after the grace period, if one is set). Every site that embeds the widget needs the new key.', 'Refresh the key'))) return;
    try {
      v = (await api('POST', tenantPath(ctx.tid, 'interact', 'widget-key', 'refresh'))).data;
      renderKey();
      replace(keyStatus, notice('success', 'A new widget key was made. Give it to the sites that embed the widget.'));
    } catch (err) {
      replace(keyStatus, errorNotice(err, 'The key was not refreshed'));
    }
  };
  const checkACS = async () => {
    replace(keyStatus, notice('info', 'Checking Communication Services…'));
    try {
      const {data} = await api('POST', tenantPath(ctx.tid, 'interact', 'acs', 'check'));
      replace(keyStatus, notice(data.status === 'ok' ? 'success' : 'info',
        data.status === 'ok' ? `Communication Services work (${data.tookMs} ms).` : `Check: ${data.status}${data.detail ? ` (${data.detail})` : ''}.`));
    } catch (err) {
      const d = err.body || {};
      replace(keyStatus, errorNotice(err, 'Communication Services check failed'), d.detail ? h('p', null, d.detail) : '');
    }
  };
  fill();
  renderKey();
  ctx.main.append(form, h('section', {'aria-labelledby': 'key-h'}, h('h2', {id: 'key-h'}, 'Widget key'),
    h('p', null, 'Sites that embed the Interact widget send this key with every request.'), keyBox, keyStatus),
  formatTime(v.updatedAt) ? h('p', {class: 'meta'}, 'Settings updated ', timeTag(v.updatedAt)) : '');
}

// The admin portal's shell: sign-in state, the tenant picker, the navigation and the
// router. Views live in views-*.js; each renders into <main> and may return a
// function that stops what it started (a poll).
import * as auth from './auth.js';
import {api, onUnauthorized} from './api.js';
import {h, replace, notice, errorNotice} from './ui.js';
import {tenantsView, tenantView, presenceView, interactView} from './views-tenant.js';
import {servicesView, serviceView, agentsView, agentView, outboundView} from './views-services.js';
import {liveView, parkedView} from './views-live.js';

const sections = [
  ['', 'Details', tenantView],
  ['services', 'Services', servicesView],
  ['agents', 'Agents', agentsView],
  ['presence', 'Presence', presenceView],
  ['interact', 'Interact', interactView],
  ['outbound', 'Outbound', outboundView],
  ['live', 'Live queues', liveView],
];

const main = () => document.getElementById('main');
let current = {leave: null, token: 0};
let tenants = null; // the tenants the caller administers, once read
let firstRender = true;
let lastTenant = ''; // the tenant the navigation keeps offering on the pages of no tenant

// route reads the fragment: #/tenants, #/ops/parked, #/t/{tenant}[/{section}[/{id}]].
function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 't' && parts[1]) {
    const sec = sections.find(([key]) => key === (parts[2] || '')) || sections[0];
    let view = sec[2];
    if (sec[0] === 'services' && parts[3]) view = serviceView;
    if (sec[0] === 'agents' && parts[3]) view = agentView;
    return {name: sec[0] || 'details', view, tid: parts[1], section: sec[0], id: parts[3] || ''};
  }
  if (parts[0] === 'ops' && parts[1] === 'parked') return {name: 'parked', view: parkedView, section: 'parked'};
  return {name: 'tenants', view: tenantsView, section: 'tenants'};
}

// go navigates to a fragment (the router renders it).
export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function navLink(href, text, active) {
  return h('li', null, h('a', {href, 'aria-current': active ? 'page' : null}, text));
}

function renderNav(r) {
  const nav = document.getElementById('nav');
  const items = [navLink('#/tenants', 'Tenants', r.section === 'tenants')];
  const tid = r.tid || lastTenant;
  if (tid) {
    for (const [key, text] of sections) {
      items.push(navLink(`#/t/${encodeURIComponent(tid)}${key ? `/${key}` : ''}`, text, !!r.tid && r.section === key));
    }
  }
  items.push(navLink('#/ops/parked', 'Parked messages', r.section === 'parked'));
  nav.replaceChildren(h('ul', null, items));
}

async function renderTenantPicker(r) {
  const box = document.getElementById('tenant-pick');
  if (!auth.signedIn()) {
    box.replaceChildren();
    return;
  }
  if (tenants === null) {
    try {
      tenants = (await api('GET', '/api/tenants')).data.tenants || [];
    } catch {
      tenants = [];
    }
  }
  const select = h('select', {id: 'tenant-select', onchange: (e) => {
    const id = e.target.value;
    if (id) go(`#/t/${encodeURIComponent(id)}${r.section && r.section !== 'tenants' && r.section !== 'parked' ? `/${r.section}` : ''}`);
  }},
  h('option', {value: '', selected: !r.tid}, tenants.length ? 'Choose a tenant…' : 'No tenants'),
  tenants.map((t) => h('option', {value: t.id, selected: t.id === r.tid}, t.name || t.id)));
  box.replaceChildren(h('label', {for: 'tenant-select'}, 'Tenant'), select);
}

// tenantsChanged drops the picker's list (a tenant was renamed).
export function tenantsChanged() {
  tenants = null;
}

function renderWho() {
  const who = document.getElementById('who');
  if (auth.mode() === 'local') {
    who.replaceChildren(h('span', {class: 'badge'}, 'Local runner: you act as a platform operator'));
    return;
  }
  if (!auth.signedIn()) {
    who.replaceChildren(h('button', {type: 'button', class: 'primary', onclick: startSignIn, disabled: !auth.settings().clientId}, 'Sign in'));
    return;
  }
  who.replaceChildren(h('span', null, 'Signed in', auth.whoAmI() ? ` as ${auth.whoAmI()}` : ''), ' ',
    h('button', {type: 'button', onclick: () => {
      auth.signOut();
      tenants = null;
      render();
    }}, 'Sign out'));
}

async function startSignIn() {
  try {
    await auth.signIn();
  } catch (e) {
    say('error', e.message);
  }
}

// say shows a message above the page (until the next navigation).
export function say(kind, text) {
  document.getElementById('banner').replaceChildren(text ? notice(kind, text) : '');
}

// sayNext shows a message above the next page (what a create did, before the page
// of what it created).
let next = ['', ''];
function sayNext(kind, text) {
  next = [kind, text];
}

function signInPage() {
  const cfg = auth.settings();
  return [
    h('h1', {tabindex: '-1'}, 'Sign in'),
    h('p', null, 'Sign in with your Microsoft work account. What you see depends on your role for each tenant.'),
    (cfg.warnings || []).map((w) => notice('warning', w)),
    h('p', null, h('button', {type: 'button', class: 'primary', onclick: startSignIn, disabled: !cfg.clientId}, 'Sign in with Microsoft')),
  ];
}

async function render() {
  if (current.leave) current.leave();
  const token = ++current.token;
  const r = route();
  const m = main();
  if (r.tid) lastTenant = r.tid;
  if (r.section === 'tenants') lastTenant = '';
  const leaves = [];
  renderNav(r);
  renderWho();
  say(...next);
  next = ['', ''];
  m.setAttribute('aria-busy', 'true');
  m.dataset.view = r.name;
  m.dataset.route = location.hash; // what the page shows (tests wait for it)
  m.replaceChildren();
  current.leave = () => leaves.forEach((f) => f());
  const ctx = {
    main: m,
    tid: r.tid,
    id: r.id, // the address's fourth part: a service's or an agent's id
    alive: () => token === current.token,
    onLeave: (f) => leaves.push(f),
    go,
    say,
    sayNext,
    tenantsChanged,
  };
  try {
    if (!auth.signedIn()) {
      replace(m, signInPage());
    } else {
      await renderTenantPicker(r);
      await r.view(ctx);
    }
  } catch (e) {
    if (ctx.alive()) m.append(errorNotice(e, 'This page could not be shown'));
  }
  if (!ctx.alive()) return;
  m.setAttribute('aria-busy', 'false');
  // Move the focus to the new page's heading, so keyboard and screen reader users
  // start there (not on the first load: the browser starts at the top anyway).
  const heading = m.querySelector('h1');
  if (heading && !firstRender) heading.focus();
  firstRender = false;
}

async function start() {
  onUnauthorized(() => {
    if (auth.mode() !== 'local') {
      auth.signOut();
      renderWho();
      say('error', 'Your sign-in has expired or was refused. Sign in again.');
    }
  });
  let problem = '';
  try {
    problem = await auth.init();
  } catch (e) {
    main().replaceChildren(errorNotice(e, 'The portal could not start'));
    main().setAttribute('aria-busy', 'false');
    return;
  }
  document.querySelector('.skip').addEventListener('click', (e) => {
    e.preventDefault();
    const heading = main().querySelector('h1');
    (heading || main()).focus();
  });
  window.addEventListener('hashchange', render);
  await render();
  if (problem) say('error', problem);
}

start();

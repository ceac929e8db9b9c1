// DOM helpers of the admin portal. Every text from the API goes into the page as
// text (textContent), never as markup.

// h builds an element: h('p', {class: 'x'}, 'text', child, ...). Attributes whose
// value is false, null or undefined are left out; "on<event>" attributes take
// listeners; children may be strings, nodes, arrays or null.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'selected' || k === 'disabled') {
      el[k] = !!v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// replace puts children (as h takes them) in place of el's children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// title is a page's heading; the router moves the focus to it after a navigation.
export function title(...content) {
  return h('h1', {tabindex: '-1'}, ...content);
}

let ids = 0;
// uid returns an id unique in the page, for label/for and aria references.
export function uid(prefix) {
  ids += 1;
  return `${prefix || 'id'}-${ids}`;
}

// table builds a data table: columns are [header, cell(row) → node or text].
export function table(caption, columns, rows, opts = {}) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: opts.class || null},
      h('caption', {class: opts.captionVisible ? null : 'visually-hidden'}, caption),
      h('thead', null, h('tr', null, columns.map(([head]) => h('th', {scope: 'col'}, head)))),
      h('tbody', null, rows.length === 0
        ? h('tr', null, h('td', {colspan: columns.length, class: 'empty'}, opts.empty || 'Nothing here.'))
        : rows.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null, columns.map(([, cell]) => h('td', null, cell(r))))))));
}

// notice is a message box: kind "error" is announced at once (role alert), the
// others politely (role status).
export function notice(kind, ...content) {
  return h('div', {class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status'}, ...content);
}

// errorNotice explains a failed API call in words for the admin.
export function errorNotice(err, what) {
  return notice('error', h('strong', null, what ? `${what}: ` : ''), describeError(err));
}

// describeError says what went wrong, with the field and the rule the API named.
export function describeError(err) {
  if (!err || err.status === undefined) return String((err && err.message) || err);
  const e = err.body && err.body.error ? err.body.error : {};
  switch (err.status) {
    case 400:
      return e.field ? `${e.field}: ${e.rule || e.message}` : (e.message || 'The request was refused.');
    case 401:
      return 'You are not signed in, or your sign-in has expired. Sign in again.';
    case 403:
      return `Your role does not allow this here${e.field ? ` (${e.field})` : ''}. ${e.message ? `The API says: ${e.message}.` : ''}`;
    case 404:
      return 'Not found: it may have been deleted.';
    case 409:
      return e.message || 'It conflicts with what is there already.';
    case 412:
      return 'Someone else changed this since you opened it.';
    case 428:
      return e.message || 'The change must name the version it is based on.';
    case 429:
      return e.message || 'Too many requests: try again later.';
    case 503:
      return 'A service the app depends on did not answer in time. Try again in a few seconds.';
    default:
      return e.message || `The request failed (${err.status}).`;
  }
}

// field builds a labelled form control. spec: {name, label, type, hint, options,
// min, max, placeholder, rows}. The control's name is the field's path.
export function field(spec, value) {
  const id = uid('f');
  const hintId = spec.hint ? `${id}-hint` : null;
  const errId = `${id}-err`;
  const described = [hintId, errId].filter(Boolean).join(' ');
  let control;
  const common = {id, name: spec.name, 'aria-describedby': described, 'data-type': spec.type || 'text'};
  switch (spec.type) {
    case 'phones':
      return phonesField(spec, id, value);
    case 'checkbox':
      control = h('input', {...common, type: 'checkbox', checked: !!value});
      return h('div', {class: 'field field-check'}, control, h('label', {for: id}, spec.label),
        spec.hint ? h('p', {class: 'hint', id: hintId}, spec.hint) : null, h('p', {class: 'field-error', id: errId, hidden: true}));
    case 'select':
      control = h('select', common, spec.options.map((o) => {
        const [v, text] = Array.isArray(o) ? o : [o, o];
        return h('option', {value: v, selected: v === (value ?? '')}, text);
      }));
      break;
    case 'textarea':
    case 'lines':
      control = h('textarea', {...common, rows: spec.rows || 3, placeholder: spec.placeholder || null});
      setField(control, value);
      break;
    default:
      control = h('input', {...common, type: {int: 'number', skills: 'text'}[spec.type] || spec.type || 'text', min: spec.min ?? null, max: spec.max ?? null,
        step: spec.type === 'int' ? 1 : null, placeholder: spec.placeholder || null, autocomplete: spec.autocomplete || 'off', spellcheck: 'false'});
      setField(control, value);
  }
  return h('div', {class: 'field'}, h('label', {for: id}, spec.label), control,
    spec.hint ? h('p', {class: 'hint', id: hintId}, spec.hint) : null,
    h('p', {class: 'field-error', id: errId, hidden: true}));
}

// phonesField edits a list of phone numbers, each with how it is provided: one row
// per number, with its own labels, and buttons to add and remove rows.
function phonesField(spec, id, value) {
  const rows = h('ul', {class: 'rows'});
  const box = h('fieldset', {id, name: spec.name, 'data-type': 'phones', class: 'field field-rows'},
    h('legend', null, spec.label), rows,
    h('button', {type: 'button', onclick: () => {
      addPhoneRow(rows, {number: '', kind: 'DirectRouting'});
      rows.lastElementChild.querySelector('input').focus();
    }}, 'Add a number'),
    h('p', {class: 'field-error', id: `${id}-err`, hidden: true}));
  setField(box, value);
  return box;
}

function addPhoneRow(rows, p) {
  const n = rows.children.length + 1;
  const numberId = uid('pn');
  const kindId = uid('pk');
  const row = h('li', null,
    h('label', {for: numberId}, `Number ${n}`),
    h('input', {id: numberId, type: 'tel', class: 'phone-number', value: p.number || '', placeholder: '+41441234567', autocomplete: 'off'}),
    h('label', {for: kindId}, `Kind of number ${n}`),
    h('select', {id: kindId, class: 'phone-kind'},
      [['DirectRouting', 'Direct Routing'], ['CallingPlanService', 'Calling Plan service number']].map(([v, t]) => h('option', {value: v, selected: v === p.kind}, t))),
    h('button', {type: 'button', 'aria-label': `Remove number ${n}`, onclick: () => {
      row.remove();
      rows.closest('fieldset').querySelector('button').focus();
    }}, 'Remove'));
  rows.append(row);
}

// setField shows value in a control made by field().
export function setField(control, value) {
  switch (control.dataset.type) {
    case 'checkbox':
      control.checked = !!value;
      break;
    case 'lines':
      control.value = (value || []).join('\n');
      break;
    case 'skills':
      control.value = (value || []).map((r) => `${r.skill}:${r.minLevel}`).join(', ');
      break;
    case 'phones': {
      const rows = control.querySelector('.rows');
      rows.replaceChildren();
      for (const p of value || []) addPhoneRow(rows, p);
      break;
    }
    case 'password':
      control.value = '';
      break;
    default:
      control.value = value ?? '';
  }
}

// readField reads a control's value by its data-type: numbers as numbers (null when
// empty), checkboxes as booleans, "lines" as a list of non-empty lines, "skills"
// ("en:3, fr:2") as skill requirements, "phones" as phone numbers.
export function readField(control) {
  switch (control.dataset.type) {
    case 'checkbox':
      return control.checked;
    case 'int':
      return control.value.trim() === '' ? null : Number(control.value);
    case 'lines':
      return control.value.split('\n').map((s) => s.trim()).filter(Boolean);
    case 'skills':
      return control.value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
        const [skill, level] = s.split(':').map((x) => x.trim());
        return {skill, minLevel: Number(level || 1)};
      });
    case 'phones':
      return Array.from(control.querySelectorAll('.rows li'), (li) => ({
        number: li.querySelector('.phone-number').value.trim(),
        kind: li.querySelector('.phone-kind').value,
      })).filter((p) => p.number);
    default:
      return control.value.trim();
  }
}

// markFieldError shows the API's rule beside the field it names (when the form has
// it) and moves the focus there; it reports whether the field was found.
export function markFieldError(form, name, message) {
  clearFieldErrors(form);
  const control = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  if (!control) return false;
  control.setAttribute('aria-invalid', 'true');
  const err = document.getElementById(`${control.id}-err`);
  if (err) {
    err.textContent = message;
    err.hidden = false;
  }
  control.focus();
  return true;
}

// value reads the control of form named name (see readField).
export function value(form, name) {
  return readField(form.elements.namedItem(name));
}

// showError shows a failed call in status and, when the API named a field the form
// has (or field names it), the rule beside that field, which gets the focus.
export function showError(form, status, err, what, field = err && err.field) {
  replace(status, errorNotice(err, what));
  if (field) markFieldError(form, field, describeError(err));
}

export function clearFieldErrors(form) {
  for (const c of form.querySelectorAll('[aria-invalid="true"]')) c.removeAttribute('aria-invalid');
  for (const e of form.querySelectorAll('.field-error')) {
    e.textContent = '';
    e.hidden = true;
  }
}

// getPath reads obj.a.b for "a.b".
export function getPath(obj, path) {
  return path.split('.').reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
}

// setPath sets obj.a.b = v for "a.b", creating the objects on the way.
export function setPath(obj, path, v) {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k];
  }
  o[keys[keys.length - 1]] = v;
}

// formatTime shows an instant in the browser's time zone; empty for none.
export function formatTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1971) return '';
  return d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'});
}

// formatSeconds shows a duration as "1 h 2 min", "3 min 4 s" or "5 s".
export function formatSeconds(n) {
  const s = Math.max(0, Math.round(n));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

// timeTag is a <time> element with the instant in the browser's time zone (clock:
// the time of day only, for what happens within minutes).
export function timeTag(s, clock) {
  const text = clock ? formatClock(s) : formatTime(s);
  return text ? h('time', {datetime: s, title: formatTime(s)}, text) : '';
}

// formatClock shows an instant's time of day.
export function formatClock(s) {
  return formatTime(s) ? new Date(s).toLocaleTimeString(undefined, {timeStyle: 'medium'}) : '';
}

const dialog = () => document.getElementById('dialog');

// showDialog opens the page's modal dialog with a title and content; it resolves
// with the value of the button that closed it ("" for Escape or Close).
export function showDialog(title, content, buttons = [['close', 'Close']]) {
  const d = dialog();
  d.replaceChildren(
    h('form', {method: 'dialog', class: 'dialog-body'},
      h('h2', {id: 'dialog-title'}, title),
      h('div', {class: 'dialog-content'}, content),
      h('div', {class: 'actions'}, buttons.map(([value, text, cls]) => h('button', {value, class: cls || null}, text)))));
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'close' ? '' : d.returnValue), {once: true});
    d.showModal();
  });
}

// confirmAction asks before something that cannot be undone.
export async function confirmAction(title, text, yes) {
  const v = await showDialog(title, h('p', null, text), [['yes', yes, 'danger'], ['close', 'Keep it']]);
  return v === 'yes';
}

// copyText copies to the clipboard, reporting whether it worked.
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

// The editor of a versioned resource (a tenant, a service): a form of its fields,
// filled from the resource; Save sends only what changed, with If-Match naming the
// version the form shows. When someone else changed it first (412), nothing is
// saved and the admin is offered the latest version.
import {api, ApiError} from './api.js';
import {h, replace, notice, errorNotice, describeError, field, readField, setField, markFieldError, clearFieldErrors, getPath, setPath} from './ui.js';

// versionedEditor: o = {noun ("tenant"), url, groups: [[legend, specs]], cleared
// (the value a cleared field is sent as: "" or null), onChange(resource) after a
// load or save, secretSet(resource, spec) for write-only fields}. It returns
// {form, load()}. A spec may give def, the value an absent field means.
export function versionedEditor(o) {
  const specs = o.groups.flatMap(([, fields]) => fields);
  let res = null;
  let etag = '';
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'edit', novalidate: true},
    o.groups.map(([legend, fields]) => h('fieldset', null, h('legend', null, legend),
      h('div', {class: 'grid'}, fields.map((f) => field(f, undefined))))),
    status,
    h('div', {class: 'actions sticky'}, h('button', {type: 'submit', class: 'primary'}, 'Save changes')));

  const current = (spec) => {
    const v = getPath(res, spec.name);
    if (v === undefined || v === null || v === '') {
      if (spec.def !== undefined) return spec.def;
      return {checkbox: false, int: null, lines: [], skills: [], phones: []}[spec.type] ?? '';
    }
    return v;
  };
  const control = (spec) => form.elements.namedItem(spec.name);
  const fill = () => {
    for (const spec of specs) {
      setField(control(spec), current(spec));
      if (spec.type === 'password') {
        control(spec).placeholder = o.secretSet && o.secretSet(res, spec) ? 'Set (leave empty to keep)' : 'Not set';
      }
    }
    clearFieldErrors(form);
    if (o.onChange) o.onChange(res);
  };
  const load = async () => {
    const r = await api('GET', o.url);
    res = r.data;
    etag = r.etag;
    fill();
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const patch = {};
    let n = 0;
    for (const spec of specs) {
      const v = readField(control(spec));
      if (spec.type === 'password' ? v === '' : JSON.stringify(v) === JSON.stringify(current(spec))) continue;
      const empty = v === '' || v === null || (Array.isArray(v) && v.length === 0);
      setPath(patch, spec.name, empty && spec.type !== 'checkbox' ? o.cleared : v);
      n++;
    }
    if (n === 0) {
      replace(status, notice('info', 'Nothing to save: no field was changed.'));
      return;
    }
    replace(status, notice('info', 'Saving…'));
    try {
      const r = await api('PATCH', o.url, {body: patch, ifMatch: etag});
      res = r.data;
      etag = r.etag;
      fill();
      replace(status, notice('success', `Saved ${n === 1 ? 'one change' : `${n} changes`}. The ${o.noun} is at version ${res.version}.`),
        (res.warnings || []).map((w) => notice('warning', w)));
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        const again = h('button', {type: 'button', class: 'primary', onclick: async () => {
          try {
            await load();
            replace(status, notice('info', `Reloaded: the form shows version ${res.version}. Make your changes again.`));
            form.querySelector('input, select, textarea').focus();
          } catch (e2) {
            replace(status, errorNotice(e2, 'Reload failed'));
          }
        }}, 'Reload the latest version');
        replace(status, notice('error', h('strong', null, 'Not saved. '),
          `Someone else changed this ${o.noun} since you opened it. Reload to see their changes (yours are discarded), then make yours again. `, again));
        again.focus();
        return;
      }
      replace(status, errorNotice(err, 'Not saved'));
      if (!(err instanceof ApiError && err.field && markFieldError(form, err.field, describeError(err)))) {
        form.querySelector('button[type="submit"]').focus();
      }
    }
  });
  return {form, load, resource: () => res};
}

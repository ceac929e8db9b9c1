// The admin API as the portal calls it: same origin, JSON, the bearer token of the
// signed-in admin (none locally).
import {accessToken} from './auth.js';

// ApiError is a non-2xx answer: status, and the JSON body ({"error":{code, field,
// rule, message}}) when there was one.
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error && body.error.message ? body.error.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }

  get code() {
    return this.body.error ? this.body.error.code : '';
  }

  get field() {
    return this.body.error ? this.body.error.field : '';
  }
}

// listeners for 401 answers (the shell offers to sign in again).
const unauthorized = new Set();
export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

// api sends one request: opts.body (JSON), opts.ifMatch (an ETag). It resolves with
// {status, data, etag} for 2xx and rejects with an ApiError otherwise.
export async function api(method, path, opts = {}) {
  const headers = {Accept: 'application/json'};
  const token = await accessToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(path, {method, headers, body, cache: 'no-store'});
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = {error: {message: text.slice(0, 200)}};
    }
  }
  if (res.status === 401) for (const fn of unauthorized) fn();
  if (!res.ok) throw new ApiError(res.status, data);
  return {status: res.status, data, etag: res.headers.get('ETag') || ''};
}

// tenantPath is /api/tenants/{id} + rest, with the parts escaped.
export function tenantPath(tenantId, ...rest) {
  return ['/api/tenants', tenantId, ...rest].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');
}

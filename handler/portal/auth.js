// Sign-in for the admin portal: the OAuth 2.0 authorization-code flow with PKCE
// (RFC 7636) against Microsoft Entra, as a single-page application. The settings come
// from config.json (the app's own registration and the admin API's scope). Tokens
// stay in sessionStorage: they end with the browser tab.

const KEY = 'teamscc.portal.';
const TOKEN = `${KEY}token`;
const FLOW = `${KEY}flow`;
const SKEW_MS = 120 * 1000; // renew this long before the token expires

let config = {mode: 'local'};

export function mode() {
  return config.mode;
}

export function settings() {
  return config;
}

// init reads config.json and finishes a sign-in when the page is the redirect back
// from Entra (?code=&state=). It resolves with an error text for the page to show
// when the sign-in failed, or "".
export async function init() {
  const res = await fetch('config.json', {cache: 'no-store'});
  if (!res.ok) throw new Error(`the portal's settings could not be read (${res.status})`);
  config = await res.json();
  const q = new URLSearchParams(location.search);
  if (!q.has('code') && !q.has('error')) return '';
  const flow = JSON.parse(sessionStorage.getItem(FLOW) || 'null');
  sessionStorage.removeItem(FLOW);
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', redirectUri() + ((flow && flow.back) || ''));
  if (q.has('error')) return `Sign-in failed: ${q.get('error_description') || q.get('error')}`;
  if (!flow || flow.state !== q.get('state')) return 'Sign-in failed: the answer does not belong to a sign-in this tab started. Sign in again.';
  try {
    await tokenRequest({grant_type: 'authorization_code', code: q.get('code'), redirect_uri: redirectUri(), code_verifier: flow.verifier});
  } catch (e) {
    return `Sign-in failed: ${e.message}`;
  }
  return '';
}

// redirectUri is the portal's own address (its folder): the SPA redirect URI to
// register on the app registration.
export function redirectUri() {
  return new URL('./', location.href).href.split('?')[0].split('#')[0];
}

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function randomString(n) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return base64url(a);
}

// signIn sends the browser to Entra's authorize endpoint; it comes back to
// redirectUri() with a code (see init).
export async function signIn() {
  if (!config.clientId) throw new Error('sign-in is not configured (GraphClientId)');
  const verifier = randomString(48);
  const state = randomString(24);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  sessionStorage.setItem(FLOW, JSON.stringify({verifier, state, back: location.hash}));
  const u = new URL(`${config.authority}/oauth2/v2.0/authorize`);
  u.search = new URLSearchParams({
    client_id: config.clientId,
    response_type: 'code',
    redirect_uri: redirectUri(),
    response_mode: 'query',
    scope: config.scopes.join(' '),
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
    prompt: 'select_account',
  }).toString();
  location.assign(u.href);
}

// signOut forgets the tokens of this tab.
export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

async function tokenRequest(params) {
  const res = await fetch(`${config.authority}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: {'Content-Type': 'application/x-www-form-urlencoded'},
    body: new URLSearchParams({client_id: config.clientId, scope: config.scopes.join(' '), ...params}),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.access_token) throw new Error(body.error_description || body.error || `token endpoint answered ${res.status}`);
  sessionStorage.setItem(TOKEN, JSON.stringify({
    accessToken: body.access_token,
    refreshToken: body.refresh_token || '',
    expiresAt: Date.now() + (Number(body.expires_in) || 3600) * 1000,
  }));
}

function stored() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKEN) || 'null');
  } catch {
    return null;
  }
}

// signedIn reports whether this tab holds a token (locally: always).
export function signedIn() {
  return config.mode === 'local' || !!stored();
}

// accessToken returns a token for the admin API, renewed with the refresh token
// when it is about to expire; "" locally (the local runner needs none) or when the
// tab has none left (the page then offers to sign in).
export async function accessToken() {
  if (config.mode === 'local') return '';
  const t = stored();
  if (!t) return '';
  if (t.expiresAt - SKEW_MS > Date.now()) return t.accessToken;
  if (!t.refreshToken) {
    sessionStorage.removeItem(TOKEN);
    return '';
  }
  try {
    await tokenRequest({grant_type: 'refresh_token', refresh_token: t.refreshToken});
    return stored().accessToken;
  } catch {
    sessionStorage.removeItem(TOKEN);
    return '';
  }
}

// whoAmI names the signed-in user from the token's claims (for display only: the
// API checks the token itself).
export function whoAmI() {
  const t = stored();
  if (!t) return '';
  try {
    const part = t.accessToken.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    const claims = JSON.parse(decodeURIComponent(Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('')));
    return claims.name || claims.preferred_username || claims.upn || claims.oid || '';
  } catch {
    return '';
  }
}

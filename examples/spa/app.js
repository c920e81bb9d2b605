// The example front end: one ES module, no build step. It reads the API's base URL from
// ./config.json, so the same page serves both deployment shapes (README "Two deployment
// shapes"): the API on the page's own site, or on another site.
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const $ = (id) => document.getElementById(id);

// Every call to the API carries the session cookie (credentials: 'include'); unsafe ones
// also carry the session's CSRF token. The browser adds Origin, which the API checks too.
async function callApi(api, path, { method = 'GET', body, csrfToken } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const response = await fetch(`${api}${path}`, {
    method,
    headers,
    credentials: 'include',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// ---- OpenFeature: the one place the OFREP provider is set up ------------------------------
// The API's bulk evaluation (POST /ofrep/v1/evaluate/flags) is an unsafe request riding the
// session cookie, so it needs the cookie (credentials) and the CSRF token (a header).
// Changes arrive by the API's event stream (ADR-0008): the bulk answer advertises a URL the
// provider opens with EventSource, and a `refetchEvaluation` event makes it fetch again at
// once. Polling (config.json's pollIntervalMs, 30 s by default) is only the fallback for
// when the stream is refused or lost.
function ofrepProvider(api, csrfToken, pollInterval) {
  return new OFREPWebProvider({
    baseUrl: api,
    headers: [['X-CSRF-Token', csrfToken]],
    fetchImplementation: (request, init) => fetch(request, { ...init, credentials: 'include' }),
    cacheMode: 'disabled', // values belong to this session; nothing kept in localStorage
    changeDetection: 'sse',
    pollInterval,
  });
}

async function startFlags(api, session, pollInterval) {
  await OpenFeature.setContext({ targetingKey: String(session.user_id) });
  await OpenFeature.setProviderAndWait(ofrepProvider(api, session.csrf_token, pollInterval));
  return OpenFeature.getClient();
}
// --------------------------------------------------------------------------------------------

const GETTERS = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  number: 'getNumberDetails',
  object: 'getObjectDetails',
};

function listItem(key, text) {
  const item = document.createElement('li');
  item.dataset.key = key;
  item.textContent = `${key}: ${text}`;
  return item;
}

function showOfrep(client, flags) {
  $('ofrep').replaceChildren(
    ...flags.map((f) => {
      const getter = GETTERS[typeof f.value] ?? 'getObjectDetails';
      const details = client[getter](f.key, f.value);
      return listItem(f.key, `${JSON.stringify(details.value)} (${details.reason})`);
    }),
  );
}

// The REST list names the flags; the OFREP list shows what the provider holds for them.
async function readFeatures(api) {
  const { status, body } = await callApi(api, '/api/v1/features');
  if (status !== 200) {
    $('features').replaceChildren(listItem('error', `HTTP ${status}`));
    return null;
  }
  $('features').replaceChildren(
    ...body.flags.map((f) => listItem(f.key, `${JSON.stringify(f.value)} (${f.reason})`)),
  );
  return body.flags;
}

async function showFeatures(api, session, pollInterval) {
  const flags = await readFeatures(api);
  if (flags === null) return;
  try {
    const client = await startFlags(api, session, pollInterval);
    showOfrep(client, flags);
    $('ofrep-status').textContent = 'Provider ready';
    let updates = 0;
    client.addHandler(ProviderEvents.ConfigurationChanged, async () => {
      const fresh = await readFeatures(api);
      if (fresh === null) return;
      showOfrep(client, fresh);
      updates += 1;
      $('ofrep-updates').textContent = `Updated ${updates} time(s), last at ${new Date().toISOString()}`;
    });
  } catch (error) {
    $('ofrep-status').textContent = `Provider failed: ${error}`;
  }
}

async function offerRename(api, session) {
  const { status, body } = await callApi(api, '/api/v1/auth/me');
  if (status !== 200) return;
  const managed = body.assignments.find((a) => a.effective_permissions.includes('manage_settings'));
  if (!managed) return;
  $('node-name').textContent = managed.node_name;
  $('rename-section').hidden = false;
  $('rename').onsubmit = async (event) => {
    event.preventDefault();
    const name = $('new-name').value;
    try {
      const result = await callApi(api, `/api/v1/hierarchy/nodes/${managed.node_id}`, {
        method: 'PATCH',
        body: { name },
        csrfToken: session.csrf_token,
      });
      $('rename-result').textContent =
        result.status === 200
          ? `Renamed to ${result.body.name}`
          : `Refused: HTTP ${result.status} ${result.body?.detail ?? ''}`;
      if (result.status === 200) $('node-name').textContent = result.body.name;
    } catch (error) {
      $('rename-result').textContent = `Failed: ${error}`;
    }
  };
}

async function main() {
  const config = await (await fetch('./config.json', { cache: 'no-store' })).json();
  const api = config.apiBaseUrl.replace(/\/+$/, '');
  const pollInterval = config.pollIntervalMs ?? 30000;
  $('api').textContent = api;
  const here = `${location.origin}${location.pathname}`;
  $('login').href = `${api}/api/v1/auth/login?next=${encodeURIComponent(here)}`;

  let check;
  try {
    check = await callApi(api, '/api/v1/auth/session/check');
  } catch (error) {
    $('session').textContent = `Session check failed: ${error}`;
    return;
  }
  if (check.status !== 200) {
    $('session').textContent = 'Signed out';
    $('login').hidden = false;
    return;
  }
  const session = check.body;
  $('session').textContent = `Signed in as ${session.email}`;
  $('logout').hidden = false;
  $('logout').onclick = async () => {
    const out = await callApi(api, '/api/v1/auth/logout', {
      method: 'POST',
      csrfToken: session.csrf_token,
    });
    await OpenFeature.close();
    if (out.status !== 200) {
      $('session').textContent = `Logout refused: HTTP ${out.status}`;
      return;
    }
    const after = await callApi(api, '/api/v1/auth/session/check');
    $('session').textContent = after.status === 401 ? 'Signed out' : `Still signed in (${after.status})`;
    {
      $('logout').hidden = true;
      $('login').hidden = false;
      $('rename-section').hidden = true;
      $('features').replaceChildren();
      $('ofrep').replaceChildren();
    }
  };
  await showFeatures(api, session, pollInterval);
  await offerRename(api, session);
}

main();

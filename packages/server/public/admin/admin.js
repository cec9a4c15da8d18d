// Switchboard admin dashboard: plain ES module, no framework, uPlot (served by this server) for the
// charts. It shows nothing until the API key is known and checked by the API itself; every figure
// comes from the /v1 API of the node (or gateway) that served the page.

const POLL_MS = 1000;
const WINDOW_S = 300;
const KEY_STORE = 'switchboard-admin-key';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

let apiKey = '';
let poller;
/** Per node, the last two distinct reports (by stats.ts), for its rates. */
const reports = new Map();
const series = { t: [], published: [], delivered: [], connections: [] };
let rateChart;
let connChart;

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const headers = { authorization: `Bearer ${apiKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, json.error?.code ?? 'error', json.error?.message ?? `HTTP ${res.status}`);
  return json;
}

const enc = encodeURIComponent;

// ---------- lock and unlock ----------

async function unlock(key) {
  apiKey = key;
  try {
    const first = await call('GET', '/v1/nodes');
    sessionStorage.setItem(KEY_STORE, key);
    $('unlock').hidden = true;
    $('unlock-error').hidden = true;
    $('dashboard').hidden = false;
    $('lock').hidden = false;
    setStatus('Live');
    makeCharts();
    render(first);
    poller = setInterval(poll, POLL_MS);
    void refreshOnline();
  } catch (err) {
    apiKey = '';
    sessionStorage.removeItem(KEY_STORE);
    showError(
      'unlock-error',
      err instanceof ApiError && err.status === 401 ? `Not unlocked: ${err.message}` : `The API did not answer: ${err.message}`,
    );
  }
}

function lock() {
  clearInterval(poller);
  apiKey = '';
  sessionStorage.removeItem(KEY_STORE);
  // Dropping the page is the sure way to forget every figure it showed.
  location.replace('/admin');
}

function setStatus(text, bad = false) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('bad', bad);
}

function showError(id, message) {
  const el = $(id);
  el.textContent = message;
  el.hidden = false;
}

// ---------- polling and the figures ----------

async function poll() {
  try {
    render(await call('GET', '/v1/nodes'));
    if (Math.floor(Date.now() / POLL_MS) % 5 === 0) void refreshOnline();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return lock();
    setStatus(`API unreachable: ${err.message}`, true);
  }
}

/** Per-second rates of a node from its last two reports; undefined until there are two. */
function rates(node) {
  const stats = node.stats;
  if (!stats) return undefined;
  let seen = reports.get(node.node);
  if (!seen || seen.startedAt !== node.startedAt) reports.set(node.node, (seen = { startedAt: node.startedAt, last: stats, prev: undefined }));
  else if (stats.ts > seen.last.ts) {
    seen.prev = seen.last;
    seen.last = stats;
  }
  if (!seen.prev) return undefined;
  const dt = (seen.last.ts - seen.prev.ts) / 1000;
  return {
    published: (seen.last.published - seen.prev.published) / dt,
    delivered: (seen.last.delivered - seen.prev.delivered) / dt,
  };
}

function render({ nodes }) {
  setStatus(`Live · ${new Date().toLocaleTimeString()}`);
  let connections = 0;
  let channels = 0;
  let users = 0;
  let published = 0;
  let delivered = 0;
  const rows = [];
  for (const node of nodes) {
    const r = rates(node);
    connections += node.connections;
    channels += node.stats?.channels ?? 0;
    users += node.stats?.users ?? 0;
    published += r?.published ?? 0;
    delivered += r?.delivered ?? 0;
    rows.push(nodeRow(node, r));
  }
  for (const id of reports.keys()) if (!nodes.some((n) => n.node === id)) reports.delete(id);
  $('total-nodes').textContent = String(nodes.length);
  $('total-connections').textContent = String(connections);
  $('total-channels').textContent = String(channels);
  $('rate-published').textContent = formatRate(published);
  $('rate-delivered').textContent = formatRate(delivered);
  if ($('total-users').dataset.exact !== 'true') $('total-users').textContent = String(users);
  $('nodes').tBodies[0].replaceChildren(...rows);
  renderRing(nodes);
  pushPoint(published, delivered, connections);
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function nodeRow(node, r) {
  const tr = document.createElement('tr');
  tr.dataset.node = node.node;
  tr.append(
    cell(node.node),
    cell(node.url, 'muted'),
    cell(String(node.connections), 'num'),
    cell(String(node.stats?.users ?? '–'), 'num'),
    cell(String(node.stats?.channels ?? '–'), 'num'),
    cell(r ? formatRate(r.published) : '…', 'num'),
    cell(r ? formatRate(r.delivered) : '…', 'num'),
    cell(node.share === undefined ? '–' : `${(node.share * 100).toFixed(1)} %`, 'num'),
    cell(formatUptime(Date.now() - node.startedAt), 'num'),
  );
  return tr;
}

const PALETTE = ['#4f46e5', '#0891b2', '#16a34a', '#d97706', '#db2777', '#7c3aed', '#0d9488', '#dc2626'];

function renderRing(nodes) {
  const ring = $('ring');
  const parts = nodes
    .filter((n) => n.share !== undefined)
    .map((n, i) => {
      const part = document.createElement('div');
      part.className = 'share';
      part.dataset.node = n.node;
      // The CSSOM, not a style attribute: the page's CSP allows no inline style.
      part.style.flexGrow = String(n.share);
      part.style.background = PALETTE[i % PALETTE.length];
      part.title = `${n.node}: ${(n.share * 100).toFixed(1)} % of the users`;
      part.textContent = `${n.node} ${(n.share * 100).toFixed(0)} %`;
      return part;
    });
  ring.replaceChildren(...parts);
}

function formatRate(n) {
  return n >= 100 ? Math.round(n).toLocaleString() : n.toFixed(1);
}

function formatUptime(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

// ---------- charts ----------

function makeCharts() {
  const width = Math.max(320, $('chart-rates').clientWidth);
  const clock = (_u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }));
  const axes = [{ stroke: '#667085', values: clock, space: 80 }, { stroke: '#667085' }];
  const legend = { live: false };
  rateChart = new globalThis.uPlot(
    {
      width,
      height: 200,
      axes,
      legend,
      series: [{}, { label: 'published /s', stroke: PALETTE[0], width: 2 }, { label: 'delivered /s', stroke: PALETTE[1], width: 2 }],
    },
    [[], [], []],
    $('chart-rates'),
  );
  connChart = new globalThis.uPlot(
    { width, height: 140, axes, legend, series: [{}, { label: 'connections', stroke: PALETTE[2], width: 2, fill: 'rgba(22,163,74,0.08)' }] },
    [[], []],
    $('chart-connections'),
  );
}

function pushPoint(published, delivered, connections) {
  if (!rateChart) return;
  const now = Date.now() / 1000;
  series.t.push(now);
  series.published.push(published);
  series.delivered.push(delivered);
  series.connections.push(connections);
  while (series.t.length > 0 && series.t[0] < now - WINDOW_S) for (const k of Object.keys(series)) series[k].shift();
  rateChart.setData([series.t, series.published, series.delivered]);
  connChart.setData([series.t, series.connections]);
}

// ---------- lookups ----------

async function refreshOnline() {
  try {
    const { users, more } = await call('GET', '/v1/users?limit=100');
    const list = $('online');
    list.replaceChildren(
      ...users.sort().map((u) => {
        const li = document.createElement('li');
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'chip';
        button.textContent = u;
        button.addEventListener('click', () => lookUp(u));
        li.append(button);
        return li;
      }),
    );
    $('online-note').textContent = more ? '(the first 100)' : `(${users.length})`;
    if (!more) {
      $('total-users').textContent = String(users.length);
      $('total-users').dataset.exact = 'true';
    } else delete $('total-users').dataset.exact;
  } catch (err) {
    $('online-note').textContent = `(${err.message})`;
  }
}

function table(headers, rows) {
  const t = document.createElement('table');
  const head = t.createTHead().insertRow();
  for (const h of headers) head.append(Object.assign(document.createElement('th'), { textContent: h }));
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const value of row) tr.append(cell(String(value)));
  }
  return t;
}

function showResult(id, ...children) {
  const el = $(id);
  el.replaceChildren(...children);
  el.hidden = false;
}

function note(text, bad = false) {
  const p = document.createElement('p');
  p.textContent = text;
  p.className = bad ? 'error' : 'muted';
  return p;
}

async function lookUp(user) {
  $('user-id').value = user;
  try {
    const u = await call('GET', `/v1/users/${enc(user)}`);
    showResult(
      'user-result',
      note(u.online ? `${u.user} is online with ${u.sessions.length} session(s)` : `${u.user} is offline`),
      ...(u.sessions.length > 0
        ? [
            table(
              ['Session', 'Node', 'Since'],
              u.sessions.map((s) => [s.session, s.node, new Date(s.since).toLocaleTimeString()]),
            ),
          ]
        : []),
    );
  } catch (err) {
    showResult('user-result', note(err.message, true));
  }
}

async function groupPresence(group) {
  try {
    const p = await call('GET', `/v1/presence/${enc(`group:${group}`)}`);
    showResult(
      'presence-result',
      note(`${p.users.length} user(s) in ${p.channel}`),
      ...(p.users.length > 0 ? [table(['User', 'Sessions', 'Nodes'], p.users.map((u) => [u.user, u.sessions, u.nodes.join(', ')]))] : []),
    );
  } catch (err) {
    showResult('presence-result', note(err.message, true));
  }
}

async function channelHistory(channel) {
  try {
    const head = await call('GET', `/v1/history/${enc(channel)}?since=0&limit=0`);
    const page = await call('GET', `/v1/history/${enc(channel)}?since=${Math.max(0, head.offset - 20)}&limit=20`);
    showResult(
      'history-result',
      note(`${page.channel}: epoch ${page.epoch}, latest offset ${page.offset}, ${page.messages.length} kept message(s) shown`),
      ...(page.messages.length > 0
        ? [
            table(
              ['Offset', 'Time', 'From', 'Topic', 'Data'],
              page.messages
                .reverse()
                .map((m) => [m.offset, new Date(m.ts).toLocaleTimeString(), m.from ?? '(server)', m.topic, JSON.stringify(m.data)]),
            ),
          ]
        : []),
    );
  } catch (err) {
    showResult('history-result', note(err.message, true));
  }
}

// ---------- actions, each behind a confirmation ----------

function confirmAction(text) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

async function publish() {
  const channel = $('publish-channel').value.trim();
  const topic = $('publish-topic').value.trim();
  let data;
  try {
    data = JSON.parse($('publish-data').value || 'null');
  } catch {
    return showResult('publish-result', note('Data is not valid JSON', true));
  }
  if (!(await confirmAction(`Publish "${topic}" to ${channel}?`))) return showResult('publish-result', note('Not published'));
  try {
    const r = await call('POST', '/v1/publish', { channel, topic, data });
    showResult('publish-result', note(`Published to ${r.channel} at offset ${r.offset} (epoch ${r.epoch})`));
  } catch (err) {
    showResult('publish-result', note(err.message, true));
  }
}

async function disconnect() {
  const user = $('disconnect-user').value.trim();
  if (!(await confirmAction(`Disconnect every session of ${user}?`))) return showResult('disconnect-result', note('Nobody was disconnected'));
  try {
    const r = await call('POST', '/v1/disconnect', { user });
    showResult('disconnect-result', note(`Disconnected ${r.user}: ${r.sessions} session(s) closed`));
    void refreshOnline();
  } catch (err) {
    showResult('disconnect-result', note(err.message, true));
  }
}

// ---------- wiring ----------

function onSubmit(id, handler) {
  $(id).addEventListener('submit', (event) => {
    event.preventDefault();
    void handler(event.target);
  });
}

onSubmit('unlock-form', () => unlock($('unlock-key').value));
onSubmit('user-form', () => lookUp($('user-id').value.trim()));
onSubmit('presence-form', () => groupPresence($('presence-group').value.trim()));
onSubmit('history-form', () => channelHistory($('history-channel').value.trim()));
onSubmit('publish-form', publish);
onSubmit('disconnect-form', disconnect);
$('lock').addEventListener('click', lock);

// The key in the fragment (#key=…) never reaches a server; take it, then clear it from the address bar.
const fromFragment = new URLSearchParams(location.hash.slice(1)).get('key');
if (fromFragment) history.replaceState(null, '', location.pathname);
const known = fromFragment ?? sessionStorage.getItem(KEY_STORE);
if (known) void unlock(known);

/**
 * Switchboard demo client: plain browser JavaScript speaking protocol v1 over one WebSocket.
 * What must survive a dropped connection (who is signed in, the last `(epoch, offset)` seen per
 * channel) lives in sessionStorage: per tab, so two tabs of two users never mix.
 */

/** The element with this `data-testid` (tests find elements the same way). */
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const IDENTITY_KEY = 'switchboard.identity';
const BACKOFF_BASE_MS = 500, BACKOFF_CAP_MS = 15_000;
/** Closes after which retrying with the same token cannot help. */
const TERMINAL = { 4001: 'Token rejected (4001)', 4003: 'Disconnected by the server (4003)', 1008: 'Refused by policy (1008)' };

const config = { wsPath: '/ws', dev: false };
/** @type {{ user: string, group: string, token: string } | null} */
let identity = null;
/** @type {WebSocket | null} The live socket; a dropped one is detached so its late frames are ignored. */
let ws = null;
let attempt = 0, retryAt = 0, lastFrameAt = 0, nextId = 1, retryTimer, tickTimer, heartbeatTimer;
/** Reply callbacks by request id. */
const pending = new Map();
/** @type {Record<string, { epoch: string, offset: number }>} The last position seen per channel. */
let positions = {};
let presence = new Set();
/** Presence events seen while a `presence` request is out; replayed on top of its answer. */
let presenceLog = null;

/** JSON.parse, or null for text that does not parse. */
const parseJson = (text) => { try { return JSON.parse(text); } catch { return null; } };

const store = {
  get: (key) => parseJson(sessionStorage.getItem(key) ?? 'null'),
  set: (key, value) => sessionStorage.setItem(key, JSON.stringify(value)),
};
const positionsKey = () => `switchboard.positions.${identity.user}`;
const savePositions = () => store.set(positionsKey(), positions);
const groupChannel = () => `group:${identity.group}`;

/** Builds an element: attributes as given, children appended (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

/** base64url of UTF-8 text, as `?resume=` wants it. */
function base64url(text) {
  let binary = '';
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function setState(state, text) {
  $('conn-state').dataset.state = state;
  $('conn-text').textContent = text;
  $('presence-list').classList.toggle('stale', state !== 'connected');
}

/** Shows a notice above the log (click to dismiss); only the latest few are kept. */
function notice(text, kind = 'info') {
  const item = el('li', { 'data-testid': 'notice', class: kind, title: 'Click to dismiss' }, text);
  item.addEventListener('click', () => item.remove());
  $('notices').append(item);
  while ($('notices').children.length > 4) $('notices').firstElementChild.remove();
}

// ---- connection ------------------------------------------------------------------------------
function connect() {
  clearTimers();
  setState('connecting', attempt ? `Reconnecting… (attempt ${attempt + 1})` : 'Connecting…');
  let url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${config.wsPath}?token=${encodeURIComponent(identity.token)}`;
  if (Object.keys(positions).length > 0) url += `&resume=${base64url(JSON.stringify(positions))}`;
  const socket = (ws = new WebSocket(url));
  socket.onmessage = (e) => ws === socket && onData(e.data);
  socket.onclose = (e) => ws === socket && onClose(e.code, e.reason);
}

/**
 * Gives up on the socket at once: the browser says the network is gone, or the heartbeat went
 * unanswered. Waiting for a close handshake over a dead link could take minutes.
 */
function drop(why) {
  if (ws) ws.onmessage = ws.onclose = null;
  ws?.close(1000, why);
  ws = null;
  connectionLost(false);
}

function onClose(code, reason) {
  ws = null;
  if (TERMINAL[code]) return signOut(`${TERMINAL[code]}${reason ? `: ${reason}` : ''}. Sign in again.`, false);
  connectionLost(code === 4000); // 4000 "moved": reconnect now, no backoff
}

function connectionLost(now) {
  clearTimers();
  for (const callback of pending.values()) callback({ ok: false, error: { code: 'unavailable', message: 'connection lost' } });
  pending.clear();
  presenceLog = null;
  if (!navigator.onLine) return setState('offline', 'Offline — waiting for the network');
  // Full jitter: a random delay up to an exponentially growing cap, so clients do not return in step.
  const delay = now ? 0 : Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt++);
  retryAt = Date.now() + delay;
  retryTimer = setTimeout(connect, delay);
  tickTimer = setInterval(countdown, 250);
  countdown();
}

const countdown = () => setState('offline', `Offline — reconnecting in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))}s`);
const clearTimers = () => [retryTimer, tickTimer, heartbeatTimer].forEach(clearTimeout);

/** Browsers cannot see WebSocket pings, so the app pings too and treats silence as a dead link. */
function startHeartbeat(seconds) {
  const ms = Math.max(1, Number(seconds) || 25) * 1000;
  lastFrameAt = Date.now();
  heartbeatTimer = setInterval(() => (Date.now() - lastFrameAt > 2 * ms ? drop('heartbeat missed') : ws?.send('{"type":"ping"}')), ms);
}

/** Sends a frame with an id; `callback` gets its reply. False when there is no open socket. */
function request(frame, callback) {
  if (ws?.readyState !== WebSocket.OPEN) {
    notice('Not connected: nothing was sent.', 'error');
    return false;
  }
  pending.set(nextId, callback);
  ws.send(JSON.stringify({ ...frame, id: nextId++ }));
  return true;
}

// ---- frames ----------------------------------------------------------------------------------
function onData(data) {
  lastFrameAt = Date.now();
  for (const line of String(data).split('\n')) {
    const f = parseJson(line); // the bare `pong`, and frames that do not parse, are ignored
    if (!f || typeof f !== 'object') continue;
    if (f.type === 'welcome') onWelcome(f);
    else if (f.type === 'message') onMessage(f);
    else if (f.type === 'presence') onPresence(f);
    else if (f.type === 'error') notice(`${f.error?.code}: ${f.error?.message}`, 'error');
    else if (f.type === 'reply' && pending.has(f.id)) {
      pending.get(f.id)(f);
      pending.delete(f.id);
    }
  }
}

function onWelcome(f) {
  attempt = 0;
  identity.user = f.user ?? identity.user; // the token, not the typed name, says who we are
  $('me').textContent = identity.user;
  $('session-id').textContent = f.session;
  setState('connected', `Connected to ${f.node}`);
  let missed = 0;
  for (const [channel, s] of Object.entries(f.subscriptions ?? {})) {
    if (s.recovered === false) notice(`Messages on ${channel} were lost while offline (recovered: false): the log may have a gap.`, 'warn');
    // On a recovered channel the replay follows and moves our position; elsewhere start from now.
    if (s.recovered === true && positions[channel]) missed += Math.max(0, s.offset - positions[channel].offset);
    else positions[channel] = { epoch: s.epoch, offset: s.offset };
  }
  savePositions();
  if (missed > 0) notice(`Back online: ${missed} missed message${missed === 1 ? '' : 's'} recovered.`);
  startHeartbeat(f.heartbeat);
  requestPresence();
}

/** Shows a message once: replay and live delivery may overlap, so (channel, offset) is checked. */
function onMessage(f) {
  if (typeof f.channel !== 'string' || !Number.isInteger(f.offset)) return;
  const pos = positions[f.channel];
  if (pos && pos.epoch === f.epoch && f.offset <= pos.offset) return;
  positions[f.channel] = { epoch: f.epoch, offset: f.offset };
  savePositions();
  render(f);
}

/** Appends a message to the log; `to` marks our own direct message, echoed locally. */
function render({ channel, offset, from, data, ts }, to) {
  const mine = from === identity.user;
  const kind = channel.startsWith('user:') ? 'direct' : channel === 'broadcast' ? 'broadcast' : 'group';
  const text = typeof data?.text === 'string' ? data.text : JSON.stringify(data);
  const time = new Date(ts ?? Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const attrs = { 'data-testid': 'chat-message', 'data-channel': channel, 'data-offset': String(offset ?? ''), 'data-from': from ?? '' };
  const label = to ? `you → ${to}` : mine ? 'you' : (from ?? 'server');
  const meta = el('div', { class: 'meta' }, el('span', { class: 'from' }, label), kind === 'group' ? '' : el('span', { class: 'badge' }, kind), el('time', {}, time));
  const log = $('chat-log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(el('li', { ...attrs, class: `${kind}${mine ? ' mine' : ''}` }, meta, el('p', { class: 'text', 'data-testid': 'chat-text' }, text)));
  if (atBottom || mine) log.scrollTop = log.scrollHeight;
}

// ---- presence --------------------------------------------------------------------------------
function requestPresence() {
  presenceLog = [];
  request({ type: 'presence', channel: groupChannel() }, (r) => {
    if (!r.ok) return notice(`Presence: ${r.error?.message ?? 'failed'}`, 'error');
    presence = new Set([identity.user, ...r.users.map((u) => u.user)]); // our own join may still be on its way
    const seen = presenceLog ?? [];
    presenceLog = null;
    seen.forEach(onPresence);
    renderPresence();
  });
}

function onPresence(f) {
  if (f.channel !== groupChannel()) return;
  presenceLog?.push(f);
  if (f.event === 'join') presence.add(f.user);
  else if (f.event === 'leave' && f.user !== identity.user) presence.delete(f.user);
  renderPresence();
}

function renderPresence() {
  const item = (user) =>
    el('li', { 'data-testid': 'presence-user', 'data-user': user }, el('span', { class: 'avatar' }, user.slice(0, 1).toUpperCase()), user, user === identity.user ? el('small', {}, '(you)') : '');
  $('presence-list').replaceChildren(...[...presence].sort().map(item));
}

// ---- signing in and out ----------------------------------------------------------------------
/** Dev mode mints a token with /dev/token; otherwise the user pastes one. */
async function signIn({ user, group, token }) {
  if (config.dev) {
    const res = await fetch(`/dev/token?user=${encodeURIComponent(user)}&groups=${encodeURIComponent(group)}`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error?.message ?? `token request failed (HTTP ${res.status})`);
    token = body.token;
  }
  identity = { user, group, token };
  store.set(IDENTITY_KEY, { user, group, token: config.dev ? '' : token });
  positions = store.get(positionsKey()) ?? {};
  $('me').textContent = user;
  $('group-name').textContent = group;
  showSignIn(false);
  $('chat-input').focus();
  connect();
}

/** Leaves; `forget` drops the stored positions too (an explicit sign-out, not a rejected token). */
function signOut(message = '', forget = true) {
  ws?.close(1000, 'signed out');
  ws = null;
  clearTimers();
  pending.clear();
  if (identity && forget) sessionStorage.removeItem(positionsKey());
  sessionStorage.removeItem(IDENTITY_KEY);
  identity = null;
  $('chat-log').replaceChildren();
  $('notices').replaceChildren();
  showSignIn(true, message);
  setState('signed-out', 'Signed out');
}

function showSignIn(on, message = '') {
  $('signin').hidden = !on;
  $('app').hidden = on;
  $('signin-error').textContent = message;
  $('signin-error').hidden = !message;
}

// ---- wiring ----------------------------------------------------------------------------------
$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  signIn({ user: form.user.value.trim(), group: form.group.value.trim() || 'lobby', token: form.token.value.trim() }).catch((err) => {
    identity = null;
    showSignIn(true, err.message);
  });
});

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-input').value.trim();
  const ok = (r) => r.ok || notice(`Not sent: ${r.error?.message}`, 'error');
  if (text && request({ type: 'publish', channel: groupChannel(), topic: 'chat', data: { text } }, ok)) $('chat-input').value = '';
});

$('dm-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const [to, text] = [$('dm-to').value.trim(), $('dm-text').value.trim()];
  const done = (r) => {
    if (!r.ok) return notice(`Direct message to ${to} not sent: ${r.error?.message}`, 'error');
    // Our own DM goes to user:<to>, not back to us (unless `to` is us), so it is echoed here.
    if (to !== identity.user) render({ channel: `user:${to}`, offset: r.offset, from: identity.user, data: { text } }, to);
  };
  if (to && text && request({ type: 'send', to, topic: 'chat', data: { text } }, done)) $('dm-text').value = '';
});

$('signout').addEventListener('click', () => signOut());

// The browser knows the network is gone long before a heartbeat would: drop, and wait for it.
window.addEventListener('offline', () => ws && drop('network offline'));
window.addEventListener('online', () => identity && !ws && connect());

Object.assign(config, await fetch('/config.json').then((r) => r.json()).catch(() => ({})));
$('signin-token-field').hidden = config.dev;
$('signin-token').required = !config.dev;
const saved = store.get(IDENTITY_KEY);
if (saved && (config.dev || saved.token)) signIn(saved).catch(() => signOut('Could not sign in again: please sign in.'));

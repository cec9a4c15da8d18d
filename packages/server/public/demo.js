/**
 * Switchboard demo client: plain browser JavaScript on the Switchboard SDK, which reconnects,
 * heartbeats, resumes every channel where this tab left it, delivers each message once, queues
 * sends while offline, and drops the socket as soon as the browser reports the network gone.
 * Who is signed in, and the SDK's last position per channel, live in sessionStorage: per tab, so
 * two tabs of two users never mix, and a reload of the page resumes too.
 */
import { Switchboard, WebStoragePositionStore, fullJitter } from '/switchboard.min.js';

/** The element with this `data-testid` (tests find elements the same way). */
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const IDENTITY_KEY = 'switchboard.identity';
/** Closes after which the SDK does not retry (with a pasted token, 4001 is one of them). */
const TERMINAL = {
  1000: 'Closed by the server (1000)',
  1008: 'Refused by policy (1008)',
  1009: 'Message too large (1009)',
  4001: 'Token rejected (4001)',
  4003: 'Disconnected by the server (4003)',
};

const config = { wsPath: '/ws', dev: false };
/** @type {{ user: string, group: string, token: string } | null} */
let identity = null;
/** @type {Switchboard | null} */
let client = null;
let countdownTimer;
let presence = new Set();
/** Presence events seen while a `presence` request is out; replayed on top of its answer. */
let presenceLog = null;

/** JSON.parse, or null for text that does not parse. */
const parseJson = (text) => { try { return JSON.parse(text); } catch { return null; } };

const store = {
  get: (key) => parseJson(sessionStorage.getItem(key) ?? 'null'),
  set: (key, value) => sessionStorage.setItem(key, JSON.stringify(value)),
};
const positionsKey = (user) => `switchboard.positions.${user}`;
const groupChannel = () => `group:${identity.group}`;

/** Builds an element: attributes as given, children appended (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function setState(state, text) {
  clearInterval(countdownTimer);
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

/** Dev mode mints a token for the typed name and group with /dev/token. */
async function devToken(user, group) {
  const res = await fetch(`/dev/token?user=${encodeURIComponent(user)}&groups=${encodeURIComponent(group)}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error?.message ?? `token request failed (HTTP ${res.status})`);
  return body.token;
}

/** The `sub` of a JWT, read without checking it (the server does that): whose positions to use. */
function tokenSubject(token) {
  try {
    const sub = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

// ---- connection ------------------------------------------------------------------------------
function connect() {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${config.wsPath}`;
  // In dev mode the SDK asks for a fresh token after a 4001 (expired); the first is the one in hand.
  let inHand = identity.token;
  const freshToken = () => {
    const token = inHand ?? devToken(identity.user, identity.group);
    inHand = undefined;
    return token;
  };
  const c = (client = new Switchboard(url, {
    token: config.dev ? freshToken : identity.token,
    backoff: fullJitter({ baseMs: 500, maxMs: 15_000 }),
    positions: new WebStoragePositionStore(sessionStorage, positionsKey(identity.user)),
  }));
  /** Listens on the SDK while `c` is the page's client: a signed-out client's late events are ignored. */
  const on = (emitter, event, listener) => emitter.on(event, (payload) => client === c && listener(payload));

  on(c.events, 'connecting', ({ attempt }) => setState('connecting', attempt ? `Reconnecting… (attempt ${attempt + 1})` : 'Connecting…'));
  on(c.events, 'connected', onConnected);
  on(c.events, 'disconnected', ({ reconnectInMs }) => {
    if (reconnectInMs === null) return setState('offline', 'Offline — waiting for the network');
    const retryAt = Date.now() + reconnectInMs;
    const text = () => `Offline — reconnecting in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))}s`;
    setState('offline', text());
    countdownTimer = setInterval(() => ($('conn-text').textContent = text()), 250);
  });
  on(c.events, 'closed', ({ code, reason }) => {
    const why = TERMINAL[code] ?? `Connection closed (${code})`;
    signOut(`${why}${reason ? `: ${reason}` : ''}. Sign in again.`, false);
  });
  on(c.events, 'recovery-failed', ({ channel }) => notice(`Messages on ${channel} were lost while offline (recovered: false): the log may have a gap.`, 'warn'));
  on(c.events, 'error', ({ code, message }) => notice(`${code}: ${message}`, 'error'));
  on(c.events, 'message', render);
  on(c.events, 'receipt', markRead);

  const group = c.channel(groupChannel());
  on(group, 'join', onPresence);
  on(group, 'leave', onPresence);
}

/** A (re)connection: the SDK replays what each resumed channel missed right after this. */
function onConnected(welcome) {
  identity.user = welcome.user ?? identity.user; // the token, not the typed name, says who we are
  $('me').textContent = identity.user;
  $('session-id').textContent = welcome.session;
  setState('connected', `Connected to ${welcome.node}`);
  let missed = 0;
  for (const [channel, s] of Object.entries(welcome.subscriptions ?? {})) {
    // Before its replay, a recovered channel still stands where this tab left it.
    const seen = client.position(channel);
    if (s.recovered === true && seen?.epoch === s.epoch) missed += Math.max(0, s.offset - seen.offset);
  }
  if (missed > 0) notice(`Back online: ${missed} missed message${missed === 1 ? '' : 's'} recovered.`);
  void refreshPresence();
}

/** True when the server keeps inboxes (its welcome says where our own channel is acked). */
const inboxOn = () => client?.session?.subscriptions?.[`user:${identity.user}`]?.acked !== undefined;

/** Receipts that came before the message they are for was shown, by `channel offset`. */
const earlyReceipts = new Set();

/** A read receipt: our direct message at `channel`/`offset` was read by `user`. */
function markRead({ channel, offset }) {
  const item = document.querySelector(`[data-testid="chat-message"][data-channel="${globalThis.CSS.escape(channel)}"][data-offset="${offset}"].mine`);
  if (!item) return void earlyReceipts.add(`${channel} ${offset}`);
  item.dataset.status = 'read';
  const status = item.querySelector('[data-testid="chat-status"]');
  if (status) status.textContent = '✓✓ read';
}

/** Appends a message to the log; `to` marks our own direct message, echoed locally (with `receipt` when one was asked for). */
function render({ channel, offset, from, data, ts }, to, receipt = false) {
  const mine = from === identity.user;
  const kind = channel.startsWith('user:') ? 'direct' : channel === 'broadcast' ? 'broadcast' : 'group';
  const text = typeof data?.text === 'string' ? data.text : JSON.stringify(data);
  const time = new Date(ts ?? Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const attrs = { 'data-testid': 'chat-message', 'data-channel': channel, 'data-offset': String(offset ?? ''), 'data-from': from ?? '' };
  const label = to ? `you → ${to}` : mine ? 'you' : (from ?? 'server');
  const meta = el('div', { class: 'meta' }, el('span', { class: 'from' }, label), kind === 'group' ? '' : el('span', { class: 'badge' }, kind), el('time', {}, time));
  const log = $('chat-log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const status = receipt ? el('span', { class: 'status', 'data-testid': 'chat-status' }, '✓ sent') : '';
  if (receipt) attrs['data-status'] = 'sent';
  log.append(el('li', { ...attrs, class: `${kind}${mine ? ' mine' : ''}` }, meta, el('p', { class: 'text', 'data-testid': 'chat-text' }, text), status));
  if (atBottom || mine) log.scrollTop = log.scrollHeight;
  if (receipt && earlyReceipts.delete(`${channel} ${offset}`)) markRead({ channel, offset });
}

// ---- presence --------------------------------------------------------------------------------
async function refreshPresence() {
  const [c, log] = [client, (presenceLog = [])];
  let users;
  try {
    users = await c.channel(groupChannel()).presence();
  } catch (err) {
    // A dropped connection fails the request; the next `connected` asks again.
    if (client === c && err.code !== 'disconnected') notice(`Presence: ${err.message}`, 'error');
    return;
  } finally {
    if (presenceLog === log) presenceLog = null;
  }
  if (client !== c) return; // signed out meanwhile
  presence = new Set([identity.user, ...users.map((u) => u.user)]); // our own join may still be on its way
  log.forEach(onPresence);
  renderPresence();
}

function onPresence(f) {
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
  if (config.dev) token = await devToken(user, group);
  else user = tokenSubject(token) ?? user;
  identity = { user, group, token };
  store.set(IDENTITY_KEY, { user, group, token: config.dev ? '' : token });
  presence = new Set();
  renderPresence();
  $('me').textContent = user;
  $('group-name').textContent = group;
  showSignIn(false);
  $('chat-input').focus();
  connect();
}

/** Leaves; `forget` drops the stored positions too (an explicit sign-out, not a rejected token). */
function signOut(message = '', forget = true) {
  const c = client;
  client = null;
  c?.disconnect();
  if (identity && forget) sessionStorage.removeItem(positionsKey(identity.user));
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

// Offline, the SDK queues what is sent and delivers it once the connection is back.
const queuedNotice = () => client.state === 'connected' || notice('Offline: your message will be sent when the connection is back.');
/** A failed send or publish; `closed` ones were dropped by signing out, which needs no notice. */
const failed = (what) => (err) => err.code === 'closed' || notice(`${what}: ${err.message}`, 'error');

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-input').value.trim();
  if (!text) return;
  client.publish(groupChannel(), 'chat', { text }).catch(failed('Not sent'));
  queuedNotice();
  $('chat-input').value = '';
});

$('dm-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const [to, text, me] = [$('dm-to').value.trim(), $('dm-text').value.trim(), identity.user];
  if (!to || !text) return;
  // With the inbox on, ask for a read receipt: the message shows "read" once `to` has seen it.
  const receipt = inboxOn() && to !== me;
  client.send(to, 'chat', { text }, { receipt }).then(
    // Our own DM goes to user:<to>, not back to us (unless `to` is us), so it is echoed here.
    (r) => to !== me && render({ channel: `user:${to}`, offset: r.offset, from: me, data: { text } }, to, receipt),
    failed(`Direct message to ${to} not sent`),
  );
  queuedNotice();
  $('dm-text').value = '';
});

$('signout').addEventListener('click', () => signOut());

Object.assign(config, await fetch('/config.json').then((r) => r.json()).catch(() => ({})));
$('signin-token-field').hidden = config.dev;
$('signin-token').required = !config.dev;
const saved = store.get(IDENTITY_KEY);
if (saved && (config.dev || saved.token)) signIn(saved).catch(() => signOut('Could not sign in again: please sign in.'));

import {
  encodeResume,
  reconnectAdvice,
  type MessageFrame,
  type PresenceUser,
  type ReplyFrame,
  type ServerFrame,
  type StreamPosition,
  type WelcomeFrame,
} from '@switchboard/protocol';
import { fullJitter, type Backoff } from './backoff.js';
import { Emitter, type Listener } from './emitter.js';
import { MemoryPositionStore, type PositionStore } from './position-store.js';
import { Subscription } from './subscription.js';
import {
  SwitchboardError,
  type ClientEvents,
  type ClientState,
  type Message,
  type PublishResult,
  type TopicMap,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.js';

/** The parts of a browser's window (or worker scope) the client follows the network with. */
type BrowserScope = Pick<EventTarget, 'addEventListener' | 'removeEventListener'> & { navigator?: { onLine?: boolean } };

/** The browser's global scope, or undefined where there is none (Node has no global `addEventListener`). */
function browserScope(): BrowserScope | undefined {
  const scope = globalThis as Partial<BrowserScope>;
  return typeof scope.addEventListener === 'function' ? (scope as BrowserScope) : undefined;
}

/** Options of {@link Switchboard}. */
export interface ClientOptions {
  /** The JWT, or a function returning one; a function is called again after a 4001 close (refresh). */
  token: string | (() => string | Promise<string>);
  /** WebSocket constructor. @default globalThis.WebSocket (pass `ws`'s export on Node 20) */
  WebSocket?: WebSocketConstructor;
  /** Delay before reconnect attempt n. @default fullJitter({ baseMs: 500, maxMs: 30_000 }) */
  backoff?: Backoff;
  /** Where per-channel positions are kept between connections (and page loads). @default memory */
  positions?: PositionStore;
  /** Sends and publishes waiting for a connection; one more is rejected with `queue_full`. @default 1000 */
  maxQueue?: number;
  /** A request without a reply for this long, while connected, is rejected with `timeout`. @default 10_000 */
  requestTimeoutMs?: number;
  /**
   * A connection attempt without `welcome` for this long is abandoned and retried with backoff: a
   * network that swallows packets would otherwise leave it opening forever (the heartbeat only
   * starts with `welcome`). @default 10_000
   */
  connectTimeoutMs?: number;
  /**
   * Before each connect, ask the server (`GET /v1/route` with this client's token) which node owns
   * this user on the hash ring, and connect to it directly — the seeds' two-step connect, for
   * clusters with `hash` routing and nodes reachable by their public URLs. @default false
   */
  directConnect?: boolean;
  /** Connect right away (in a microtask, so listeners added after `new` see every event). @default true */
  autoConnect?: boolean;
}

interface Pending {
  id: number;
  frame: Record<string, unknown>;
  resolve: (reply: ReplyFrame & { ok: true }) => void;
  reject: (err: SwitchboardError) => void;
  /** Sends and publishes carry an idempotency key, so they are safe to resend after a reconnect. */
  retry: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * A Switchboard connection that survives the network: it reconnects with backoff, resumes every
 * channel from the last position the app saw (each message reaches the app once, in order per
 * channel), queues sends while offline and resends them safely with idempotency keys.
 */
export class Switchboard<Topics extends TopicMap = TopicMap> {
  /** Lifecycle events: `state`, `connecting`, `connected`, `disconnected`, `closed`, `message`, … */
  readonly events = new Emitter<ClientEvents>();
  private readonly options: Required<Omit<ClientOptions, 'token' | 'WebSocket'>> & Pick<ClientOptions, 'token'>;
  private readonly WS: WebSocketConstructor;
  private readonly topics = new Map<string, Set<Listener<Message>>>();
  private readonly channels = new Map<string, Subscription<Topics>>();
  /** Channels the app subscribed to explicitly (beyond the token's automatic ones). */
  private readonly explicit = new Set<string>();
  private readonly positions: Record<string, StreamPosition>;
  private readonly pending = new Map<number, Pending>();
  private queue: Pending[] = [];
  private ws: WebSocketLike | undefined;
  private current: ClientState = 'disconnected';
  private attempt = 0;
  private immediateRetries = 0;
  private token: string | undefined;
  private freshTokenNeeded = true;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private awaitingPong = false;
  private nextId = 1;
  /** Counts open() calls: an open that awaited its token while another began must not open a socket too. */
  private opens = 0;
  private readonly keyPrefix = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
  private welcome: WelcomeFrame | undefined;

  constructor(
    private readonly url: string,
    options: ClientOptions,
  ) {
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new Error('no WebSocket constructor: pass { WebSocket } (e.g. the ws package) on Node 20');
    this.WS = WS;
    this.options = {
      token: options.token,
      backoff: options.backoff ?? fullJitter(),
      positions: options.positions ?? new MemoryPositionStore(),
      maxQueue: options.maxQueue ?? 1000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      directConnect: options.directConnect ?? false,
      autoConnect: options.autoConnect ?? true,
    };
    this.positions = this.options.positions.load();
    // Deferred a microtask so that listeners added right after `new` see the first transitions.
    if (this.options.autoConnect) queueMicrotask(() => this.connect());
  }

  /** The connection state. */
  get state(): ClientState {
    return this.current;
  }

  /** The current session's `welcome` (user, node, session id), once connected. */
  get session(): WelcomeFrame | undefined {
    return this.welcome;
  }

  /** The last position the app saw on `channel`. */
  position(channel: string): StreamPosition | undefined {
    const p = this.positions[channel];
    return p ? { ...p } : undefined;
  }

  /**
   * Opens the connection (again, after `disconnect()`).
   *
   * In a browser (where `globalThis` has `addEventListener`), the client also follows the
   * network: on the `offline` event it drops the socket at once, emits `disconnected` with
   * `reconnectInMs: null` and makes no attempt while `navigator.onLine` is false; on `online` it
   * reconnects right away and resumes. Sends made meanwhile wait in the offline queue.
   */
  connect(): void {
    if (this.current === 'connecting' || this.current === 'connected') return;
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    this.watchNetwork(true);
    void this.open();
  }

  /** Closes the connection for good; queued sends are rejected with `closed`. */
  disconnect(): void {
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.teardown();
    this.watchNetwork(false);
    ws?.close(1000, 'client disconnect');
    if (ws?.terminate) {
      // A peer that never answers the close (a dead link) would hold the socket for ws's 30 s close timeout.
      const timer: { unref?: () => void } = setTimeout(() => ws.terminate!(), 1000) as never;
      timer.unref?.();
    }
    this.failAll('closed', 'client disconnected');
    this.setState('closed');
    this.events.emit('closed', { code: 1000, reason: 'client disconnect' });
  }

  /** Calls `listener` for every message with `topic`, on any channel: `client.on('chat', m => …)`. */
  on<K extends keyof Topics & string>(topic: K, listener: (message: Message<Topics[K], K>) => void): () => void {
    let set = this.topics.get(topic);
    if (!set) this.topics.set(topic, (set = new Set()));
    set.add(listener as Listener<Message>);
    return () => set.delete(listener as Listener<Message>);
  }

  /** The subscription object of `channel` (created once per channel). */
  channel(channel: string): Subscription<Topics> {
    let sub = this.channels.get(channel);
    if (!sub) this.channels.set(channel, (sub = new Subscription<Topics>(this, channel)));
    return sub;
  }

  /** Sends to every session of user `to`. Resolves with the message's position once accepted. */
  send<K extends keyof Topics & string>(to: string, topic: K, data: Topics[K]): Promise<PublishResult> {
    return this.publishFrame({ type: 'send', to, topic, data });
  }

  /** Publishes to a channel. Resolves with the message's position once accepted. */
  publish<K extends keyof Topics & string>(channel: string, topic: K, data: Topics[K]): Promise<PublishResult> {
    return this.publishFrame({ type: 'publish', channel, topic, data });
  }

  private async publishFrame(frame: Record<string, unknown>): Promise<PublishResult> {
    const reply = await this.request({ ...frame, key: `${this.keyPrefix}-${this.nextId}` }, true);
    const result: PublishResult = { epoch: reply.epoch as string, offset: reply.offset as number };
    if (reply.duplicate === true) result.duplicate = true;
    return result;
  }

  /** @internal Subscribes `channel` beyond the automatic ones; kept across reconnects. */
  async subscribeChannel(channel: string): Promise<void> {
    this.explicit.add(channel);
    if (this.welcome && this.inSession(channel)) return;
    const since = this.positions[channel];
    const reply = await this.request({ type: 'subscribe', channel, ...(since ? { since } : {}) }, false);
    this.track(channel, reply.epoch as string, reply.offset as number, reply.recovered as boolean | undefined);
  }

  /** @internal */
  async unsubscribeChannel(channel: string): Promise<void> {
    this.explicit.delete(channel);
    delete this.positions[channel];
    this.options.positions.save(this.positions);
    if (this.current === 'connected') await this.request({ type: 'unsubscribe', channel }, false);
  }

  /** @internal */
  async presenceOf(channel: string): Promise<PresenceUser[]> {
    const reply = await this.request({ type: 'presence', channel }, false);
    return reply.users as PresenceUser[];
  }

  /** Sends a frame with an id and resolves with its successful reply. */
  private request(frame: Record<string, unknown>, retry: boolean): Promise<ReplyFrame & { ok: true }> {
    return new Promise((resolve, reject) => {
      if (this.current === 'closed') return reject(new SwitchboardError('closed', 'client is closed: call connect() first'));
      const entry: Pending = { id: this.nextId++, frame, resolve, reject, retry };
      if (this.current === 'connected') return this.write(entry);
      if (this.queue.length >= this.options.maxQueue) {
        return reject(new SwitchboardError('queue_full', `offline queue is full (${this.options.maxQueue})`));
      }
      this.queue.push(entry);
    });
  }

  private write(entry: Pending): void {
    this.pending.set(entry.id, entry);
    entry.timer = setTimeout(() => {
      this.pending.delete(entry.id);
      entry.reject(new SwitchboardError('timeout', `no reply within ${this.options.requestTimeoutMs} ms`));
    }, this.options.requestTimeoutMs);
    this.ws!.send(JSON.stringify({ ...entry.frame, id: entry.id }));
  }

  // ---- connection ----------------------------------------------------------------------------

  private async open(): Promise<void> {
    const opening = ++this.opens;
    this.setState('connecting');
    this.events.emit('connecting', { attempt: this.attempt });
    try {
      if (this.freshTokenNeeded || this.token === undefined) {
        const t = this.options.token;
        this.token = typeof t === 'function' ? await t() : t;
        this.freshTokenNeeded = false;
      }
    } catch (err) {
      if (this.current !== 'connecting' || opening !== this.opens) return;
      this.events.emit('error', { code: 'token', message: `token function failed: ${(err as Error).message}` });
      this.freshTokenNeeded = true;
      return this.scheduleReconnect(this.options.backoff(this.attempt++), 4001, 'token function failed');
    }
    const target = this.options.directConnect ? await this.ownerUrl(this.token) : this.url;
    // disconnect() while the token was fetched, or disconnect() + connect(): a newer open() owns the state.
    if (this.current !== 'connecting' || opening !== this.opens) return;
    const resume = Object.keys(this.positions).length > 0 ? `&resume=${encodeResume(this.positions)}` : '';
    const sep = target.includes('?') ? '&' : '?';
    const ws = new this.WS(`${target}${sep}token=${encodeURIComponent(this.token)}&batch=1${resume}`);
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.awaitingPong = false;
      if (typeof ev.data !== 'string') return;
      for (const line of ev.data.split('\n')) if (line) this.onFrame(line);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.onClose(ev.code, ev.reason);
    };
    ws.onerror = () => undefined; // a close event follows
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws) this.drop(ws, 'connect timeout');
    }, this.options.connectTimeoutMs);
  }

  /**
   * `directConnect`: asks `GET /v1/route` (with the client's own token) which node owns this user
   * on the hash ring and connects there, the same path on that node's URL. Any failure falls back
   * to the configured URL, which works behind any balancer.
   */
  private async ownerUrl(token: string): Promise<string> {
    try {
      const configured = new URL(this.url);
      const http = new URL('/v1/route', configured.href.replace(/^ws/, 'http'));
      const res = await fetch(http.href, { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) return this.url;
      const { url } = (await res.json()) as { url?: string };
      if (typeof url !== 'string') return this.url;
      const owner = new URL(url.replace(/^http/, 'ws'));
      owner.pathname = configured.pathname;
      owner.search = configured.search;
      return owner.href;
    } catch {
      return this.url;
    }
  }

  private onFrame(line: string): void {
    let frame: ServerFrame;
    try {
      frame = (line === 'pong' ? { type: 'pong' } : JSON.parse(line)) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame);
      case 'message':
        return this.onMessage(frame);
      case 'reply': {
        const entry = this.pending.get(frame.id as number);
        if (!entry) return;
        this.pending.delete(entry.id);
        clearTimeout(entry.timer);
        if (frame.ok) entry.resolve(frame);
        else entry.reject(new SwitchboardError(frame.error.code, frame.error.message));
        return;
      }
      case 'presence':
        this.events.emit('presence', frame);
        this.channels.get(frame.channel)?.emitPresence(frame);
        return;
      case 'error':
        this.events.emit('error', frame.error);
        return;
      case 'pong':
        return;
      default: {
        const never: never = frame;
        void never;
      }
    }
  }

  private onWelcome(welcome: WelcomeFrame): void {
    clearTimeout(this.connectTimer);
    this.welcome = welcome;
    this.attempt = 0;
    this.immediateRetries = 0;
    for (const [channel, state] of Object.entries(welcome.subscriptions)) {
      this.track(channel, state.epoch, state.offset, state.recovered);
    }
    this.setState('connected');
    this.startHeartbeat(welcome.heartbeat * 1000);
    this.events.emit('connected', welcome);
    for (const channel of this.explicit) {
      if (!this.inSession(channel)) this.subscribeChannel(channel).catch((err: SwitchboardError) => this.channel(channel).emitError(err));
    }
    const queued = this.queue;
    this.queue = [];
    for (const entry of queued) this.write(entry);
  }

  /** Records where `channel` stands after a welcome or subscribe reply. */
  private track(channel: string, epoch: string, offset: number, recovered: boolean | undefined): void {
    const known = this.positions[channel];
    if (recovered === false) {
      const detail = { channel, epoch, offset };
      this.events.emit('recovery-failed', detail);
      this.channels.get(channel)?.emitRecoveryFailed(detail);
    }
    // When recovered, the replay follows and moves the position; otherwise start from the latest.
    if (recovered !== true || !known || known.epoch !== epoch) this.positions[channel] = { epoch, offset };
    this.options.positions.save(this.positions);
  }

  private onMessage(frame: MessageFrame): void {
    const known = this.positions[frame.channel];
    if (known && known.epoch === frame.epoch && frame.offset <= known.offset) return; // seen already
    this.positions[frame.channel] = { epoch: frame.epoch, offset: frame.offset };
    this.options.positions.save(this.positions);
    const { type: _type, ...message } = frame;
    this.channels.get(frame.channel)?.emitMessage(message);
    const listeners = this.topics.get(frame.topic);
    if (listeners) {
      for (const listener of [...listeners]) {
        // Like the emitter's listeners: a throwing one must not stop the others, nor the rest of
        // a batched frame (those messages would be lost, their offsets never seen).
        try {
          listener(message);
        } catch (err) {
          setTimeout(() => {
            throw err;
          });
        }
      }
    }
    this.events.emit('message', message);
  }

  private inSession(channel: string): boolean {
    return this.welcome !== undefined && this.current === 'connected' && Object.hasOwn(this.welcome.subscriptions, channel);
  }

  private onClose(code: number, reason: string): void {
    this.teardown();
    const advice = reconnectAdvice(code);
    if (advice === 'stop' || (advice === 'refresh-token' && typeof this.options.token !== 'function')) {
      this.watchNetwork(false);
      this.failAll('closed', `closed by the server: ${code} ${reason}`);
      this.setState('closed');
      this.events.emit('disconnected', { code, reason, reconnectInMs: null });
      this.events.emit('closed', { code, reason });
      return;
    }
    let delay: number;
    if (advice === 'refresh-token') {
      this.freshTokenNeeded = true;
      delay = this.attempt === 0 ? 0 : this.options.backoff(this.attempt);
      this.attempt++;
    } else if (advice === 'now' && this.immediateRetries < 3) {
      this.immediateRetries++;
      delay = 0;
    } else {
      delay = this.options.backoff(this.attempt++);
    }
    this.scheduleReconnect(delay, code, reason);
  }

  private scheduleReconnect(delay: number, code: number, reason: string): void {
    this.setState('disconnected');
    clearTimeout(this.reconnectTimer);
    if (browserScope()?.navigator?.onLine === false) {
      // No attempt can succeed before the browser's `online` event, which reconnects.
      this.events.emit('disconnected', { code, reason, reconnectInMs: null });
      return;
    }
    this.events.emit('disconnected', { code, reason, reconnectInMs: delay });
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  /** Follows the browser's `offline`/`online` events while the client wants a connection. */
  private watchNetwork(on: boolean): void {
    const scope = browserScope();
    if (!scope) return;
    const method = on ? 'addEventListener' : 'removeEventListener'; // adding twice is a no-op
    scope[method]('offline', this.onOffline);
    scope[method]('online', this.onOnline);
  }

  /**
   * The browser knows the network is gone long before a heartbeat would, and a dead link may
   * never finish a close handshake: give up on the socket now (late frames from it are ignored).
   */
  private readonly onOffline = (): void => {
    if (this.current === 'closed') return;
    const ws = this.ws;
    this.teardown();
    ws?.close();
    this.scheduleReconnect(0, 1006, 'network offline');
  };

  private readonly onOnline = (): void => {
    if (this.current !== 'disconnected') return;
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    void this.open();
  };

  /** Forgets the socket; unanswered sends go back to the queue (their keys make a resend safe). */
  private teardown(): void {
    const ws = this.ws;
    this.ws = undefined;
    this.welcome = undefined;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.connectTimer);
    if (ws) {
      ws.onmessage = ws.onclose = ws.onopen = null;
      // Closing a socket that is still opening makes `ws` emit `error` on a later tick; without a
      // listener that error would be thrown as uncaught and kill a Node process.
      ws.onerror = () => undefined;
    }
    const unanswered = [...this.pending.values()].sort((a, b) => a.id - b.id);
    this.pending.clear();
    const resend: Pending[] = [];
    for (const entry of unanswered) {
      clearTimeout(entry.timer);
      if (entry.retry) resend.push(entry);
      else entry.reject(new SwitchboardError('disconnected', 'connection lost before the reply'));
    }
    this.queue = [...resend, ...this.queue];
  }

  private failAll(code: string, message: string): void {
    for (const entry of this.queue) entry.reject(new SwitchboardError(code, message));
    this.queue = [];
  }

  /** Sends `{"type":"ping"}` every interval; a missing answer by the next tick means the link is dead. */
  private startHeartbeat(intervalMs: number): void {
    clearInterval(this.heartbeatTimer);
    this.awaitingPong = false;
    this.heartbeatTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      if (this.awaitingPong) {
        // The OS may not notice a dead peer for minutes: give up on this socket now.
        this.drop(ws, 'heartbeat timeout');
        return;
      }
      this.awaitingPong = true;
      ws.send('{"type":"ping"}');
    }, intervalMs);
  }

  /** Abandons a socket that shows no life, without waiting for a closing handshake, and reconnects. */
  private drop(ws: WebSocketLike, reason: string): void {
    this.teardown();
    if (ws.terminate) ws.terminate();
    else ws.close();
    this.onClose(1006, reason);
  }

  private setState(next: ClientState): void {
    const previous = this.current;
    if (previous === next) return;
    this.current = next;
    this.events.emit('state', { state: next, previous });
  }
}

import type { PongFrame, ServerFrame, WelcomeFrame } from '@switchboard/protocol';
import type { Emitter } from './emitter.js';
import type { ResolvedOptions } from './options.js';
import { ownerUrl } from './owner-url.js';
import { nextReconnect, nextReconnectAfterTokenFailure, type ReconnectDecision } from './reconnect.js';
import type { RequestLink } from './requests.js';
import type { ClientErrorCode, ClientEvents, ClientState, WebSocketConstructor, WebSocketLike } from './types.js';

/** A server frame of an established session: everything but `welcome` and `pong`, which the connection handles. */
export type SessionFrame = Exclude<ServerFrame, WelcomeFrame | PongFrame>;

/** The client options a connection works with. */
export type ConnectionOptions = Pick<ResolvedOptions, 'token' | 'backoff' | 'connectTimeoutMs' | 'directConnect'>;

/** What a connection asks of, and reports to, the client that owns it. */
export interface ConnectionOwner {
  /** The `&resume=…` part of the URL for the positions known now, or an empty string. */
  resumeQuery(): string;
  /** A `welcome` arrived; the state is still `connecting`, so positions can be set before `connected`. */
  welcome(welcome: WelcomeFrame): void;
  /** The `connected` event was emitted: resubscribe and flush the offline queue. */
  connected(): void;
  /** A frame of the current session. */
  frame(frame: SessionFrame): void;
  /** The socket is gone: settle or requeue the requests in flight. */
  lost(): void;
  /** The client is closing for good: reject what is queued with `message`. */
  closing(message: string): void;
}

/** The parts of a browser's window (or worker scope) the client follows the network with. */
type BrowserScope = Pick<EventTarget, 'addEventListener' | 'removeEventListener'> & { navigator?: { onLine?: boolean } };

/** The browser's global scope, or undefined where there is none (Node has no global `addEventListener`). */
function browserScope(): BrowserScope | undefined {
  const scope = globalThis as Partial<BrowserScope>;
  return typeof scope.addEventListener === 'function' ? (scope as BrowserScope) : undefined;
}

/**
 * The client's socket and its state machine (disconnected → connecting → connected, or closed):
 * opening with a token, the `welcome` deadline, the heartbeat that detects dead links, reconnects
 * as {@link nextReconnect} decides, and the browser's `offline`/`online` events.
 */
export class Connection implements RequestLink {
  private ws: WebSocketLike | undefined;
  private current: ClientState = 'disconnected';
  private welcome: WelcomeFrame | undefined;
  private attempt = 0;
  private immediateRetries = 0;
  private token: string | undefined;
  private freshTokenNeeded = true;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private awaitingPong = false;
  /** Counts open() calls: an open that awaited its token while another began must not open a socket too. */
  private opens = 0;

  constructor(
    private readonly url: string,
    private readonly WS: WebSocketConstructor,
    private readonly options: ConnectionOptions,
    private readonly events: Emitter<ClientEvents>,
    private readonly owner: ConnectionOwner,
  ) {}

  /** The connection state. */
  get state(): ClientState {
    return this.current;
  }

  /** The current session's `welcome`, while connected. */
  get session(): WelcomeFrame | undefined {
    return this.welcome;
  }

  /** Writes a text frame on the open socket (only call while connected). */
  send(data: string): void {
    this.ws!.send(data);
  }

  /** Opens the socket unless it is open or opening; follows the browser's network from now on. */
  connect(): void {
    if (this.current === 'connecting' || this.current === 'connected') return;
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    this.watchNetwork(true);
    void this.open();
  }

  /** Closes the socket for good, with no timer or listener left behind. */
  close(): void {
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
    this.owner.closing('client disconnected');
    this.setState('closed');
    this.events.emit('closed', { code: 1000, reason: 'client disconnect' });
  }

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
      const code: ClientErrorCode = 'token';
      this.events.emit('error', { code, message: `token function failed: ${(err as Error).message}` });
      return this.retry(nextReconnectAfterTokenFailure(this.policyContext()), 4001, 'token function failed');
    }
    const target = this.options.directConnect ? await ownerUrl(this.url, this.token) : this.url;
    // disconnect() while the token was fetched, or disconnect() + connect(): a newer open() owns the state.
    if (this.current !== 'connecting' || opening !== this.opens) return;
    const sep = target.includes('?') ? '&' : '?';
    const ws = new this.WS(`${target}${sep}token=${encodeURIComponent(this.token)}&batch=1${this.owner.resumeQuery()}`);
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.awaitingPong = false;
      if (typeof ev.data !== 'string') return;
      for (const line of ev.data.split('\n')) if (line) this.onLine(line);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.onClose(ev.code, ev.reason);
    };
    ws.onerror = () => undefined; // a close event follows
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws) this.drop(ws, 'connect timeout');
    }, this.options.connectTimeoutMs);
  }

  private onLine(line: string): void {
    let frame: ServerFrame;
    try {
      frame = (line === 'pong' ? { type: 'pong' } : JSON.parse(line)) as ServerFrame;
    } catch {
      return;
    }
    if (frame.type === 'welcome') this.onWelcome(frame);
    else if (frame.type !== 'pong') this.owner.frame(frame);
  }

  private onWelcome(welcome: WelcomeFrame): void {
    clearTimeout(this.connectTimer);
    this.welcome = welcome;
    this.attempt = 0;
    this.immediateRetries = 0;
    this.owner.welcome(welcome);
    this.setState('connected');
    this.startHeartbeat(welcome.heartbeat * 1000);
    this.events.emit('connected', welcome);
    this.owner.connected();
  }

  private policyContext() {
    const { attempt, immediateRetries } = this;
    return { attempt, immediateRetries, tokenIsFunction: typeof this.options.token === 'function', backoff: this.options.backoff };
  }

  private onClose(code: number, reason: string): void {
    this.teardown();
    this.retry(nextReconnect(code, this.policyContext()), code, reason);
  }

  /** Carries out a reconnect decision: closes for good, or schedules the next attempt. */
  private retry(decision: ReconnectDecision, code: number, reason: string): void {
    if ('stop' in decision) {
      this.watchNetwork(false);
      this.owner.closing(`closed by the server: ${code} ${reason}`);
      this.setState('closed');
      this.events.emit('disconnected', { code, reason, reconnectInMs: null });
      this.events.emit('closed', { code, reason });
      return;
    }
    this.attempt = decision.attempt;
    this.immediateRetries = decision.immediateRetries;
    if (decision.refreshToken) this.freshTokenNeeded = true;
    this.scheduleReconnect(decision.delayMs, code, reason);
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

  /** Forgets the socket and its timers; the owner requeues or fails what was in flight. */
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
    this.owner.lost();
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

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, decodeResume, parseChannel, type StreamPosition } from '@switchboard/protocol';
import { autoChannels, subscribeDenial } from '../auth/permissions.js';
import { TokenError, type Identity, type Verifier } from '../auth/token-verifier.js';
import { ERRORS } from '../errors.js';
import { rejectUpgrade } from '../http/respond.js';
import { checkUpgrade } from '../http/upgrade-checks.js';
import { redactUrl } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import type { HeldFrame, Session } from './session.js';
import type { SessionTable } from './session-table.js';

/** The options admission reads. */
export type AdmissionOptions = Pick<
  NodeOptions,
  'wsPath' | 'allowedOrigins' | 'maxConnections' | 'maxConnectionsPerUser' | 'maxSubscriptions' | 'maxPayloadBytes' | 'perMessageDeflate'
>;

/** What {@link Admission} works with. */
export interface AdmissionDeps {
  options: AdmissionOptions;
  verifier: Verifier;
  table: SessionTable;
  metrics: NodeMetrics;
  log: Logger;
  /** True while the node is draining: no new sessions. */
  draining: () => boolean;
  /** Builds the session of an admitted socket; `early` are the frames that arrived meanwhile. */
  createSession: (ws: WebSocket, identity: Identity, batching: boolean, early: readonly HeldFrame[]) => Session;
}

/**
 * Who gets a session on this node. Before the upgrade: path, draining, the connection limit and
 * the origin (shared with the gateway, `http/upgrade-checks.ts`). After it: the token, the per-user
 * limit and the resume positions. Every frame the client sends from the moment of the upgrade is
 * held, in order, until its session takes it — a front end that sends in `onopen` loses nothing.
 */
export class Admission {
  private readonly wss: WebSocketServer;
  /** Every upgraded socket, with a session or still being admitted. */
  private readonly sockets = new Set<WebSocket>();
  private upgrading = 0;
  /** A socket's `close` listener (`this` is the socket): out of the set. */
  private readonly forget: (this: WebSocket) => void;
  /**
   * A socket's `error` listener until its session listens (while the token is checked, or after a
   * 4001/1008 close): a protocol violation is an 'error' event, and ws closes the socket itself,
   * but unheard it would throw.
   */
  private readonly onEarlyError: (err: Error) => void;

  constructor(private readonly deps: AdmissionDeps) {
    const { sockets } = this;
    this.forget = function forget(this: WebSocket) {
      sockets.delete(this);
    };
    this.onEarlyError = (err) => deps.log.debug({ err: err.message }, 'protocol error before the session: socket closed');
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: deps.options.maxPayloadBytes,
      perMessageDeflate: deps.options.perMessageDeflate,
    });
  }

  /** Upgraded sockets still open. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** The HTTP server's `upgrade` handler. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', destroySocket);
    const { options, metrics, log, table } = this.deps;
    // Checked first: the redaction runs a regular expression over the URL, per upgrade.
    if (log.isLevelEnabled('debug')) log.debug({ url: redactUrl(req.url), origin: req.headers.origin }, 'upgrade request');
    const check = checkUpgrade(req, {
      wsPath: options.wsPath,
      allowedOrigins: options.allowedOrigins,
      refusal: () => {
        if (this.deps.draining()) return 'node draining: connect to another node';
        if (table.size + this.upgrading >= options.maxConnections) {
          metrics.connectionsTotal.inc({ result: 'overloaded' });
          return 'node at its connection limit';
        }
        return undefined;
      },
    });
    if (!check.ok) {
      if (check.reason === 'origin') metrics.connectionsTotal.inc({ result: 'origin' });
      return rejectUpgrade(socket, check.error, check.message);
    }
    // Only these reach the callback below: the URL (and its token string) is not kept.
    const { token } = check;
    const batching = check.url.searchParams.get('batch') === '1';
    const resume = check.url.searchParams.get('resume');
    // Counted against the connection limit until ws hands the socket over, or until it closes
    // without that: ws drops a bad handshake (no key, a wrong version) and a client that left
    // meanwhile without calling back, and such sockets must not hold places for good.
    this.upgrading++;
    let counted = true;
    const uncount = (): void => {
      if (counted) this.upgrading--;
      counted = false;
    };
    socket.once('close', uncount);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('close', uncount);
      uncount();
      // ws has the socket now and ends it on an error itself.
      socket.off('error', destroySocket);
      this.track(ws);
      const held = holdFrames(ws);
      void this.admit(ws, token, batching, resume, held.frames, held.release).finally(held.release);
    });
  };

  /** Keeps `ws` in the set until it closes; the listeners are the same two functions for every socket. */
  private track(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', this.forget);
    ws.on('error', this.onEarlyError);
  }

  /** Closes every upgraded socket at once (the node is stopping). */
  terminateAll(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  close(): void {
    this.wss.close();
  }

  /** Verifies and limits; `release` stops holding frames once the session has taken them. */
  private async admit(
    ws: WebSocket,
    token: string | undefined,
    batching: boolean,
    resumeParam: string | null,
    early: HeldFrame[],
    release: () => void,
  ): Promise<void> {
    const { options, metrics, log, table } = this.deps;
    let identity: Identity;
    try {
      if (!token) throw new TokenError('missing token');
      identity = await this.deps.verifier.verify(token);
    } catch (err) {
      const reason = err instanceof TokenError ? err.message : 'invalid token';
      metrics.connectionsTotal.inc({ result: 'unauthorized' });
      metrics.closes.inc({ code: String(CloseCode.UNAUTHORIZED) });
      log.info({ reason }, 'token rejected');
      return ws.close(CloseCode.UNAUTHORIZED, reason);
    }
    if (this.deps.draining()) return ws.close(CloseCode.GOING_AWAY, 'node draining');
    if (table.countFor(identity.user) >= options.maxConnectionsPerUser) {
      metrics.connectionsTotal.inc({ result: 'user_limit' });
      metrics.closes.inc({ code: String(CloseCode.POLICY) });
      return ws.close(CloseCode.POLICY, `too many connections for this user (max ${options.maxConnectionsPerUser})`);
    }
    // The session takes the held frames and listens from now on (errors too); nothing arrives in between.
    ws.off('error', this.onEarlyError);
    const session = this.deps.createSession(ws, identity, batching, early);
    release();
    table.add(session);
    metrics.connectionsTotal.inc({ result: 'ok' });

    const auto = autoChannels(identity);
    const resume = resumeParam === null ? {} : decodeResume(resumeParam);
    const positions: Record<string, StreamPosition> = {};
    for (const [channel, pos] of Object.entries(resume ?? {})) {
      const ref = parseChannel(channel);
      if (!ref || subscribeDenial(identity, channel, ref)) continue;
      positions[channel] = pos;
      if (!auto.includes(channel) && auto.length < options.maxSubscriptions) auto.push(channel);
    }
    await session.start(auto, positions);
    if (resume === undefined) {
      session.reply(undefined, {
        ok: false,
        code: ERRORS.ERR_BAD_FRAME.code,
        message: 'resume is not base64url JSON of {channel: {epoch, offset}}: nothing was recovered',
      });
    }
  }
}

/** Until ws has it, an error ends the socket (`this`); one function for every socket. */
function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * Holds what the client sends while its token is checked: the socket is paused (no more than one
 * chunk is read) and what ws has already parsed is kept, in order, until `release`.
 */
function holdFrames(ws: WebSocket): { frames: HeldFrame[]; release: () => void } {
  const frames: HeldFrame[] = [];
  const hold = (data: Buffer, isBinary: boolean) => void frames.push([data, isBinary]);
  ws.on('message', hold);
  ws.pause();
  let holding = true;
  const release = () => {
    if (!holding) return;
    holding = false;
    ws.off('message', hold);
    ws.resume();
  };
  return { frames, release };
}

/**
 * A real local HTTP server that receives webhooks the way a user's backend would: it checks each
 * request's `Switchboard-Signature` with the secret and records the event, and answers what the
 * test tells it to (a status, or nothing at all for a while).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook } from '../../src/webhooks/signature.js';

/** One request as received. */
export interface ReceivedWebhook {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  event: Record<string, any>;
  body: string;
  signature: string | undefined;
  /** The sending node, from the user agent (`switchboard-webhooks (node <id>)`). */
  node: string | undefined;
  /** The signature is the secret's, over this body, and recent. */
  valid: boolean;
  at: number;
}

/** What to answer: a status code, or `hang` (answer nothing until the client gives up). */
export type Answer = number | 'hang';

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  /** Called per request (after recording it) to choose the answer. @default 200 */
  answer: (hook: ReceivedWebhook) => Answer = () => 200;
  private server: Server | undefined;
  private readonly hanging = new Set<ServerResponse>();

  constructor(private readonly secret: string) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.onRequest(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  /** The received events of `type` (every attempt, retries included). */
  of(type: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.event.type === type);
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const signature = req.headers['switchboard-signature'] as string | undefined;
    let event: ReceivedWebhook['event'];
    try {
      event = JSON.parse(body) as ReceivedWebhook['event'];
    } catch {
      event = { unparsable: body };
    }
    const node = /\(node ([^)]+)\)/.exec(req.headers['user-agent'] ?? '')?.[1];
    const hook: ReceivedWebhook = { event, body, signature, node, valid: verifyWebhook(this.secret, body, signature), at: Date.now() };
    this.received.push(hook);
    const answer = this.answer(hook);
    if (answer === 'hang') {
      this.hanging.add(res);
      return;
    }
    res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'ok' : 'no');
  }
}

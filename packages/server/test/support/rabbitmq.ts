/**
 * RabbitMQ for tests: a reachability check that fails in CI and skips locally (as redis-helpers'
 * does), `rabbitmqctl`, and a vhost of the test's own, deleted afterwards, in which the broker can be
 * taken away from a user (its permissions cleared, its connections closed) and given back.
 *
 * ```ts
 * describe('RabbitThing', { skip: rabbitSkip }, () => {
 *   const vhost = new RabbitVhost();
 *   before(() => vhost.create());
 *   after(() => vhost.delete());
 *   it('…', async () => { const url = vhost.url(); … await vhost.revoke(); … await vhost.grant(); });
 * });
 * ```
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Connection } from 'rabbitmq-client';

export const AMQP_HOST = process.env.SWITCHBOARD_TEST_AMQP_HOST ?? '127.0.0.1';
export const AMQP_PORT = Number(process.env.SWITCHBOARD_TEST_AMQP_PORT ?? 5672);

const run = promisify(execFile);

/** Runs `rabbitmqctl -q <args>` and resolves with its output. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { timeout: 30_000 });
  return stdout;
}

/** Why RabbitMQ cannot be used here (not answering AMQP as guest, or no working `rabbitmqctl`), or undefined. */
export async function rabbitUnavailable(): Promise<string | undefined> {
  const conn = new Connection({
    url: `amqp://guest:guest@${AMQP_HOST}:${AMQP_PORT}`,
    connectionTimeout: 2000,
    retryLow: 100,
    retryHigh: 200,
  });
  conn.on('error', () => undefined);
  try {
    // Without auto-close: the client's close() called twice (its own, then ours) never resolves.
    await conn.onConnect(2000, true);
  } catch {
    return `RabbitMQ is not running on ${AMQP_HOST}:${AMQP_PORT} (guest/guest)`;
  } finally {
    await conn.close().catch(() => undefined);
  }
  try {
    await rabbitmqctl('list_vhosts');
  } catch (err) {
    return `rabbitmqctl does not work (${(err as Error).message.split('\n')[0]})`;
  }
  return undefined;
}

/**
 * The `skip` value for RabbitMQ suites: undefined when RabbitMQ is up, else the reason. In CI
 * (`CI=true`) a missing RabbitMQ is an error instead, so a green run always ran the RabbitMQ tests.
 */
export const rabbitSkip: string | undefined = await (async () => {
  const why = await rabbitUnavailable();
  if (!why) return undefined;
  const message = `${why}: start it with scripts/ensure-rabbitmq.sh (Debian: apt-get install rabbitmq-server)`;
  if (process.env.CI === 'true') throw new Error(message);
  return message;
})();

/** A row of `rabbitmqctl list_queues`. */
export interface QueueRow {
  name: string;
  durable: boolean;
  arguments: Record<string, unknown>;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
}

/** A row of `rabbitmqctl list_bindings`. */
export interface BindingRow {
  source_name: string;
  destination_name: string;
  routing_key: string;
}

/** A vhost of the test's own (`sbtest-<uuid>`), and users created in it; `delete()` removes them all. */
export class RabbitVhost {
  readonly name = `sbtest-${randomUUID()}`;
  private readonly users: string[] = [];

  /** Creates the vhost and lets guest use it. */
  async create(): Promise<void> {
    await rabbitmqctl('add_vhost', this.name);
    await this.grant('guest');
  }

  /** An AMQP URL into the vhost. */
  url(user = 'guest', password = 'guest'): string {
    return `amqp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${AMQP_HOST}:${AMQP_PORT}/${encodeURIComponent(this.name)}`;
  }

  /** Adds a user with every permission in the vhost (deleted with it). */
  async addUser(user: string, password: string): Promise<void> {
    await rabbitmqctl('add_user', user, password);
    this.users.push(user);
    await this.grant(user);
  }

  /** Gives `user` every permission in the vhost. */
  async grant(user = 'guest'): Promise<void> {
    await rabbitmqctl('set_permissions', '-p', this.name, user, '.*', '.*', '.*');
  }

  /**
   * Takes the broker away from `user`: no permission left in the vhost, so reconnects are
   * refused, then every connection of the vhost closed (those of other users reconnect).
   */
  async revoke(user = 'guest'): Promise<void> {
    await rabbitmqctl('clear_permissions', '-p', this.name, user);
    await rabbitmqctl('close_all_connections', '--vhost', this.name, `switchboard test: ${user} taken away`);
  }

  /** The vhost's queues. */
  async queues(): Promise<QueueRow[]> {
    return parseQueues(await rabbitmqctl(...this.listQueues()));
  }

  /** The vhost's queues, blocking the event loop: for a delivery handler that must not return yet. */
  queuesNow(): QueueRow[] {
    return parseQueues(execFileSync('rabbitmqctl', ['-q', ...this.listQueues()], { timeout: 30_000, encoding: 'utf8' }));
  }

  private listQueues(): string[] {
    return [
      'list_queues',
      '-p',
      this.name,
      'name',
      'durable',
      'arguments',
      'messages_ready',
      'messages_unacknowledged',
      'consumers',
      '--formatter',
      'json',
    ];
  }

  /** The vhost's bindings to queues, but the default exchange's. */
  async bindings(): Promise<BindingRow[]> {
    const out = await rabbitmqctl(
      'list_bindings',
      '-p',
      this.name,
      'source_name',
      'destination_name',
      'routing_key',
      '--formatter',
      'json',
    );
    return (JSON.parse(out) as BindingRow[]).filter((b) => b.source_name !== '');
  }

  /** The vhost's exchanges of its own (not the `amq.*` and default ones), with type and durability. */
  async exchanges(): Promise<{ name: string; type: string; durable: boolean }[]> {
    const out = await rabbitmqctl('list_exchanges', '-p', this.name, 'name', 'type', 'durable', '--formatter', 'json');
    return (JSON.parse(out) as { name: string; type: string; durable: boolean }[]).filter(
      (e) => e.name !== '' && !e.name.startsWith('amq.'),
    );
  }

  /** Deletes the vhost (and all in it) and the users added. Best effort. */
  async delete(): Promise<void> {
    await rabbitmqctl('delete_vhost', this.name).catch(() => undefined);
    for (const user of this.users.splice(0)) await rabbitmqctl('delete_user', user).catch(() => undefined);
  }
}

function parseQueues(out: string): QueueRow[] {
  // Arguments come as [name, AMQP type, value] triples.
  const rows = JSON.parse(out) as (Omit<QueueRow, 'arguments'> & { arguments: [string, string, unknown][] })[];
  return rows.map((row) => ({ ...row, arguments: Object.fromEntries(row.arguments.map(([key, , value]) => [key, value])) }));
}

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { isValidId } from '@switchboard/protocol';
import { mintToken, parseDuration } from './auth/token-minter.js';
import { collectConfig, loadConfig } from './config.js';
import { redactNatsUrl } from './broker/nats-transport.js';
import { redactAmqpUrl } from './broker/rabbitmq-transport.js';
import { redactRedisUrl } from './redis/connect.js';
import { createLogger } from './logger.js';
import { migrate } from './postgres/migrations.js';
import { connectPostgres, createPostgresPool, redactDatabaseUrl } from './postgres/pool.js';
import { Gateway, gatewayOptions } from './gateway/gateway.js';
import { serveGateway } from './gateway/serve.js';
import { SwitchboardNode } from './node.js';
import { ServiceUnreachableError } from './service-unreachable.js';
import { OPTION_SPECS, OptionsError, flagOf, resolveOptions, type NodeOptions } from './options.js';

/** Runs the `switchboard` command line. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    fail(err);
  }
}

/** The commander program (exported for tests of the help text). */
export function buildProgram(): Command {
  const program = new Command('switchboard')
    .description('Clustered WebSocket messaging server')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  withNodeOptions(program.command('start'))
    .description('run one node on the memory engine with the demo page at /; without a JWT secret it runs in dev mode')
    .action(async (flags: Record<string, unknown>) => {
      const env = process.env;
      const input = collectConfig({ flags, env, file: flags.config as string | undefined });
      const dev = input.jwtSecret === undefined && input.jwtPublicKey === undefined;
      if (dev) {
        input.jwtSecret = randomBytes(32).toString('base64url');
        input.apiKey ??= randomBytes(24).toString('base64url');
      }
      const options = resolveOptions(input);
      await run(options, dev ? 'dev' : 'start');
    });

  withNodeOptions(program.command('node'))
    .description('run one node for production: no demo page, no dev endpoints; needs a JWT secret or public key')
    .action(async (flags: Record<string, unknown>) => {
      const options = loadConfig({ flags, env: process.env, file: flags.config as string | undefined });
      if (options.jwtSecret === undefined && options.jwtPublicKey === undefined) {
        throw new OptionsError(
          'switchboard node needs SWITCHBOARD_JWT_SECRET (--jwt-secret) or SWITCHBOARD_JWT_PUBLIC_KEY (--jwt-public-key)',
        );
      }
      await run(options, 'node');
    });

  withNodeOptions(program.command('dev'))
    .description(
      'run a local cluster on Redis: N nodes on consecutive ports in this process, with the demo page and dev tokens; --broker redis|rabbitmq|nats picks what carries messages between them',
    )
    .option('--nodes <n>', 'how many nodes', '3')
    .option('--no-gateway', "do not start the gateway on the port after the nodes'")
    .action(async (flags: Record<string, unknown>) => {
      const count = Number(flags.nodes);
      if (!Number.isInteger(count) || count < 1 || count > 16)
        throw new OptionsError('switchboard dev --nodes takes a whole number from 1 to 16');
      const input = collectConfig({ flags, env: process.env, file: flags.config as string | undefined });
      input.engine ??= 'redis';
      input.jwtSecret ??= randomBytes(32).toString('base64url');
      input.apiKey ??= randomBytes(24).toString('base64url');
      const base = resolveOptions(input);
      const firstPort = base.port === 0 ? 8080 : base.port;
      const nodes: SwitchboardNode[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const options = resolveOptions({
            ...input,
            port: firstPort + i,
            nodeId: `${(input.nodeId as string | undefined) ?? 'n'}${i + 1}`,
          });
          const node = new SwitchboardNode(options, { mode: 'dev' });
          nodes.push(node);
          await node.start();
        }
      } catch (err) {
        await Promise.allSettled(nodes.map((n) => n.stop()));
        throw err;
      }
      // The gateway (on the next port) places each user by its policy and proxies to the nodes.
      let gateway: Gateway | undefined;
      if (flags.gateway !== false && base.engine === 'redis') {
        gateway = new Gateway(gatewayOptions(resolveOptions({ ...input, port: firstPort + count, nodeId: 'gw' })));
        await gateway.start();
      }
      process.stderr.write(
        [
          `switchboard dev: ${count} nodes on ${base.engine} (${base.engine === 'redis' ? redactRedisUrl(base.redisUrl) : 'in memory'}), broker ${brokerLabel(base)}, routing ${base.routing}`,
          ...(gateway
            ? [`  gateway (policy ${base.gatewayPolicy}): ${gateway.url}/  (WebSocket ${gateway.url.replace(/^http/, 'ws')}${base.wsPath})`]
            : []),
          ...nodes.map((n) => `  ${n.nodeId}: ${n.url}/  (WebSocket ${n.url.replace(/^http/, 'ws')}${base.wsPath})`),
          `  SWITCHBOARD_JWT_SECRET=${base.jwtSecret}`,
          `  SWITCHBOARD_API_KEY=${base.apiKey}`,
          '  Ctrl-C stops them all.',
        ].join('\n') + '\n',
      );
      onSignals(nodes, base.drainTimeoutMs, gateway ? [() => gateway.stop()] : []);
    });

  withNodeOptions(program.command('gateway'))
    .description(
      'run the gateway in front of the nodes: checks tokens, places each connection by SWITCHBOARD_GATEWAY_POLICY (hash, round-robin, least-conn) and proxies it; finds the nodes in Redis',
    )
    .action(async (flags: Record<string, unknown>) => {
      const input = collectConfig({ flags, env: process.env, file: flags.config as string | undefined });
      input.nodeId ??= `gw-${randomBytes(3).toString('hex')}`;
      const options = resolveOptions(input);
      if (options.jwtSecret === undefined && options.jwtPublicKey === undefined) {
        throw new OptionsError(
          "switchboard gateway needs the nodes' SWITCHBOARD_JWT_SECRET (--jwt-secret) or SWITCHBOARD_JWT_PUBLIC_KEY (--jwt-public-key): it checks tokens before a node sees them",
        );
      }
      await serveGateway(options);
    });

  program
    .command('token')
    .description('mint an HS256 client token with the configured secret')
    .requiredOption('--user <id>', "user id (the token's sub)")
    .option('--groups <list>', 'comma-separated groups the user is in', '')
    .option('--channels <list>', 'comma-separated extra channels the user may subscribe to', '')
    .option('--admin', 'role admin: may publish to broadcast', false)
    .option('--ttl <duration>', 'lifetime, e.g. 90s, 15m, 1h, 7d', '1h')
    .option('--secret <secret>', 'HS256 secret (default: SWITCHBOARD_JWT_SECRET or the config file)')
    .option('--config <file>', 'JSON config file')
    .action(
      async (flags: { user: string; groups: string; channels: string; admin: boolean; ttl: string; secret?: string; config?: string }) => {
        const input = collectConfig({ env: process.env, file: flags.config });
        const secret = flags.secret ?? (input.jwtSecret as string | undefined);
        if (!secret) throw new OptionsError('switchboard token needs a secret: --secret, SWITCHBOARD_JWT_SECRET or jwtSecret in --config');
        resolveOptions({ jwtSecret: secret });
        const list = (s: string) =>
          s
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean);
        // Checked here because a node would refuse such a token only later, with a bare 4001.
        const groups = list(flags.groups);
        for (const id of [flags.user, ...groups]) {
          if (!isValidId(id))
            throw new OptionsError(`switchboard token: "${id}" is not a valid id for --user or --groups (no spaces or colons)`);
        }
        let ttlSeconds: number;
        try {
          ttlSeconds = parseDuration(flags.ttl);
        } catch (err) {
          throw new OptionsError(`switchboard token --ttl: ${(err as Error).message}`);
        }
        const token = await mintToken(secret, {
          user: flags.user,
          groups,
          channels: list(flags.channels),
          admin: flags.admin,
          ttlSeconds,
        });
        process.stdout.write(token + '\n');
      },
    );

  program
    .command('migrate')
    .description(
      'apply the PostgreSQL schema (history, inbox) to DATABASE_URL and exit; nodes with history postgres also do it at start-up',
    )
    .option('--database-url <url>', 'PostgreSQL URL (default: DATABASE_URL or databaseUrl in --config)')
    .option('--config <file>', 'JSON config file')
    .action(async (flags: { databaseUrl?: string; config?: string }) => {
      const input = collectConfig({ env: process.env, file: flags.config });
      const url = flags.databaseUrl ?? (input.databaseUrl as string | undefined);
      if (!url)
        throw new OptionsError('switchboard migrate needs a database: --database-url or DATABASE_URL (postgres://user@host:5432/database)');
      resolveOptions({ databaseUrl: url, history: 'postgres' });
      const pool = createPostgresPool({ url, name: 'migrate', log: createLogger('migrate', 'warn') });
      try {
        await connectPostgres(pool, url);
        const { applied, version } = await migrate(pool);
        process.stdout.write(
          applied.length > 0
            ? `switchboard migrate: ${redactDatabaseUrl(url)} is at schema version ${version} (applied ${applied.join(', ')})\n`
            : `switchboard migrate: ${redactDatabaseUrl(url)} is up to date (schema version ${version})\n`,
        );
      } finally {
        await pool.end();
      }
    });

  program
    .command('bench')
    .description('run the benchmark suite (bench/run.ts) of a repository clone; `switchboard bench --help` lists its options')
    .argument('[options...]', 'passed to bench/run.ts, e.g. --quick, --only fanout, --runs 5')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args: string[]) => {
      process.exitCode = await runBench(args);
    });

  return program;
}

/**
 * Runs bench/run.ts of the repository this CLI was built in, in a child process (the suite forks
 * servers and load generators of its own). Resolves with its exit code.
 */
async function runBench(args: string[]): Promise<number> {
  // dist/cli.js and src/cli.ts are both three levels below the repository root.
  const repo = fileURLToPath(new URL('../../../', import.meta.url));
  const entry = join(repo, 'bench', 'run.ts');
  if (!existsSync(entry)) {
    throw new OptionsError(
      `switchboard bench: ${entry} not found. The benchmark suite runs from a clone of the repository (it is not in the published package): git clone, npm ci, then npm run bench.`,
    );
  }
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: repo, stdio: 'inherit' });
  // The suite cleans up its own servers on SIGINT/SIGTERM; this process only waits for it.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  return code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1);
}

function withNodeOptions(command: Command): Command {
  command.option('--config <file>', 'JSON config file (keys are option names, see docs/config.md)');
  for (const [key, spec] of Object.entries(OPTION_SPECS)) {
    command.option(`${flagOf(key)} <value>`, `${spec.doc} [env ${spec.env}]`); // commander camel-cases the flag back to `key`
  }
  return command;
}

async function run(options: NodeOptions, mode: 'dev' | 'start' | 'node'): Promise<void> {
  if (options.tlsCert !== undefined) {
    throw new OptionsError(
      '--tls-cert/--tls-key (SWITCHBOARD_TLS_CERT/SWITCHBOARD_TLS_KEY) are for switchboard gateway: a node speaks plain HTTP; terminate TLS at the gateway or at your balancer',
    );
  }
  const node = new SwitchboardNode(options, { mode });
  const { url } = await node.start();
  const ws = url.replace(/^http/, 'ws') + options.wsPath;
  const lines = [`switchboard ${mode === 'node' ? 'node' : 'start'}: node ${options.nodeId} on ${url}  (WebSocket ${ws})`];
  if (mode !== 'node') lines.push(`  demo page:  ${url}/`);
  if (mode === 'dev') {
    lines.push(
      '  DEV MODE: no JWT secret was configured, so this one was made for this run only.',
      `  SWITCHBOARD_JWT_SECRET=${options.jwtSecret}`,
      `  SWITCHBOARD_API_KEY=${options.apiKey}`,
      `  dev tokens: ${url}/dev/token?user=alice&groups=lobby  (this endpoint exists in dev mode only)`,
    );
  }
  process.stderr.write(lines.join('\n') + '\n');

  onSignals([node], options.drainTimeoutMs);
}

/** On SIGTERM/SIGINT: drain every node, exit 0; exit 1 if draining outlives its bound. */
function onSignals(nodes: SwitchboardNode[], drainTimeoutMs: number, alsoStop: (() => Promise<void>)[] = []): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    for (const node of nodes) node.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      nodes[0]?.log.error('drain took too long; exiting');
      process.exit(1);
    }, drainTimeoutMs + 1000);
    force.unref();
    // Nodes first: their 1001 reaches clients through the gateway while it still proxies.
    void Promise.all(nodes.map((n) => n.drain()))
      .then(() => Promise.all(alsoStop.map((stop) => stop())))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** The broker and, for RabbitMQ and NATS, where it is (without credentials). */
function brokerLabel(options: NodeOptions): string {
  if (options.broker === 'rabbitmq') return `rabbitmq (${redactAmqpUrl(options.amqpUrl)})`;
  if (options.broker === 'nats') return `nats (${redactNatsUrl(options.natsUrl)})`;
  return options.broker;
}

function fail(err: unknown): never {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ERR_OPTIONS') {
    process.stderr.write(`switchboard: ${(err as Error).message}\n`);
    process.exit(2);
  }
  // A service the node needs does not answer: its message says which and how to fix it.
  if (err instanceof ServiceUnreachableError) {
    process.stderr.write(`switchboard: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (code === 'EADDRINUSE') {
    process.stderr.write(`switchboard: port already in use: ${(err as Error).message} (set PORT or --port)\n`);
    process.exit(2);
  }
  process.stderr.write(`switchboard: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}

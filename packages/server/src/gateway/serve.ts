import cluster from 'node:cluster';
import { createLogger } from '../logger.js';
import { OptionsError, type NodeOptions } from '../options.js';
import { redactRedisUrl } from '../redis/connect.js';
import { Gateway, gatewayOptions } from './gateway.js';
import { GatewayPrimary, WorkerStartError, announceListening, workerMetrics } from './workers.js';

/**
 * `switchboard gateway` once its options are resolved: one process, or with
 * `gatewayWorkers > 1` a primary and that many worker processes, each a whole gateway on the
 * same port. Prints the banner once, stops on SIGTERM/SIGINT with exit code 0.
 */
export async function serveGateway(options: NodeOptions): Promise<void> {
  if (options.gatewayWorkers > 1 && cluster.isPrimary) return servePrimary(options);
  const worker = cluster.isWorker;
  let gateway: Gateway;
  try {
    const id = options.nodeId;
    const log = worker ? createLogger(id, options.logLevel).child({ worker: cluster.worker!.id }) : undefined;
    gateway = new Gateway(gatewayOptions(options), { ...(log ? { logger: log } : {}) });
    if (worker) gateway.useMetrics(workerMetrics(gateway.metrics.registry));
  } catch (err) {
    // A bad certificate or key: say which option, as for any other invalid option.
    throw new OptionsError(`switchboard gateway: ${(err as Error).message}`);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.log.info({ signal }, 'shutting down');
    void gateway.stop().then(() => process.exit(0));
  };
  const { url } = await gateway.start();
  if (worker) {
    announceListening(url);
    // The primary is gone (killed): a worker alone would hold the port with nobody to answer for it.
    process.once('disconnect', () => shutdown('disconnect'));
  } else
    process.stderr.write(
      banner(
        options,
        url,
        gateway.health.live().map((n) => n.id),
      ),
    );
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function servePrimary(options: NodeOptions): Promise<void> {
  const log = createLogger(options.nodeId!, options.logLevel).child({ role: 'primary' });
  const primary = new GatewayPrimary({
    workers: options.gatewayWorkers,
    gatewayId: options.nodeId!,
    log,
    // Every worker gets the same id (a random default would differ per process).
    env: { SWITCHBOARD_NODE_ID: options.nodeId! },
  });
  let url: string;
  try {
    url = await primary.start();
  } catch (err) {
    // The worker has said why (a port in use, Redis away…); its exit code is the gateway's.
    if (err instanceof WorkerStartError) process.exit(err.code);
    throw err;
  }
  process.stderr.write(banner(options, url, [], options.gatewayWorkers));
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down the workers');
    void primary.stop(signal).then((code) => process.exit(code));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

function banner(options: NodeOptions, url: string, live: string[], workers = 1): string {
  const ws = url.replace(/^http/, 'ws') + options.wsPath;
  const processes = workers > 1 ? `, ${workers} workers` : '';
  const nodes = workers > 1 ? '' : `; live: ${live.join(', ') || 'none yet'}`;
  return `switchboard gateway: ${options.nodeId} on ${url}  (WebSocket ${ws}), policy ${options.gatewayPolicy}${processes}, nodes from Redis ${redactRedisUrl(options.redisUrl)} prefix ${options.redisPrefix}${nodes}\n`;
}

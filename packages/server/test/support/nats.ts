/**
 * NATS for tests: the skip rule of the NATS suites, and nats-servers with options the shared
 * PrivateServer does not take (authentication). The suites run on private servers only
 * (`PrivateServer.nats()`), so what they need is the binary, not the shared server on 4222.
 *
 * ```ts
 * import { natsSkip } from './support/nats.js';
 * describe('NATS thing', { skip: natsSkip }, () => { … });
 * ```
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freeLoopbackPort, waitForPort } from './servers.js';

/** Where nats-server may be installed (the places PrivateServer.nats() looks). */
export const NATS_SERVER_CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** The nats-server binary, or undefined when it is not installed. */
export const natsServerBinary: string | undefined = NATS_SERVER_CANDIDATES.find((p) => existsSync(p));

/**
 * The `skip` value for NATS suites: undefined when nats-server is installed, else the reason. In
 * CI (`CI=true`) a missing nats-server is an error instead, so a green run always ran the NATS tests.
 */
export const natsSkip: string | undefined = (() => {
  if (natsServerBinary) return undefined;
  const message = `nats-server is not installed (looked in ${NATS_SERVER_CANDIDATES.join(', ')}): apt-get install nats-server, then scripts/ensure-nats.sh`;
  if (process.env.CI === 'true') throw new Error(message);
  return message;
})();

/** A private nats-server started with extra `args` (e.g. `--user`/`--pass`); `stop()` kills it. */
export async function natsServerWith(args: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  if (!natsServerBinary) throw new Error(natsSkip ?? 'nats-server is not installed');
  const port = await freeLoopbackPort();
  const child = spawn(natsServerBinary, ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitForPort(port);
  return {
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

import { fork } from 'node:child_process';
import { Server as NetServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * More than one accept per event-loop turn for a listening server, on Node 20.
 *
 * Since libuv 1.45 (libuv PR 3696) a listening handle accepts at most one connection per turn of
 * the event loop. A server whose turns grow long under load (a node writing to thousands of
 * sockets, a gateway copying their bytes) then accepts reconnections at its turn rate — two a
 * second at half-second turns — its accept queue fills and reconnecting clients wait minutes.
 * `SO_REUSEPORT` listeners would fix it, but Node 20 has no `reusePort`.
 *
 * Here the listening socket gets `extra` more descriptors, each watched by its own handle: every
 * turn, each one that is readable accepts one connection, and hands it to `server` as its own
 * (`'connection'`), so requests, upgrades, timeouts and `closeAllConnections` work as for the
 * first. The descriptors come from a short-lived helper process (handle-echo.ts) that receives the
 * handle over IPC and sends it straight back: the only way to duplicate a descriptor from
 * JavaScript. Resolves with a function that closes the extra handles and resolves once they are
 * closed (call it when the server closes).
 */
export async function fanOutAccept(server: NetServer, extra: number): Promise<() => Promise<void>> {
  if (extra < 1) return async () => undefined;
  const handle = (server as unknown as { _handle?: unknown })._handle;
  if (!handle) throw new Error('fanOutAccept: the server is not listening');
  // From the build, plain node; from the sources (tests run them with tsx), the same loader.
  const fromSource = import.meta.url.endsWith('.ts');
  const helper = fork(fileURLToPath(new URL(`./handle-echo.${fromSource ? 'ts' : 'js'}`, import.meta.url)), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: fromSource ? ['--import', 'tsx'] : [],
  });
  const extras: NetServer[] = [];
  try {
    for (let id = 0; id < extra; id++) {
      const copy = await new Promise<unknown>((resolve, reject) => {
        const onMessage = (message: { id: number }, back: unknown) => {
          if (message?.id !== id) return;
          helper.off('message', onMessage);
          helper.off('exit', onExit);
          resolve(back);
        };
        const onExit = (code: number | null) => reject(new Error(`the descriptor helper exited (code ${code})`));
        helper.on('message', onMessage);
        helper.once('exit', onExit);
        helper.send({ id }, handle as never);
      });
      const listener = new NetServer({ pauseOnConnect: false });
      listener.on('connection', (socket: Socket) => server.emit('connection', socket));
      listener.on('error', (err) => server.emit('error', err));
      await new Promise<void>((resolve) => listener.listen(copy as never, resolve));
      extras.push(listener);
    }
  } catch (err) {
    for (const l of extras) l.close();
    throw err;
  } finally {
    helper.disconnect();
  }
  // Resolves once every extra descriptor is closed: until then the socket still takes connections.
  return () => Promise.all(extras.map((l) => new Promise<void>((resolve) => l.close(() => resolve())))).then(() => undefined);
}

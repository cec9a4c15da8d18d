/** The shared test support: `eventually` (support/eventually.ts) and free ports (support/ports.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { eventually } from './support/eventually.js';
import { freeConsecutivePorts, freePort, isPortFree } from './support/ports.js';

describe('eventually', () => {
  it('polls a predicate until it returns true', async () => {
    let calls = 0;
    assert.equal(await eventually(() => ++calls === 3, { intervalMs: 1 }), true);
    assert.equal(calls, 3);
  });

  it('retries an assertion until it stops throwing and resolves with what it returned, undefined included', async () => {
    let calls = 0;
    const value = await eventually(
      async () => {
        calls++;
        assert.ok(calls >= 2);
        return { calls };
      },
      { intervalMs: 1 },
    );
    assert.deepEqual(value, { calls: 2 });
    assert.equal(await eventually(() => undefined), undefined);
  });

  it('fails after timeoutMs with the message and the last error, kept as the cause', async () => {
    let calls = 0;
    const started = Date.now();
    const err = await eventually(
      () => {
        calls++;
        assert.equal(calls, -1, `attempt ${calls}`);
      },
      { timeoutMs: 60, intervalMs: 10, message: 'the impossible' },
    ).then(
      () => assert.fail('resolved'),
      (e: unknown) => e as Error,
    );
    assert.ok(Date.now() - started >= 60, 'it kept trying until the timeout');
    assert.ok(calls >= 2, `${calls} attempts`);
    assert.match(err.message, new RegExp(`^timed out after 60 ms waiting for the impossible \\(last error: attempt ${calls}\\b`));
    assert.ok(err.cause instanceof assert.AssertionError);
  });

  it('says that a predicate still returned false', async () => {
    await assert.rejects(
      eventually(() => false, { timeoutMs: 20, message: 'nothing' }),
      {
        message: 'timed out after 20 ms waiting for nothing (the check still returned false)',
      },
    );
  });
});

const RANGE = '/proc/sys/net/ipv4/ip_local_port_range';

describe('ports', () => {
  it('finds a free port on 127.0.0.1 that can be listened on', async () => {
    const port = await freePort();
    assert.ok(Number.isInteger(port) && port > 0 && port < 65536, String(port));
    assert.equal(await isPortFree(port), true);
  });

  it('tells a port in use from a free one', async () => {
    const srv = createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      assert.equal(await isPortFree((srv.address() as { port: number }).port), false);
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
  });

  it('finds consecutive free ports below the ephemeral range', async () => {
    const low = existsSync(RANGE) ? Number(readFileSync(RANGE, 'utf8').trim().split(/\s+/)[0]) : 32_768;
    const base = await freeConsecutivePorts(4);
    assert.ok(base >= 20_000 && base + 3 < low, `base ${base}, ephemeral ports from ${low}`);
    for (let i = 0; i < 4; i++) assert.equal(await isPortFree(base + i), true, `port ${base + i}`);
    await assert.rejects(freeConsecutivePorts(0), RangeError);
  });
});

/**
 * Token checks at the handshake (PROTOCOL.md "Connecting"): every bad token lets the upgrade
 * complete, sends no `welcome`, and closes with 4001 and a reason; good tokens get `welcome`.
 * The algorithm is pinned by the node's config, so tokens that pick their own `alg` must fail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { SECRET, TestClient, startNode, token, type TestNode } from './helpers.js';

const OTHER_SECRET = 'another-secret-0123456789-abcdefghijklmnop';

/** Every token a test sent; none of them may show up in any node's logs. */
const usedTokens = new Set<string>();

function remember(tok: string): string {
  usedTokens.add(tok);
  return tok;
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const inOneHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Signs `claims` as they are (no `sub`/`exp` added) with `alg` and `key`. */
async function signRaw(claims: Record<string, unknown>, alg: string, key: KeyObject | Uint8Array): Promise<string> {
  return remember(await new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(key));
}

/** An HS256 token from the test helper, remembered for the log check. */
async function hsToken(user: string, claims: Record<string, unknown> = {}, opts: Parameters<typeof token>[2] = {}): Promise<string> {
  return remember(await token(user, claims, opts));
}

/** Opens a socket with `tok` in `?token=` (or `Authorization` when `via` says so), or with no token when undefined. */
function open(node: TestNode, tok: string | undefined, via: 'query' | 'header' = 'query'): TestClient {
  if (tok === undefined) return new TestClient(node.wsUrl);
  if (via === 'header') return new TestClient(node.wsUrl, { headers: { authorization: `Bearer ${tok}` } });
  return new TestClient(`${node.wsUrl}?token=${encodeURIComponent(tok)}`);
}

/**
 * Asserts the protocol's refusal: the upgrade completes (so a browser sees a close code, not a
 * network error), no frame at all arrives (in particular no `welcome`), and the close is 4001
 * with `reason`.
 */
async function expectUnauthorized(
  node: TestNode,
  tok: string | undefined,
  reason: string,
  via: 'query' | 'header' = 'query',
): Promise<void> {
  const client = open(node, tok, via);
  try {
    await client.opened;
    const closed = await client.waitClose();
    assert.deepEqual(closed, { code: 4001, reason });
    assert.deepEqual(client.frames, [], 'no frame (and so no welcome) may precede the 4001 close');
  } finally {
    client.ws.terminate();
  }
}

/** Asserts `tok` is accepted: a `welcome` for `user` arrives. */
async function expectWelcome(node: TestNode, tok: string, user: string, via: 'query' | 'header' = 'query'): Promise<void> {
  const client = open(node, tok, via);
  try {
    const welcome = await client.next((f) => f.type === 'welcome');
    assert.equal(welcome.user, user);
  } finally {
    await client.close();
  }
}

function pemOf(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

describe('token checks at the handshake', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let hs: TestNode;
  let noExp: TestNode;
  let rs: TestNode;
  let es: TestNode;

  before(async () => {
    // trace: every log line a node can write is captured, so the no-token-in-logs check covers them all.
    [hs, noExp, rs, es] = await Promise.all([
      startNode({ logLevel: 'trace' }),
      startNode({ logLevel: 'trace', requireExp: false }),
      startNode({ logLevel: 'trace', jwtSecret: undefined, jwtPublicKey: pemOf(rsa.publicKey) }),
      startNode({ logLevel: 'trace', jwtSecret: undefined, jwtPublicKey: pemOf(ec.publicKey) }),
    ]);
  });
  after(() => Promise.all([hs, noExp, rs, es].map((n) => n?.stop())));

  describe('HS256 node: accepted tokens', () => {
    it('accepts a valid token in ?token=', async () => {
      await expectWelcome(hs, await hsToken('alice'), 'alice');
    });

    it('accepts a valid token in Authorization: Bearer', async () => {
      await expectWelcome(hs, await hsToken('bob'), 'bob', 'header');
    });
  });

  describe('HS256 node: refused tokens close with 4001', () => {
    it('refuses a token signed with another secret', async () => {
      await expectUnauthorized(hs, await hsToken('alice', {}, { secret: OTHER_SECRET }), 'bad signature');
    });

    it('refuses a wrongly signed token sent as Authorization: Bearer too', async () => {
      await expectUnauthorized(hs, await hsToken('alice', {}, { secret: OTHER_SECRET }), 'bad signature', 'header');
    });

    it('refuses an HS256 token with its signature stripped', async () => {
      const [header, payload] = (await hsToken('alice')).split('.');
      await expectUnauthorized(hs, remember(`${header}.${payload}.`), 'bad signature');
    });

    it('refuses a valid signature written another way (padding, junk a base64 decoder would skip)', async () => {
      const real = await hsToken('alice');
      for (const variant of [`${real}=`, `${real}==`, `${real}!`, `${real.slice(0, -1)}+${real.slice(-1)}`]) {
        await expectUnauthorized(hs, remember(variant), 'bad signature');
      }
    });

    it('refuses a rightly signed token whose header is not a plain HS256 one (crit, not an object)', async () => {
      const payload = b64url({ sub: 'alice', exp: inOneHour() });
      for (const header of [b64url({ alg: 'HS256', crit: ['exp'], exp: 1 }), Buffer.from('"HS256"').toString('base64url')]) {
        const input = `${header}.${payload}`;
        const signed = remember(`${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`);
        await expectUnauthorized(hs, signed, 'malformed token');
      }
    });

    it('refuses an unsigned alg:none token', async () => {
      const unsigned = remember(`${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: inOneHour() })}.`);
      await expectUnauthorized(hs, unsigned, 'algorithm not allowed');
    });

    it('refuses an alg:none token that carries a copied HS256 signature', async () => {
      // A forger who keeps a real signature but flips the header must still fail.
      const real = await hsToken('alice');
      const forged = remember(`${b64url({ alg: 'none', typ: 'JWT' })}.${real.split('.')[1]}.${real.split('.')[2]}`);
      await expectUnauthorized(hs, forged, 'algorithm not allowed');
    });

    it('refuses HS384 and HS512 tokens signed with the right secret (the algorithm is pinned)', async () => {
      const key = new TextEncoder().encode(SECRET);
      for (const alg of ['HS384', 'HS512']) {
        await expectUnauthorized(hs, await signRaw({ sub: 'alice', exp: inOneHour() }, alg, key), 'algorithm not allowed');
      }
    });

    it('refuses an expired token', async () => {
      // Past the verifier's 5 s clock tolerance.
      await expectUnauthorized(hs, await hsToken('alice', {}, { expiresIn: -60 }), 'token expired');
    });

    it('refuses a token without sub', async () => {
      await expectUnauthorized(hs, await signRaw({ exp: inOneHour() }, 'HS256', new TextEncoder().encode(SECRET)), 'claim sub missing');
    });

    it('refuses a token without exp by default', async () => {
      await expectUnauthorized(hs, await hsToken('alice', {}, { expiresIn: null }), 'claim exp missing');
    });

    it('refuses malformed token strings', async () => {
      for (const bad of ['not-a-jwt', 'a.b.c', 'eyJhbGciOiJIUzI1NiJ9', 'a b.c d.e f', 'x'.repeat(300)]) {
        await expectUnauthorized(hs, remember(bad), 'malformed token');
      }
    });

    it('refuses a correctly signed token whose payload is not a JSON object', async () => {
      // The signature is right, so only the claims parser can stop it.
      for (const payload of ['not json', '[1,2]']) {
        const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${Buffer.from(payload).toString('base64url')}`;
        const signed = remember(`${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`);
        await expectUnauthorized(hs, signed, 'malformed token');
      }
    });

    it('refuses a connection without a token, or with an empty one', async () => {
      await expectUnauthorized(hs, undefined, 'missing token');
      await expectUnauthorized(hs, '', 'missing token');
    });

    it('refuses groups that is not an array of strings', async () => {
      for (const groups of ['ops', [1, 2], ['ops', null], { ops: true }]) {
        await expectUnauthorized(hs, await hsToken('alice', { groups }), 'groups must be an array of strings');
      }
    });

    it('refuses channels that is not an array of strings', async () => {
      await expectUnauthorized(hs, await hsToken('alice', { channels: 'group:ops' }), 'channels must be an array of strings');
    });

    it('refuses a sub that is not a valid user id', async () => {
      for (const sub of ['bad user', 'a:b', 'x'.repeat(129)]) {
        await expectUnauthorized(hs, await hsToken(sub), 'sub is not a valid user id');
      }
      await expectUnauthorized(
        hs,
        await signRaw({ sub: '', exp: inOneHour() }, 'HS256', new TextEncoder().encode(SECRET)),
        'sub is not a valid user id',
      );
    });
  });

  describe('requireExp: false', () => {
    it('accepts a token without exp', async () => {
      await expectWelcome(noExp, await hsToken('carol', {}, { expiresIn: null }), 'carol');
    });

    it('still refuses an expired token', async () => {
      await expectUnauthorized(noExp, await hsToken('carol', {}, { expiresIn: -60 }), 'token expired');
    });
  });

  describe('RS256 node', () => {
    it('accepts an RS256 token signed with the matching private key', async () => {
      await expectWelcome(rs, await signRaw({ sub: 'dave', exp: inOneHour() }, 'RS256', rsa.privateKey), 'dave');
    });

    it('refuses an RS256 token signed with another RSA key', async () => {
      await expectUnauthorized(rs, await signRaw({ sub: 'dave', exp: inOneHour() }, 'RS256', otherRsa.privateKey), 'bad signature');
    });

    it('refuses an ES256 token', async () => {
      await expectUnauthorized(rs, await signRaw({ sub: 'dave', exp: inOneHour() }, 'ES256', ec.privateKey), 'algorithm not allowed');
    });

    it('refuses an HS256 token whose HMAC key is the node public key PEM (key confusion)', async () => {
      const confused = await signRaw({ sub: 'dave', exp: inOneHour() }, 'HS256', new TextEncoder().encode(pemOf(rsa.publicKey)));
      await expectUnauthorized(rs, confused, 'algorithm not allowed');
    });

    it('refuses an HS256 token signed with the shared test secret', async () => {
      await expectUnauthorized(rs, await hsToken('dave'), 'algorithm not allowed');
    });
  });

  describe('ES256 node', () => {
    it('accepts an ES256 token signed with the matching private key', async () => {
      await expectWelcome(es, await signRaw({ sub: 'erin', exp: inOneHour() }, 'ES256', ec.privateKey), 'erin', 'header');
    });

    it('refuses an ES256 token signed with another EC key', async () => {
      await expectUnauthorized(es, await signRaw({ sub: 'erin', exp: inOneHour() }, 'ES256', otherEc.privateKey), 'bad signature');
    });

    it('refuses an RS256 token', async () => {
      await expectUnauthorized(es, await signRaw({ sub: 'erin', exp: inOneHour() }, 'RS256', rsa.privateKey), 'algorithm not allowed');
    });

    it('refuses an HS256 token whose HMAC key is the node public key PEM (key confusion)', async () => {
      const confused = await signRaw({ sub: 'erin', exp: inOneHour() }, 'HS256', new TextEncoder().encode(pemOf(ec.publicKey)));
      await expectUnauthorized(es, confused, 'algorithm not allowed');
    });
  });

  describe('logs', () => {
    it('never contain a token used in these tests (nor its signature)', () => {
      const nodes = { hs, noExp, rs, es };
      // The check is only meaningful if the refusals were logged at all.
      assert.ok(
        hs.logs.some((line) => line.includes('token rejected')),
        'the HS256 node logged no token rejection',
      );
      assert.ok(usedTokens.size > 20, `only ${usedTokens.size} tokens were recorded`);
      for (const [name, node] of Object.entries(nodes)) {
        for (const tok of usedTokens) {
          const signature = tok.split('.')[2] ?? '';
          // Short strings (the malformed samples) could match by chance; real tokens are long.
          const needles = [tok, signature].filter((s) => s.length >= 16);
          for (const needle of needles) {
            const line = node.logs.find((l) => l.includes(needle));
            assert.equal(line, undefined, `${name} node logged a token: ${line ?? ''}`);
          }
        }
      }
    });
  });
});

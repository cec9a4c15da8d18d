import { createHmac, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, UnsecuredJWT, type JWTClaimVerificationOptions, type JWTPayload } from 'jose';
import { isValidId } from '@switchboard/protocol';
import { readPem } from './pem.js';

/** The identity a valid token grants. */
export interface Identity {
  user: string;
  groups: readonly string[];
  channels: readonly string[];
  admin: boolean;
  /** Token expiry, seconds since the epoch, when present. */
  exp: number | undefined;
}

/** How tokens are checked. */
export interface TokenVerifierOptions {
  jwtSecret?: string | undefined;
  jwtPublicKey?: string | undefined;
  jwtAlgorithm?: 'HS256' | 'RS256' | 'ES256' | undefined;
  /** @default true */
  requireExp?: boolean;
}

/** Why a token was refused; the text goes into the 4001 close reason, never the token itself. */
export class TokenError extends Error {
  readonly code = 'ERR_TOKEN';

  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

/** Anything that turns a token into an identity (a {@link TokenVerifier}, or a test's slow one). */
export interface Verifier {
  /** @throws TokenError with the reason a client is told. */
  verify(token: string): Promise<Identity>;
}

/**
 * Verifies client JWTs with one pinned algorithm: HS256 with a shared secret, or RS256/ES256 with
 * a public key. The token's own `alg` header never chooses the algorithm.
 */
export class TokenVerifier implements Verifier {
  readonly algorithm: 'HS256' | 'RS256' | 'ES256';
  private readonly key: Uint8Array | KeyObject;
  /** What jose checks of the claims: `sub`, and `exp` unless `requireExp` is off; 5 s of clock skew. */
  private readonly claims: JWTClaimVerificationOptions;

  /** @throws Error when neither a secret nor a public key is given, or the key does not fit the algorithm. */
  constructor(options: TokenVerifierOptions) {
    this.claims = { requiredClaims: (options.requireExp ?? true) ? ['sub', 'exp'] : ['sub'], clockTolerance: 5 };
    if (options.jwtSecret !== undefined) {
      this.algorithm = 'HS256';
      this.key = new TextEncoder().encode(options.jwtSecret);
      return;
    }
    if (options.jwtPublicKey === undefined) throw new Error('a JWT secret or public key is required');
    const pem = readPem(options.jwtPublicKey, 'SWITCHBOARD_JWT_PUBLIC_KEY');
    const key = createPublicKey(pem);
    const inferred = key.asymmetricKeyType === 'rsa' ? 'RS256' : key.asymmetricKeyType === 'ec' ? 'ES256' : undefined;
    const algorithm = options.jwtAlgorithm ?? inferred;
    if (algorithm === undefined || algorithm === 'HS256' || algorithm !== inferred) {
      throw new Error(
        `SWITCHBOARD_JWT_PUBLIC_KEY is a ${key.asymmetricKeyType ?? 'unknown'} key, which does not fit ${algorithm ?? 'RS256/ES256'}`,
      );
    }
    this.algorithm = algorithm;
    this.key = key;
  }

  /**
   * Checks signature, algorithm, `exp`/`nbf` and claims.
   * @throws TokenError with a short reason.
   */
  async verify(token: string): Promise<Identity> {
    let payload: JWTPayload;
    const { claims } = this;
    try {
      if (this.key instanceof Uint8Array) payload = verifyHs256(token, this.key, claims);
      else ({ payload } = await jwtVerify(token, this.key, { algorithms: [this.algorithm], ...claims }));
    } catch (err) {
      if (err instanceof TokenError) throw err;
      throw new TokenError(reasonOf(err));
    }
    const user = payload.sub;
    if (typeof user !== 'string' || !isValidId(user)) throw new TokenError('sub is not a valid user id');
    const groups = stringList(payload.groups, 'groups');
    const channels = stringList(payload.channels, 'channels');
    if (groups.some((g) => !isValidId(g))) throw new TokenError('groups holds an invalid group id');
    return { user, groups, channels, admin: payload.role === 'admin', exp: payload.exp };
  }
}

/** The protected header of an unsecured JWT, for jose's validation of a verified payload's claims. */
const UNSECURED_HEADER = Buffer.from('{"alg":"none"}').toString('base64url');

/**
 * An HS256 JWT checked on the event loop, with the outcomes of jose's `jwtVerify` pinned to HS256
 * (and stricter in two points, below). WebCrypto's HMAC, all jose has, is an asynchronous job of
 * about 50 µs of CPU a token, a sixth of a connection's CPU in a connection storm; this whole check
 * takes about 10. The header must be a JSON object with `alg` HS256 and no `crit` (jose would take
 * a `crit` naming `b64`); the signature is compared as its base64url text, in constant time (a
 * decoder lets other strings pass for it: jose takes one with an `=` appended). The claims of the
 * verified payload (`exp`, `nbf`, the required ones, the clock tolerance) are then validated by
 * jose itself, as those of an unsecured JWT.
 * @throws TokenError for a malformed token, another algorithm or a bad signature; jose's claim errors.
 */
function verifyHs256(token: string, secret: Uint8Array, claims: JWTClaimVerificationOptions): JWTPayload {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first <= 0 || second < 0 || token.indexOf('.', second + 1) >= 0) throw new TokenError('malformed token');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, first), 'base64url').toString('utf8'));
  } catch {
    throw new TokenError('malformed token');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new TokenError('malformed token');
  if ((header as { alg?: unknown }).alg !== 'HS256') throw new TokenError('algorithm not allowed');
  if ('crit' in header) throw new TokenError('malformed token');
  const expected = Buffer.from(createHmac('sha256', secret).update(token.slice(0, second)).digest('base64url'));
  const given = Buffer.from(token.slice(second + 1));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new TokenError('bad signature');
  return UnsecuredJWT.decode(`${UNSECURED_HEADER}.${token.slice(first + 1, second)}.`, claims).payload;
}

/** The list of a claim the token does not have: one array for every identity. */
const NONE: readonly string[] = Object.freeze([]);

function stringList(value: unknown, claim: string): readonly string[] {
  if (value === undefined) return NONE;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string') || value.length > 1000) {
    throw new TokenError(`${claim} must be an array of strings`);
  }
  return [...new Set(value as string[])];
}

function reasonOf(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim ${err.claim} ${err.reason === 'missing' ? 'missing' : 'invalid'}`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  return 'malformed token';
}

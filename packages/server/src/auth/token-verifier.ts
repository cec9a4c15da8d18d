import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { isValidId } from '@switchboard/protocol';
import { readPem } from './pem.js';

type CryptoKey = webcrypto.CryptoKey;

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
  private readonly requireExp: boolean;

  /** @throws Error when neither a secret nor a public key is given, or the key does not fit the algorithm. */
  constructor(options: TokenVerifierOptions) {
    this.requireExp = options.requireExp ?? true;
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

  private imported: Promise<CryptoKey | KeyObject> | undefined;

  /**
   * The key as jose wants it, imported once: given raw bytes, jose would import an HMAC key again
   * on every verification (a third of a connection storm's CPU).
   */
  private verificationKey(): Promise<CryptoKey | KeyObject> {
    this.imported ??=
      this.key instanceof Uint8Array
        ? webcrypto.subtle.importKey('raw', this.key, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
        : Promise.resolve(this.key);
    return this.imported;
  }

  /**
   * Checks signature, algorithm, `exp`/`nbf` and claims.
   * @throws TokenError with a short reason.
   */
  async verify(token: string): Promise<Identity> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await this.verificationKey(), {
        algorithms: [this.algorithm],
        requiredClaims: this.requireExp ? ['sub', 'exp'] : ['sub'],
        clockTolerance: 5,
      }));
    } catch (err) {
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

import type { IncomingMessage } from 'node:http';
import { isValidId } from '@switchboard/protocol';
import { TokenError, type Verifier } from '../auth/token-verifier.js';
import { SwitchboardError } from '../errors.js';
import type { ApiKeyCheck } from './api-key.js';
import { bearerToken } from './bearer.js';

/**
 * Whose route `GET /v1/route` may answer. A backend with the API key asks for any `?user=`; a
 * client asks with its own token (the SDK's `directConnect`, the seeds' two-step connect) and gets
 * its own user's route — so clients never hold the API key.
 * @throws SwitchboardError `unauthorized`, `forbidden` or `bad_frame`.
 */
export async function routeUser(req: IncomingMessage, url: URL, apiKey: ApiKeyCheck, verifier: Verifier): Promise<string> {
  const asked = url.searchParams.get('user');
  if (apiKey.allows(req)) {
    if (asked === null || !isValidId(asked)) throw new SwitchboardError('ERR_BAD_FRAME', 'query parameter user must be a user id');
    return asked;
  }
  const token = bearerToken(req);
  if (!token)
    throw new SwitchboardError(
      'ERR_UNAUTHORIZED',
      'send the API key, or a client token for your own route (Authorization: Bearer <token>)',
    );
  let user: string;
  try {
    user = (await verifier.verify(token)).user;
  } catch (err) {
    throw new SwitchboardError('ERR_UNAUTHORIZED', err instanceof TokenError ? err.message : 'invalid token');
  }
  if (asked !== null && asked !== user) throw new SwitchboardError('ERR_FORBIDDEN', 'a client token may ask for its own route only');
  return user;
}

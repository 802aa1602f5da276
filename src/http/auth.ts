import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import { sameDigest } from '../safe-equal.js';
import { NotAuthenticated } from '../errors.js';
import type { Guard } from './route.js';
import { setRequestClient } from '../request-context.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface AuthOptions {
  tokens: readonly string[];
  enabled: boolean;
}

/**
 * The `bearer` guard for /api/* routes. Tokens are compared as SHA-256 digests in constant
 * time, so neither content nor length leaks through timing. ctx.state.client names the caller
 * by a digest prefix of its token (stable when API_TOKENS is reordered): jobs and idempotency
 * keys belong to it.
 */
export function bearerToken(options: AuthOptions): Guard {
  const known = options.tokens.map((t) => ({ hash: digest(t), client: `token:${digest(t).toString('hex').slice(0, 12)}` }));
  return {
    name: 'bearer',
    needsBody: false,
    check(ctx: Context) {
      if (!options.enabled) {
        identify(ctx, 'anonymous');
        return;
      }
      if (known.length === 0) {
        throw new NotAuthenticated('API_TOKENS is not set on the server: set API_TOKENS (or API_AUTH=off behind an allow-listing proxy)');
      }
      const match = /^Bearer +(\S+) *$/i.exec(ctx.get('authorization'));
      if (!match) throw new NotAuthenticated('send Authorization: Bearer <token>');
      const given = digest(match[1]!);
      let client: string | undefined;
      // Every token is compared, so the time taken does not say which one matched.
      for (const k of known) if (sameDigest(k.hash, given)) client ??= k.client;
      if (!client) throw new NotAuthenticated('bearer token is not valid');
      identify(ctx, client);
    },
  };
}

/** The caller's name, for the handler (ctx.state.client) and for the request's log context. */
function identify(ctx: Context, client: string): void {
  ctx.state.client = client;
  setRequestClient(client);
}

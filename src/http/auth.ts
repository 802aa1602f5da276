import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import { Unauthorized } from '../errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface AuthOptions {
  tokens: readonly string[];
  enabled: boolean;
}

/**
 * Bearer tokens for /api/*. Tokens are compared as SHA-256 digests with timingSafeEqual, so
 * neither content nor length leaks through timing. ctx.state.client names the token (by index)
 * so idempotency keys are scoped per client.
 */
export function requireBearer(options: AuthOptions) {
  const known = options.tokens.map((t, i) => ({ hash: digest(t), client: `token#${i + 1}` }));
  return async function authMiddleware(ctx: Context, next: Next): Promise<void> {
    if (!options.enabled) {
      ctx.state.client = 'anonymous';
      return next();
    }
    if (known.length === 0) {
      throw new Unauthorized('API_TOKENS is not set on the server: set API_TOKENS (or API_AUTH=off behind an allow-listing proxy)');
    }
    const header = ctx.get('authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new Unauthorized('send Authorization: Bearer <token>');
    const given = digest(match[1]!);
    let client: string | undefined;
    for (const k of known) if (timingSafeEqual(k.hash, given)) client ??= k.client;
    if (!client) throw new Unauthorized('bearer token is not valid');
    ctx.state.client = client;
    return next();
  };
}

import type { Context } from 'koa';
import { InvalidInput } from '../errors.js';

export interface IdempotencyKey {
  /** As the client sent it. */
  key: string;
  /** Scoped to the caller's token: another token's identical key is another key. */
  scoped: string;
}

/** The Idempotency-Key header (absent or empty: undefined), 1–255 characters, scoped to ctx.state.client. */
export function idempotencyKeyOf(ctx: Context): IdempotencyKey | undefined {
  const key = ctx.get('idempotency-key');
  if (!key) return undefined;
  if (key.length > 255) throw new InvalidInput('Idempotency-Key must be 1 to 255 characters');
  return { key, scoped: `${String(ctx.state.client)}\u0000${key}` };
}

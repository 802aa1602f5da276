import { createHash } from 'node:crypto';

/**
 * The bigint key of an advisory lock named `name`: the first 8 bytes of its SHA-256, signed, as
 * a decimal string (PostgreSQL advisory locks take a bigint; a JavaScript number cannot hold
 * one). 64 bits make two names sharing a key a non-event.
 */
export function advisoryKey(name: string): string {
  return createHash('sha256').update(`lark-bridge lock\u0000${name}`).digest().readBigInt64BE(0).toString();
}

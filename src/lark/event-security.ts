import { createHash, timingSafeEqual } from 'node:crypto';
import * as lark from '@larksuiteoapi/node-sdk';
import { NotAuthenticated } from '../errors.js';

/** Lark redelivers for hours; a signature older than this is refused as a replay. */
export const SIGNATURE_WINDOW_SEC = 5 * 60;

export interface EventSecurity {
  encryptKey?: string;
  verificationToken?: string;
}

export interface SignatureHeaders {
  timestamp: string;
  nonce: string;
  signature: string;
}

/**
 * Checks Lark's request signature: hex SHA-256 over timestamp + nonce + encryptKey + raw body,
 * compared in constant time, with a time window. The SDK re-serialises the parsed body and has
 * no window, so we check the raw bytes here before the SDK sees anything.
 */
export function verifyLarkSignature(raw: Buffer, h: SignatureHeaders, encryptKey: string, nowMs: number): void {
  checkSigned(raw, h, 'sha256', encryptKey, nowMs);
}

/** Legacy card callbacks (no encrypt, no schema) are signed with SHA-1 over timestamp + nonce + token + body. */
export function verifyLegacyCardSignature(raw: Buffer, h: SignatureHeaders, token: string, nowMs: number): void {
  checkSigned(raw, h, 'sha1', token, nowMs);
}

function checkSigned(raw: Buffer, h: SignatureHeaders, algorithm: 'sha1' | 'sha256', key: string, nowMs: number): void {
  if (!h.timestamp || !h.nonce || !h.signature) throw new NotAuthenticated('missing X-Lark-Signature / X-Lark-Request-Timestamp / X-Lark-Request-Nonce');
  const ts = Number(h.timestamp);
  if (!Number.isFinite(ts) || Math.abs(nowMs / 1000 - ts) > SIGNATURE_WINDOW_SEC) {
    throw new NotAuthenticated('request timestamp is outside the 5 minute window');
  }
  const expected = createHash(algorithm).update(h.timestamp + h.nonce + key).update(raw).digest();
  const given = Buffer.from(h.signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new NotAuthenticated('request signature does not verify');
}

/** Decrypts `{"encrypt": "..."}` with the SDK's AES-256-CBC cipher; plain bodies pass through. */
export function openEnvelope(body: unknown, encryptKey: string | undefined): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new NotAuthenticated('event body must be a JSON object');
  const encrypted = (body as { encrypt?: unknown }).encrypt;
  if (encrypted === undefined) return body as Record<string, unknown>;
  if (typeof encrypted !== 'string' || !encryptKey) throw new NotAuthenticated('encrypted event but LARK_ENCRYPT_KEY is not set');
  try {
    return JSON.parse(new lark.AESCipher(encryptKey).decrypt(encrypted)) as Record<string, unknown>;
  } catch {
    throw new NotAuthenticated('event could not be decrypted with LARK_ENCRYPT_KEY');
  }
}

/** v1 events carry `token`, v2 events `header.token`: it must equal the verification token. */
export function assertVerificationToken(event: Record<string, unknown>, expected: string | undefined): void {
  if (!expected) return;
  const header = event.header as { token?: unknown } | undefined;
  const token = header?.token ?? event.token;
  const a = Buffer.from(String(token ?? ''));
  const b = Buffer.from(expected);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new NotAuthenticated('verification token does not match');
}

/** The id Lark keeps across redeliveries: v2 `header.event_id`, v1 `uuid`. */
export function eventIdOf(event: Record<string, unknown>): string | undefined {
  const header = event.header as { event_id?: unknown } | undefined;
  const id = header?.event_id ?? event.uuid;
  return typeof id === 'string' && id ? id : undefined;
}

import { createHash } from 'node:crypto';
import * as lark from '@larksuiteoapi/node-sdk';
import { NotAuthenticated } from '../errors.js';
import { safeEqual } from '../safe-equal.js';

/**
 * How far back a signature may be dated, and how long a seen event id is kept: one constant, so
 * whatever the signature check still lets in, dedup still catches. Lark redelivers an event
 * with its original timestamp at growing intervals for about seven hours (DESIGN.md §3).
 */
export const EVENT_WINDOW_MS = 12 * 60 * 60 * 1000;
/** A signature dated ahead of our clock by more than this is refused (clock drift, not a replay). */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Seen ids are kept long enough to cover a signature dated up to CLOCK_SKEW_MS ahead. */
export const SEEN_EVENT_RETENTION_MS = EVENT_WINDOW_MS + CLOCK_SKEW_MS;

/** The three signature headers, as received (Koa joins a repeated header with ", "). */
export interface SignatureHeaders {
  timestamp: string;
  nonce: string;
  signature: string;
}

const TIMESTAMP = /^\d{1,12}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/i;
const SHA1_HEX = /^[0-9a-f]{40}$/i;

/**
 * Lark's request signature: hex SHA-256 over timestamp + nonce + encryptKey + raw body,
 * compared in constant time, dated within the window. The SDK re-serialises the parsed body and
 * has no window, so the raw bytes are checked here before the SDK sees anything.
 * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/event-subscription-guide/callback-subscription/receive-and-handle-callbacks
 */
export function verifyLarkSignature(encryptKey: string, h: SignatureHeaders, raw: Buffer, nowMs: number): void {
  checkSigned('sha256', SHA256_HEX, encryptKey, h, raw, nowMs);
}

/**
 * Legacy (pre-2.0) card callbacks: hex SHA-1 over timestamp + nonce + verification token + raw
 * body, the scheme of the SDKs' legacy card handlers (node-sdk RequestHandle.checkIsCardEventValidated,
 * oapi-sdk-go larkcard.Signature).
 * https://open.feishu.cn/document/ukTMukTMukTM/uYzMxEjL2MTMx4iNzETM
 */
export function verifyLegacyCardSignature(token: string, h: SignatureHeaders, raw: Buffer, nowMs: number): void {
  checkSigned('sha1', SHA1_HEX, token, h, raw, nowMs);
}

function checkSigned(algorithm: 'sha1' | 'sha256', format: RegExp, key: string, h: SignatureHeaders, raw: Buffer, nowMs: number): void {
  if (!h.timestamp || !h.nonce || !h.signature) throw new NotAuthenticated('missing X-Lark-Signature / X-Lark-Request-Timestamp / X-Lark-Request-Nonce');
  if (!TIMESTAMP.test(h.timestamp)) throw new NotAuthenticated('X-Lark-Request-Timestamp must be one whole number of seconds');
  if (!format.test(h.signature)) throw new NotAuthenticated(`X-Lark-Signature must be one hex ${algorithm.toUpperCase()} digest`);
  const signedAtMs = Number(h.timestamp) * 1000;
  if (signedAtMs < nowMs - EVENT_WINDOW_MS || signedAtMs > nowMs + CLOCK_SKEW_MS) {
    throw new NotAuthenticated(`request timestamp is outside the window (${EVENT_WINDOW_MS / 3_600_000} h back, ${CLOCK_SKEW_MS / 60_000} min ahead)`);
  }
  const expected = createHash(algorithm).update(h.timestamp + h.nonce + key).update(raw).digest('hex');
  if (!safeEqual(h.signature.toLowerCase(), expected)) throw new NotAuthenticated('request signature does not verify');
}

/** The SDK's cipher hashes the key when built: one per key, not one per event. */
let cached: { key: string; cipher: lark.AESCipher } | undefined;
function cipherFor(key: string): lark.AESCipher {
  // Equivalent mutant (README, "Tests that bite"): building a new cipher every time only costs time.
  // Stryker disable next-line ConditionalExpression
  if (cached?.key !== key) cached = { key, cipher: new lark.AESCipher(key) };
  return cached.cipher;
}

/** Decrypts `{"encrypt": "..."}` with the SDK's AES-256-CBC cipher; plain bodies pass through. */
export function openEnvelope(body: unknown, encryptKey: string | undefined): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new NotAuthenticated('event body must be a JSON object');
  const encrypted = (body as { encrypt?: unknown }).encrypt;
  if (encrypted === undefined) return body as Record<string, unknown>;
  if (typeof encrypted !== 'string') throw new NotAuthenticated('"encrypt" must be a string: the encrypted event');
  if (!encryptKey) throw new NotAuthenticated('encrypted event but LARK_ENCRYPT_KEY is not set');
  let plain: unknown;
  try {
    plain = JSON.parse(cipherFor(encryptKey).decrypt(encrypted));
  } catch {
    throw new NotAuthenticated('event could not be decrypted with LARK_ENCRYPT_KEY');
  }
  if (!plain || typeof plain !== 'object' || Array.isArray(plain)) throw new NotAuthenticated('decrypted event is not a JSON object');
  return plain as Record<string, unknown>;
}

/** v1 events carry `token`, v2 events `header.token`: it must equal the verification token. */
export function assertVerificationToken(event: Record<string, unknown>, expected: string | undefined): void {
  if (!expected) return;
  const header = event.header as { token?: unknown } | undefined;
  const token = header && typeof header === 'object' ? header.token : event.token;
  if (typeof token !== 'string' || !safeEqual(token, expected)) throw new NotAuthenticated('verification token does not match');
}

/** The id Lark keeps across redeliveries: v2 `header.event_id`, v1 `uuid`. */
export function eventIdOf(event: Record<string, unknown>): string | undefined {
  const header = event.header as { event_id?: unknown } | undefined;
  const id = header && typeof header === 'object' ? header.event_id : event.uuid;
  return typeof id === 'string' && id ? id : undefined;
}

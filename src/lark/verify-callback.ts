import { createHash } from 'node:crypto';
import { InvalidInput, NotAuthenticated, Unavailable } from '../errors.js';
import {
  assertVerificationToken,
  eventIdOf,
  openEnvelope,
  verifyLarkSignature,
  verifyLegacyCardSignature,
  type SignatureHeaders,
} from './event-security.js';

/** What the app was given in the developer console (Events & callbacks → Encryption strategy). */
export interface LarkSecrets {
  encryptKey?: string;
  verificationToken?: string;
}

/** A verified request: the url_verification challenge, or a callback with the id it is deduplicated by. */
export type Challenge = { kind: 'challenge'; challenge: unknown };
export type VerifiedCallback =
  | Challenge
  | { kind: 'event'; data: Record<string, unknown> }
  | VerifiedCard;
export type VerifiedCard = { kind: 'card'; format: '2.0' | 'legacy'; data: Record<string, unknown>; dedupKey: string };

function requireSecurity(s: LarkSecrets): void {
  if (!s.encryptKey && !s.verificationToken) {
    throw new Unavailable('Lark callbacks are refused: set LARK_ENCRYPT_KEY (recommended) or LARK_VERIFICATION_TOKEN');
  }
}

function parseRaw(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InvalidInput('callback body is not valid JSON');
  }
}

/** The url_verification challenge carries no signature headers; the token inside is what proves it. */
function challengeOf(data: Record<string, unknown>, s: LarkSecrets): Challenge | undefined {
  if (data.type !== 'url_verification') return undefined;
  assertVerificationToken(data, s.verificationToken);
  return { kind: 'challenge', challenge: data.challenge };
}

/** Events and 2.0 card callbacks: the SHA-256 signature when an encrypt key is set, and the verification token. */
function verifyAsEvent(s: LarkSecrets, h: SignatureHeaders, raw: Buffer, data: Record<string, unknown>, nowMs: number): string {
  if (s.encryptKey) verifyLarkSignature(s.encryptKey, h, raw, nowMs);
  assertVerificationToken(data, s.verificationToken);
  const id = eventIdOf(data);
  if (!id) throw new InvalidInput('event has neither header.event_id nor uuid');
  return id;
}

/**
 * POST /api/v1/lark/callback: a pure function of (secrets, signature headers, raw bytes, now).
 * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/event-subscription-guide/callback-subscription/receive-and-handle-callbacks
 */
export function verifyEventCallback(s: LarkSecrets, h: SignatureHeaders, raw: Buffer, nowMs: number): Challenge | { kind: 'event'; data: Record<string, unknown> } {
  requireSecurity(s);
  const data = openEnvelope(parseRaw(raw), s.encryptKey);
  const challenge = challengeOf(data, s);
  if (challenge) return challenge;
  verifyAsEvent(s, h, raw, data, nowMs);
  return { kind: 'event', data };
}

/**
 * POST /api/v1/lark/card. Two formats, told apart by the (decrypted) content:
 * - 2.0 (`schema: "2.0"`, `card.action.trigger`, plain or encrypted): verified as events;
 *   deduplicated by header.event_id.
 *   https://open.feishu.cn/document/uAjLw4CM/ukzMukzMukzM/feishu-cards/card-callback-communication
 * - legacy (the bot's "message card request URL"): SHA-1 signature with the verification token
 *   over the raw body — the encrypted envelope when an encrypt key is set, as the official Go
 *   SDK's larkcard handler checks it. Without LARK_VERIFICATION_TOKEN it cannot be verified and
 *   is refused. Deduplicated by a digest of its signature headers, which the signature binds to
 *   the body. https://open.feishu.cn/document/ukTMukTMukTM/uYzMxEjL2MTMx4iNzETM
 */
export function verifyCardCallback(s: LarkSecrets, h: SignatureHeaders, raw: Buffer, nowMs: number): Challenge | VerifiedCard {
  requireSecurity(s);
  const data = openEnvelope(parseRaw(raw), s.encryptKey);
  const challenge = challengeOf(data, s);
  if (challenge) return challenge;
  if ('schema' in data) {
    const dedupKey = verifyAsEvent(s, h, raw, data, nowMs);
    const type = (data.header as { event_type?: unknown } | undefined)?.event_type;
    if (type !== 'card.action.trigger') throw new InvalidInput(`a 2.0 card callback must be card.action.trigger, got ${JSON.stringify(type ?? null)}`);
    return { kind: 'card', format: '2.0', data, dedupKey };
  }
  if (!s.verificationToken) throw new NotAuthenticated('legacy card callbacks are refused: they are signed with the verification token, and LARK_VERIFICATION_TOKEN is not set');
  verifyLegacyCardSignature(s.verificationToken, h, raw, nowMs);
  const digest = createHash('sha256').update(`${h.timestamp}\n${h.nonce}\n${h.signature.toLowerCase()}`).digest('hex');
  return { kind: 'card', format: 'legacy', data, dedupKey: `legacy-card:${digest}` };
}

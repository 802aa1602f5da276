import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from '../src/errors.js';
import type { SignatureHeaders } from '../src/lark/event-security.js';
import { verifyCardCallback, verifyEventCallback, type LarkSecrets } from '../src/lark/verify-callback.js';
import { larkEncrypt, larkSign, larkSignLegacy } from './lark-emulator/event-sender.js';

/**
 * The two verifiers behind the Lark routes, as pure functions of (secrets, headers, raw bytes,
 * now): which deployment accepts what, and what each answer carries.
 */
const KEY = 'verify-encrypt-key';
const TOKEN = 'verify-verification-token';
const NOW = Date.parse('2026-11-20T10:00:00Z');
const TS = String(NOW / 1000);
const BOTH: LarkSecrets = { encryptKey: KEY, verificationToken: TOKEN };
const NO_HEADERS: SignatureHeaders = { timestamp: '', nonce: '', signature: '' };

const v1Event = { uuid: 'u-1', token: TOKEN, type: 'event_callback', event: { type: 'approval_task' } };
const press20 = (over: Record<string, unknown> = {}) => ({ schema: '2.0', header: { event_id: 'e-1', token: TOKEN, event_type: 'card.action.trigger', ...over }, event: { action: { value: {} } } });
const legacyPress = { open_id: 'ou_1', open_message_id: 'om_1', token: 'c-card-update-token', action: { value: { a: 1 } } };

/** The bytes and headers Lark sends: encrypted when `encrypt`, signed with SHA-256 and the key. */
function event(payload: unknown, o: { encrypt?: boolean; nonce?: string } = {}) {
  const text = JSON.stringify(payload);
  const raw = o.encrypt ? JSON.stringify({ encrypt: larkEncrypt(text, KEY) }) : text;
  const nonce = o.nonce ?? 'n-1';
  return { raw: Buffer.from(raw), h: { timestamp: TS, nonce, signature: larkSign(TS, nonce, KEY, raw) } };
}
function legacy(payload: unknown, nonce = 'n-1') {
  const raw = JSON.stringify(payload);
  return { raw: Buffer.from(raw), h: { timestamp: TS, nonce, signature: larkSignLegacy(TS, nonce, TOKEN, raw) } };
}

/** The verdict, or the refusal as "code: message". */
function outcome(f: () => unknown): unknown {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return `${err.code}: ${err.message}`;
  }
}
const onEvent = (s: LarkSecrets, r: { raw: Buffer; h: SignatureHeaders }) => outcome(() => verifyEventCallback(s, r.h, r.raw, NOW));
const onCard = (s: LarkSecrets, r: { raw: Buffer; h: SignatureHeaders }) => outcome(() => verifyCardCallback(s, r.h, r.raw, NOW));
const unsigned = (payload: unknown) => ({ raw: Buffer.from(JSON.stringify(payload)), h: NO_HEADERS });

describe('verifyEventCallback', () => {
  it('refuses everything when neither secret is set, and says what to set', () => {
    for (const s of [{}, { encryptKey: '', verificationToken: '' }]) {
      expect(onEvent(s, event(v1Event))).toBe('unavailable: Lark callbacks are refused: set LARK_ENCRYPT_KEY (recommended) or LARK_VERIFICATION_TOKEN');
    }
  });

  it('with an encrypt key, needs the signature; with both secrets, the token too', () => {
    expect(onEvent({ encryptKey: KEY }, event(v1Event, { encrypt: true }))).toEqual({ kind: 'event', data: v1Event });
    expect(onEvent(BOTH, event(v1Event, { encrypt: true }))).toEqual({ kind: 'event', data: v1Event });
    expect(onEvent(BOTH, event(v1Event))).toEqual({ kind: 'event', data: v1Event });
    expect(onEvent(BOTH, { ...event(v1Event), h: NO_HEADERS })).toMatch(/^unauthorized: missing X-Lark-Signature/);
    expect(onEvent(BOTH, event({ ...v1Event, token: 'forged' }))).toBe('unauthorized: verification token does not match');
    // The key alone: the token inside is not asked for.
    expect(onEvent({ encryptKey: KEY }, event({ ...v1Event, token: 'anything' }))).toEqual({ kind: 'event', data: { ...v1Event, token: 'anything' } });
  });

  it('with only the verification token, checks the token and no signature', () => {
    expect(onEvent({ verificationToken: TOKEN }, unsigned(v1Event))).toEqual({ kind: 'event', data: v1Event });
    expect(onEvent({ verificationToken: TOKEN }, unsigned({ ...v1Event, token: 'forged' }))).toBe('unauthorized: verification token does not match');
  });

  it('refuses a body that is not JSON, and an event without an id', () => {
    expect(onEvent(BOTH, { raw: Buffer.from('{"uuid":'), h: NO_HEADERS })).toBe('bad_request: callback body is not valid JSON');
    const { uuid: _, ...noId } = v1Event;
    expect(onEvent(BOTH, event(noId))).toBe('bad_request: event has neither header.event_id nor uuid');
  });

  it('answers the url_verification challenge without signature headers, checking the token when one is set', () => {
    const challenge = { type: 'url_verification', challenge: 'c-1', token: TOKEN };
    expect(onEvent(BOTH, unsigned(challenge))).toEqual({ kind: 'challenge', challenge: 'c-1' });
    expect(onEvent(BOTH, { raw: Buffer.from(JSON.stringify({ encrypt: larkEncrypt(JSON.stringify(challenge), KEY) })), h: NO_HEADERS })).toEqual({ kind: 'challenge', challenge: 'c-1' });
    expect(onEvent(BOTH, unsigned({ ...challenge, token: 'forged' }))).toBe('unauthorized: verification token does not match');
    expect(onEvent({ encryptKey: KEY }, unsigned({ ...challenge, token: 'anything' }))).toEqual({ kind: 'challenge', challenge: 'c-1' });
    // Only "url_verification" is a challenge: another type is an event, and needs its signature.
    expect(onEvent(BOTH, unsigned({ ...challenge, type: 'URL_VERIFICATION', uuid: 'u-2' }))).toMatch(/^unauthorized: missing/);
  });
});

describe('verifyCardCallback', () => {
  it('refuses everything when neither secret is set', () => {
    expect(onCard({}, legacy(legacyPress))).toMatch(/^unavailable: Lark callbacks are refused/);
    expect(onCard({}, { raw: Buffer.from('not json'), h: NO_HEADERS })).toMatch(/^unavailable:/);
  });

  it('verifies a 2.0 press as an event and deduplicates it by its event id', () => {
    const p = press20();
    expect(onCard(BOTH, event(p, { encrypt: true }))).toEqual({ kind: 'card', format: '2.0', data: p, dedupKey: 'e-1' });
    expect(onCard(BOTH, event(p))).toEqual({ kind: 'card', format: '2.0', data: p, dedupKey: 'e-1' });
    expect(onCard({ verificationToken: TOKEN }, unsigned(p))).toEqual({ kind: 'card', format: '2.0', data: p, dedupKey: 'e-1' });
    expect(onCard(BOTH, unsigned(p))).toMatch(/^unauthorized: missing/);
    expect(onCard(BOTH, event(press20({ token: 'forged' })))).toBe('unauthorized: verification token does not match');
    // A legacy signature does not make a 2.0 press legacy.
    expect(onCard(BOTH, legacy(p))).toBe('unauthorized: X-Lark-Signature must be one hex SHA256 digest');
  });

  it('takes only card.action.trigger as a 2.0 card callback', () => {
    expect(onCard(BOTH, event(press20({ event_type: 'app_ticket' })))).toBe('bad_request: a 2.0 card callback must be card.action.trigger, got "app_ticket"');
    expect(onCard({ verificationToken: TOKEN }, unsigned({ schema: '2.0', uuid: 'u-1', token: TOKEN }))).toBe('bad_request: a 2.0 card callback must be card.action.trigger, got null');
    expect(onCard(BOTH, event({ schema: '2.0', header: { token: TOKEN, event_type: 'card.action.trigger' } }))).toBe('bad_request: event has neither header.event_id nor uuid');
  });

  it('verifies a legacy press by SHA-1 with the verification token, and deduplicates it by its signature headers', () => {
    const r = legacy(legacyPress, 'n-7');
    const digest = createHash('sha256').update(`${TS}\nn-7\n${r.h.signature}`).digest('hex');
    const accepted = { kind: 'card', format: 'legacy', data: legacyPress, dedupKey: `legacy-card:${digest}` };
    expect(onCard(BOTH, r)).toEqual(accepted);
    expect(onCard({ verificationToken: TOKEN }, r)).toEqual(accepted);
    // The same signature in capitals is the same press.
    expect(onCard(BOTH, { raw: r.raw, h: { ...r.h, signature: r.h.signature.toUpperCase() } })).toEqual(accepted);
    // Another nonce is another request.
    expect((onCard(BOTH, legacy(legacyPress, 'n-8')) as { dedupKey: string }).dedupKey).not.toBe(accepted.dedupKey);
  });

  it('refuses legacy presses when the verification token is not set, or signed otherwise', () => {
    expect(onCard({ encryptKey: KEY }, legacy(legacyPress))).toBe(
      'unauthorized: legacy card callbacks are refused: they are signed with the verification token, and LARK_VERIFICATION_TOKEN is not set',
    );
    expect(onCard(BOTH, unsigned(legacyPress))).toMatch(/^unauthorized: missing/);
    expect(onCard(BOTH, event(legacyPress))).toBe('unauthorized: X-Lark-Signature must be one hex SHA1 digest');
  });

  it('answers the card URL’s challenge', () => {
    expect(onCard(BOTH, unsigned({ type: 'url_verification', challenge: 'c-2', token: TOKEN }))).toEqual({ kind: 'challenge', challenge: 'c-2' });
    expect(onCard(BOTH, unsigned({ type: 'url_verification', challenge: 'c-2', token: 'nope' }))).toBe('unauthorized: verification token does not match');
    expect(onCard(BOTH, { raw: Buffer.from('[1]'), h: NO_HEADERS })).toBe('unauthorized: event body must be a JSON object');
    expect(onCard(BOTH, { raw: Buffer.from('{'), h: NO_HEADERS })).toBe('bad_request: callback body is not valid JSON');
  });
});

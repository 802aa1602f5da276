import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NotAuthenticated } from '../src/errors.js';
import {
  assertVerificationToken,
  CLOCK_SKEW_MS,
  EVENT_WINDOW_MS,
  eventIdOf,
  openEnvelope,
  SEEN_EVENT_RETENTION_MS,
  verifyLarkSignature,
  verifyLegacyCardSignature,
  type SignatureHeaders,
} from '../src/lark/event-security.js';
import { larkEncrypt } from './lark-emulator/event-sender.js';

/**
 * The pure verifiers of src/lark/event-security.ts, with exact inputs: every header rule, both
 * edges of the time window to the second, and digests that differ in one byte.
 */
const KEY = 'unit-encrypt-key';
const TOKEN = 'unit-verification-token';
const NOW = Date.parse('2026-11-20T10:00:00Z');
const NOW_SEC = NOW / 1000;
const RAW = Buffer.from('{"schema":"2.0","header":{"event_id":"e-1"}}');

// Lark's documented schemes, computed here independently of the code under test.
const sha256 = (ts: string, nonce: string, key: string, raw: Buffer) => createHash('sha256').update(ts + nonce + key).update(raw).digest('hex');
const sha1 = (ts: string, nonce: string, token: string, raw: Buffer) => createHash('sha1').update(ts + nonce + token).update(raw).digest('hex');

const signed = (tsSec: number, nonce = 'n-1', raw = RAW): SignatureHeaders => ({ timestamp: String(tsSec), nonce, signature: sha256(String(tsSec), nonce, KEY, raw) });

/** The message of the NotAuthenticated thrown, or "ok". */
function refusal(f: () => void): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(NotAuthenticated);
    return (err as Error).message;
  }
}
const verify = (h: SignatureHeaders, raw = RAW, now = NOW) => refusal(() => verifyLarkSignature(KEY, h, raw, now));

describe('the time constants', () => {
  it('are 12 h back, 5 min ahead, and seen ids outlive both', () => {
    expect(EVENT_WINDOW_MS).toBe(12 * 3_600_000);
    expect(CLOCK_SKEW_MS).toBe(5 * 60_000);
    expect(SEEN_EVENT_RETENTION_MS).toBe(12 * 3_600_000 + 5 * 60_000);
  });
});

describe('verifyLarkSignature (SHA-256 over timestamp + nonce + encrypt key + raw bytes)', () => {
  it('accepts the documented signature, in lower or upper case', () => {
    const h = signed(NOW_SEC);
    expect(verify(h)).toBe('ok');
    expect(verify({ ...h, signature: h.signature.toUpperCase() })).toBe('ok');
  });

  it('refuses each header missing or empty, naming the three headers', () => {
    const h = signed(NOW_SEC);
    const missing = 'missing X-Lark-Signature / X-Lark-Request-Timestamp / X-Lark-Request-Nonce';
    for (const name of ['timestamp', 'nonce', 'signature'] as const) expect(verify({ ...h, [name]: '' }), name).toBe(missing);
  });

  it('takes the timestamp only as 1 to 12 decimal digits', () => {
    const wrong = 'X-Lark-Request-Timestamp must be one whole number of seconds';
    for (const ts of [`${NOW_SEC}.0`, `-${NOW_SEC}`, `${NOW_SEC}, ${NOW_SEC}`, `x${NOW_SEC}`, `${NOW_SEC}x`, ` ${NOW_SEC}`, '1'.repeat(13), '1e9', '0x6a']) {
      const h = { ...signed(NOW_SEC), timestamp: ts };
      expect(verify({ ...h, signature: sha256(ts, h.nonce, KEY, RAW) }), ts).toBe(wrong);
    }
    // Twelve digits is a number, then judged by the window; one digit is too.
    expect(verify(signed(999_999_999_999))).toMatch(/outside the window/);
    expect(verify(signed(7))).toMatch(/outside the window/);
  });

  it('takes the signature only as one 64-digit hex string', () => {
    const good = signed(NOW_SEC).signature;
    const wrong = 'X-Lark-Signature must be one hex SHA256 digest';
    for (const sig of [good.slice(0, 63), `${good}0`, `g${good.slice(1)}`, `z${good}`, `${good}z`, `${good}, ${good}`, sha1(String(NOW_SEC), 'n-1', KEY, RAW)]) {
      expect(verify({ ...signed(NOW_SEC), signature: sig }), sig).toBe(wrong);
    }
  });

  it('accepts a timestamp exactly 12 h old or exactly 5 min ahead, and refuses one second beyond either edge', () => {
    const outside = 'request timestamp is outside the window (12 h back, 5 min ahead)';
    const back = NOW_SEC - EVENT_WINDOW_MS / 1000;
    const ahead = NOW_SEC + CLOCK_SKEW_MS / 1000;
    expect(verify(signed(back))).toBe('ok');
    expect(verify(signed(back - 1))).toBe(outside);
    expect(verify(signed(back + 1))).toBe('ok');
    expect(verify(signed(ahead))).toBe('ok');
    expect(verify(signed(ahead + 1))).toBe(outside);
    expect(verify(signed(ahead - 1))).toBe('ok');
  });

  it('refuses a signature of the right form that is wrong in one byte, or over other bytes, nonce, key or time', () => {
    const bad = 'request signature does not verify';
    const h = signed(NOW_SEC);
    const last = h.signature.at(-1) === '0' ? '1' : '0';
    expect(verify({ ...h, signature: h.signature.slice(0, 63) + last })).toBe(bad);
    expect(verify({ ...h, signature: (h.signature[0] === 'a' ? 'b' : 'a') + h.signature.slice(1) })).toBe(bad);
    expect(verify(h, Buffer.from(`${RAW.toString()} `))).toBe(bad);
    expect(verify({ ...h, nonce: 'n-2' })).toBe(bad);
    expect(verify({ ...h, timestamp: String(NOW_SEC - 1) })).toBe(bad);
    expect(verify({ ...h, signature: sha256(h.timestamp, h.nonce, 'other-key', RAW) })).toBe(bad);
    // SHA-256 with the verification token is not the event scheme.
    expect(verify({ ...h, signature: sha256(h.timestamp, h.nonce, TOKEN, RAW) })).toBe(bad);
  });
});

describe('verifyLegacyCardSignature (SHA-1 over timestamp + nonce + verification token + raw bytes)', () => {
  const legacy = (h: SignatureHeaders, raw = RAW, now = NOW) => refusal(() => verifyLegacyCardSignature(TOKEN, h, raw, now));
  const ts = String(NOW_SEC);

  it('accepts the SDKs’ legacy signature and refuses one byte off, another token, or the SHA-256 scheme', () => {
    const sig = sha1(ts, 'n', TOKEN, RAW);
    expect(legacy({ timestamp: ts, nonce: 'n', signature: sig })).toBe('ok');
    expect(legacy({ timestamp: ts, nonce: 'n', signature: sig.toUpperCase() })).toBe('ok');
    expect(legacy({ timestamp: ts, nonce: 'n', signature: sig.slice(0, 39) + (sig.at(-1) === 'f' ? 'e' : 'f') })).toBe('request signature does not verify');
    expect(legacy({ timestamp: ts, nonce: 'n', signature: sha1(ts, 'n', 'other-token', RAW) })).toBe('request signature does not verify');
    expect(legacy({ timestamp: ts, nonce: 'n', signature: sha256(ts, 'n', TOKEN, RAW) })).toBe('X-Lark-Signature must be one hex SHA1 digest');
    expect(legacy({ timestamp: ts, nonce: 'n', signature: `x${sig}` })).toBe('X-Lark-Signature must be one hex SHA1 digest');
    expect(legacy({ timestamp: ts, nonce: 'n', signature: `${sig}x` })).toBe('X-Lark-Signature must be one hex SHA1 digest');
  });

  it('holds legacy callbacks to the same headers and window', () => {
    const at = (sec: number) => ({ timestamp: String(sec), nonce: 'n', signature: sha1(String(sec), 'n', TOKEN, RAW) });
    expect(legacy({ timestamp: '', nonce: 'n', signature: sha1('', 'n', TOKEN, RAW) })).toMatch(/^missing/);
    expect(legacy(at(NOW_SEC - EVENT_WINDOW_MS / 1000))).toBe('ok');
    expect(legacy(at(NOW_SEC - EVENT_WINDOW_MS / 1000 - 1))).toMatch(/outside the window/);
    expect(legacy(at(NOW_SEC + CLOCK_SKEW_MS / 1000 + 1))).toMatch(/outside the window/);
  });
});

describe('openEnvelope', () => {
  /** key null: no LARK_ENCRYPT_KEY configured. */
  const open = (body: unknown, key: string | null = KEY) => {
    try {
      return openEnvelope(body, key ?? undefined);
    } catch (err) {
      expect(err).toBeInstanceOf(NotAuthenticated);
      return (err as Error).message;
    }
  };

  it('passes a plain object through as it is', () => {
    const body = { type: 'event_callback', uuid: 'u-1' };
    expect(open(body)).toBe(body);
    expect(open(body, null)).toBe(body);
  });

  it('refuses anything but a JSON object', () => {
    for (const body of [null, undefined, 0, 1, '', 'text', true, [], [{ encrypt: 'x' }]]) expect(open(body), JSON.stringify(body)).toBe('event body must be a JSON object');
  });

  it('opens {"encrypt"} with the key, and refuses it without the key, with another key, or not a string', () => {
    const inner = { schema: '2.0', header: { event_id: 'e-9' } };
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), KEY) })).toEqual(inner);
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), KEY) }, null)).toBe('encrypted event but LARK_ENCRYPT_KEY is not set');
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), KEY) }, '')).toBe('encrypted event but LARK_ENCRYPT_KEY is not set');
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), 'another-key') })).toBe('event could not be decrypted with LARK_ENCRYPT_KEY');
    expect(open({ encrypt: 'not base64 ciphertext' })).toBe('event could not be decrypted with LARK_ENCRYPT_KEY');
    expect(open({ encrypt: 42 })).toMatch(/^"encrypt" must be/);
    expect(open({ encrypt: null })).toMatch(/^"encrypt" must be/);
  });

  it('opens with whichever key it is given: the cipher kept for one key is not used for another', () => {
    const inner = { header: { event_id: 'e-rotated' } };
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), KEY) })).toEqual(inner);
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), 'rotated-key') }, 'rotated-key')).toEqual(inner);
    expect(open({ encrypt: larkEncrypt(JSON.stringify(inner), 'rotated-key') })).toBe('event could not be decrypted with LARK_ENCRYPT_KEY');
  });

  it('refuses an envelope whose content is not a JSON object', () => {
    for (const inner of ['null', '"text"', '[1,2]', '3', 'not json']) {
      const expected = inner === 'not json' ? 'event could not be decrypted with LARK_ENCRYPT_KEY' : 'decrypted event is not a JSON object';
      expect(open({ encrypt: larkEncrypt(inner, KEY) }), inner).toBe(expected);
    }
  });
});

describe('assertVerificationToken', () => {
  const check = (event: Record<string, unknown>, expected: string | undefined = TOKEN) => refusal(() => assertVerificationToken(event, expected));
  const wrong = 'verification token does not match';

  it('checks nothing when no token is configured', () => {
    expect(refusal(() => assertVerificationToken({ token: 'anything' }, undefined))).toBe('ok');
    expect(refusal(() => assertVerificationToken({}, ''))).toBe('ok');
  });

  it('reads v2 header.token and v1 token, compared exactly', () => {
    expect(check({ header: { token: TOKEN } })).toBe('ok');
    expect(check({ token: TOKEN })).toBe('ok');
    expect(check({ header: { token: `${TOKEN}x` } })).toBe(wrong);
    expect(check({ token: TOKEN.slice(0, -1) })).toBe(wrong);
    expect(check({ token: TOKEN.toUpperCase() })).toBe(wrong);
    expect(check({ token: '' })).toBe(wrong);
  });

  it('takes the header’s token when there is a header: a right token beside it does not count', () => {
    expect(check({ header: {}, token: TOKEN })).toBe(wrong);
    expect(check({ header: { token: 'forged' }, token: TOKEN })).toBe(wrong);
  });

  it('reads the v1 token when "header" is not an object, and refuses a token that is not a string', () => {
    expect(check({ header: 'text', token: TOKEN })).toBe('ok');
    expect(check({ header: null, token: TOKEN })).toBe('ok');
    expect(check({ token: 123 })).toBe(wrong);
    expect(check({ token: [TOKEN] })).toBe(wrong);
    expect(check({})).toBe(wrong);
  });
});

describe('eventIdOf', () => {
  it('is v2 header.event_id, else v1 uuid, and only a non-empty string', () => {
    expect(eventIdOf({ header: { event_id: 'e-1' }, uuid: 'u-1' })).toBe('e-1');
    expect(eventIdOf({ uuid: 'u-1' })).toBe('u-1');
    expect(eventIdOf({ header: {}, uuid: 'u-1' })).toBeUndefined();
    expect(eventIdOf({ header: 'text', uuid: 'u-1' })).toBe('u-1');
    expect(eventIdOf({ header: null, uuid: 'u-1' })).toBe('u-1');
    expect(eventIdOf({ uuid: '' })).toBeUndefined();
    expect(eventIdOf({ uuid: 7 })).toBeUndefined();
    expect(eventIdOf({ header: { event_id: ['e-1'] } })).toBeUndefined();
    expect(eventIdOf({})).toBeUndefined();
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { describeFeatures, loadConfig } from '../src/config.js';
import { Unavailable } from '../src/errors.js';
import { EVENT_WINDOW_MS } from '../src/lark/event-security.js';
import { cardActionEvent, legacyCardAction, postSigned, signedRequest, type SendOptions } from './lark-emulator/event-sender.js';
import { startIntake as start, type Intake } from './helpers/lark-intake-app.js';

let current: Intake | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});
const startIntake = async (secrets: { encryptKey?: string; verificationToken?: string }) => (current = await start(secrets));

const KEY = 'cards-encrypt-key';
const TOKEN = 'cards-verification-token';
const APP = 'cli_a1b2c3d4e5f6bbbb';
const RETRY = { action: 'retry', runId: 'R', stage: 'execute' };
const v2 = (operator = 'ou_boss', token = TOKEN) => cardActionEvent({ token, appId: APP, operatorOpenId: operator, messageId: 'om_1', chatId: 'oc_1', value: RETRY });
const legacy = (operator = 'ou_boss') => legacyCardAction({ operatorOpenId: operator, messageId: 'om_1', value: RETRY });
const press = (s: Intake, payload: unknown, o: SendOptions) => postSigned(`${s.url}/api/v1/lark/card`, signedRequest(payload, o));
const toast = (operator: string) => ({ toast: { type: 'success', content: `pressed by ${operator}` } });

describe('legacy card callbacks (SHA-1 with the verification token)', () => {
  it('verifies the raw bytes, hands the press on once, and drops a replay', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    const req = signedRequest(legacy('ou_boss'), { legacyToken: TOKEN });
    expect(await postSigned(`${s.url}/api/v1/lark/card`, req)).toEqual({ status: 200, body: toast('ou_boss') });
    expect(s.presses).toEqual([{ value: RETRY, operatorOpenId: 'ou_boss', messageId: 'om_1' }]);
    // The same request again (a replay inside the window): answered, nothing done; also with the
    // signature spelled in upper case, which is the same signature.
    expect(await postSigned(`${s.url}/api/v1/lark/card`, req)).toEqual({ status: 200, body: {} });
    const shouted = { raw: req.raw, headers: req.headers.map(([k, v]): [string, string] => [k, k === 'x-lark-signature' ? v.toUpperCase() : v]) };
    expect(await postSigned(`${s.url}/api/v1/lark/card`, shouted)).toEqual({ status: 200, body: {} });
    s.clock.advance(EVENT_WINDOW_MS + 60_000);
    expect((await postSigned(`${s.url}/api/v1/lark/card`, req)).status).toBe(401);
    expect(s.presses).toHaveLength(1);
  });

  it('accepts an encrypted legacy press signed over the encrypted bytes, and refuses it with another key', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    const req = signedRequest(legacy('ou_boss'), { encryptKey: KEY, legacyToken: TOKEN });
    expect(req.raw).toMatch(/^\{"encrypt":/);
    expect(await postSigned(`${s.url}/api/v1/lark/card`, req)).toEqual({ status: 200, body: toast('ou_boss') });
    expect(await postSigned(`${s.url}/api/v1/lark/card`, req)).toEqual({ status: 200, body: {} });
    expect((await press(s, legacy('ou_boss'), { encryptKey: 'another-key', legacyToken: TOKEN })).status).toBe(401);
    // Encrypted 2.0 content is held to the 2.0 rule (SHA-256 with the key), not the legacy one.
    expect((await press(s, { ...v2('ou_boss') }, { encryptKey: KEY, legacyToken: TOKEN })).status).toBe(401);
    expect(s.presses).toHaveLength(1);
  });

  it('hands the SDK headers it sets itself, whatever "headers" the signed body carries', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    // The SDK destructures data.headers: a body's own value (here null) must never reach it.
    const odd = await press(s, { ...legacy('ou_boss'), headers: null }, { legacyToken: TOKEN });
    expect(odd).toEqual({ status: 200, body: toast('ou_boss') });
    expect(s.presses).toHaveLength(1);
  });

  it('refuses a forged presser, an unsigned body with its own "headers", and a body signed with the wrong token', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    const genuine = signedRequest(legacy('ou_intern'), { legacyToken: TOKEN });
    // The signature of a genuine press, over a body whose presser was changed.
    const forged = await postSigned(`${s.url}/api/v1/lark/card`, { raw: genuine.raw.replace('ou_intern', 'ou_boss'), headers: genuine.headers });
    expect(forged.status).toBe(401);
    expect(forged.body.error.message).toBe('request signature does not verify');
    // The SDK reads data.headers: a client that brings its own gets nowhere.
    const unsigned = await press(s, { ...legacy('ou_boss'), headers: {} }, { noSignature: true });
    expect(unsigned.status).toBe(401);
    expect((await press(s, legacy('ou_boss'), { legacyToken: 'not-the-token' })).status).toBe(401);
    // SHA-256 with the encrypt key is not how a legacy callback is signed.
    expect((await press(s, legacy('ou_boss'), { encryptKey: KEY, plain: true })).status).toBe(401);
    expect(s.presses).toHaveLength(0);
  });

  it('with only LARK_ENCRYPT_KEY set, refuses every legacy callback and says why', async () => {
    const s = await startIntake({ encryptKey: KEY });
    const unsigned = await press(s, { ...legacy('ou_boss'), headers: {} }, { noSignature: true });
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.error.message).toMatch(/legacy card callbacks are refused: .*LARK_VERIFICATION_TOKEN is not set/);
    expect((await press(s, legacy('ou_boss'), { legacyToken: TOKEN })).status).toBe(401);
    expect(s.presses).toHaveLength(0);
    // 2.0 callbacks are still verified (by the encrypt key's signature) and accepted.
    expect((await press(s, v2('ou_boss', 'any'), { encryptKey: KEY })).body).toEqual(toast('ou_boss'));
  });

  it('the start-up banner says which card callbacks are refused', () => {
    const base = { LARK_APP_ID: 'cli_0123456789abcdef', LARK_APP_SECRET: 's' };
    expect(describeFeatures(loadConfig({ ...base, LARK_ENCRYPT_KEY: 'k' })).join('\n')).toMatch(
      /Lark card callbacks: 2\.0 only — legacy card callbacks are refused: set LARK_VERIFICATION_TOKEN to accept them/,
    );
    expect(describeFeatures(loadConfig({ ...base, LARK_ENCRYPT_KEY: 'k', LARK_VERIFICATION_TOKEN: 't' })).join('\n')).toMatch(/Lark card callbacks: 2\.0 and legacy/);
    expect(describeFeatures(loadConfig({ ...base, LARK_VERIFICATION_TOKEN: 't' })).join('\n')).toMatch(/LARK_ENCRYPT_KEY not set: callbacks are checked by the verification token only/);
  });
});

describe('2.0 card callbacks (verified as events)', () => {
  it('accepts a plain or encrypted press signed with the encrypt key, once per event id', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    const encrypted = signedRequest(v2('ou_boss'), { encryptKey: KEY });
    expect(await postSigned(`${s.url}/api/v1/lark/card`, encrypted)).toEqual({ status: 200, body: toast('ou_boss') });
    expect(await postSigned(`${s.url}/api/v1/lark/card`, encrypted)).toEqual({ status: 200, body: {} });
    expect((await press(s, v2('ou_second'), { encryptKey: KEY, plain: true })).body).toEqual(toast('ou_second'));
    expect(s.presses.map((p) => p.operatorOpenId)).toEqual(['ou_boss', 'ou_second']);
  });

  it('is answered with its toast when the console sends card callbacks to the event URL too', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    const req = signedRequest(v2('ou_boss'), { encryptKey: KEY });
    expect(await postSigned(`${s.url}/api/v1/lark/callback`, req)).toEqual({ status: 200, body: toast('ou_boss') });
    // One event id, one press, whichever URL it reaches.
    expect(await postSigned(`${s.url}/api/v1/lark/card`, req)).toEqual({ status: 200, body: {} });
    expect(s.presses).toHaveLength(1);
  });

  it('refuses an unsigned or forged plain press, a wrong key, a wrong token and other event types', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    expect((await press(s, v2('ou_boss'), { noSignature: true })).status).toBe(401);
    expect((await press(s, v2('ou_boss'), { encryptKey: KEY, plain: true, signature: 'ab'.repeat(32) })).status).toBe(401);
    expect((await press(s, v2('ou_boss'), { encryptKey: 'another-key' })).status).toBe(401);
    expect((await press(s, v2('ou_boss', 'wrong-token'), { encryptKey: KEY })).body.error.message).toBe('verification token does not match');
    const other = { ...v2('ou_boss'), header: { ...v2().header, event_type: 'app_ticket' } };
    expect((await press(s, other, { encryptKey: KEY })).status).toBe(400);
    const noId = { ...v2('ou_boss'), header: { ...v2().header, event_id: undefined } };
    expect((await press(s, noId, { encryptKey: KEY })).status).toBe(400);
    expect(s.presses).toHaveLength(0);
  });

  it('with only LARK_VERIFICATION_TOKEN set, checks the token in the body', async () => {
    const s = await startIntake({ verificationToken: TOKEN });
    expect((await press(s, v2('ou_boss', 'wrong'), { noSignature: true })).status).toBe(401);
    expect((await press(s, v2('ou_boss'), { noSignature: true })).body).toEqual(toast('ou_boss'));
    // The 2.0 token is the one in the header: a right token elsewhere in the body does not count.
    expect((await press(s, { ...v2('ou_boss', 'wrong'), token: TOKEN }, { noSignature: true })).status).toBe(401);
    // An encrypted body cannot be opened without the key.
    const sealed = await press(s, v2('ou_boss'), { encryptKey: KEY });
    expect(sealed.status).toBe(401);
    expect(sealed.body.error.message).toBe('encrypted event but LARK_ENCRYPT_KEY is not set');
    expect(s.presses).toHaveLength(1);
  });

  it('runs one press for two concurrent deliveries of one callback', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    for (const req of [signedRequest(v2(), { encryptKey: KEY }), signedRequest(legacy(), { legacyToken: TOKEN })]) {
      const before = s.presses.length;
      // The first press waits until the duplicate was answered, or a second press runs.
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      s.pressHook = async () => {
        if (s.presses.length - before >= 2) open();
        await gate;
      };
      const posts = [postSigned(`${s.url}/api/v1/lark/card`, req), postSigned(`${s.url}/api/v1/lark/card`, req)];
      await Promise.race(posts);
      open();
      const answers = (await Promise.all(posts)).map((r) => r.body);
      expect(answers).toContainEqual(toast('ou_boss'));
      expect(answers).toContainEqual({});
      expect(s.presses.length - before).toBe(1);
    }
  });

  it('gives the claim back when the press fails, so pressing again is handled', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    s.pressHook = async () => {
      throw new Unavailable('store is read-only');
    };
    const reqs = [signedRequest(v2(), { encryptKey: KEY }), signedRequest(legacy(), { legacyToken: TOKEN })];
    for (const req of reqs) {
      const failed = await postSigned(`${s.url}/api/v1/lark/card`, req);
      expect(failed.status).toBe(503);
      expect(failed.body.error.message).toBe('store is read-only');
    }
    s.pressHook = undefined;
    // The very same requests again (the presser presses again; Lark resends): handled now.
    for (const req of reqs) expect((await postSigned(`${s.url}/api/v1/lark/card`, req)).body).toEqual(toast('ou_boss'));
    expect(s.presses).toHaveLength(4);
  });

  it('answers the url_verification challenge of the card URL', async () => {
    const s = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
    expect(await press(s, { challenge: 'c-1', token: TOKEN, type: 'url_verification' }, { noSignature: true })).toEqual({ status: 200, body: { challenge: 'c-1' } });
    expect(await press(s, { challenge: 'c-2', token: TOKEN, type: 'url_verification' }, { encryptKey: KEY, noSignature: true })).toEqual({ status: 200, body: { challenge: 'c-2' } });
    expect((await press(s, { challenge: 'c-3', token: 'nope', type: 'url_verification' }, { noSignature: true })).status).toBe(401);
  });
});

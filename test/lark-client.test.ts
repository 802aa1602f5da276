import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { createLarkClient, forgetTenantToken, type LarkClient } from '../src/lark/client.js';
import { createLarkCall, type LarkCallOptions } from '../src/lark/lark-call.js';
import { LarkApiError } from '../src/lark/lark-error.js';
import { createMessenger } from '../src/lark/messages.js';
import { LarkRateLimiter } from '../src/lark/rate-limiter.js';
import { silentLogger } from '../src/log.js';
import { larkError, ok, startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';

const APP = 'cli_c0ffee0000000001';
const SECRET = 'client-test-secret';
const CHAT = 'oc_client_test';
const SEND = 'POST /open-apis/im/v1/messages';

let lark: LarkEmulator;
afterEach(async () => {
  await lark?.close();
});

/** Real time for the clock's reading; sleeps recorded and skipped, so backoffs are seen, not waited. */
function recordingClock(): Clock & { sleeps: number[] } {
  const sleeps: number[] = [];
  return { sleeps, now: () => Date.now(), sleep: async (ms) => void sleeps.push(ms) };
}

function messengerFor(client: LarkClient, clock: Clock, o: Partial<LarkCallOptions> = {}) {
  const renewToken = () => forgetTenantToken(client);
  return createMessenger(client, createLarkCall({ limiter: new LarkRateLimiter(), clock, logger: silentLogger(), random: () => 0.5, renewToken, ...o }));
}

const client = (timeoutMs = 5_000) => createLarkClient({ appId: APP, appSecret: SECRET, domain: lark.url, timeoutMs, logger: silentLogger() });
const tokenRequests = () => lark.callsTo('POST', '/open-apis/auth/v3/tenant_access_token/internal').length;
const sends = () => lark.callsTo('POST', '/open-apis/im/v1/messages').length;

describe('retries and their backoff', () => {
  it('waits the computed backoff between tries: 375, 750, 1500 ms from a 500 ms base', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    const clock = recordingClock();
    lark.failNext(SEND, larkError(500, 1, 'internal error'), 3);
    const sent = await messengerFor(client(), clock, { attempts: 4, retryBaseMs: 500 }).sendToChat(CHAT, 'text', { text: 'hi' });
    expect(sent.messageId).toMatch(/^om_/);
    // Equal jitter with the random source pinned at 0.5: ceiling/2 + 0.5·ceiling/2, ceiling doubling.
    expect(clock.sleeps).toEqual([375, 750, 1500]);
    expect(sends()).toBe(4);
  });

  it('waits what Lark asks in x-ogw-ratelimit-reset, and gives up after the last try', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    const clock = recordingClock();
    lark.failNext(SEND, larkError(429, 99991400, 'request trigger frequency limit', { 'x-ogw-ratelimit-reset': '3' }), 2);
    const messenger = messengerFor(client(), clock, { attempts: 2 });
    const err = await messenger.sendToChat(CHAT, 'text', { text: 'hi' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarkApiError);
    expect((err as LarkApiError).code).toBe(99991400);
    expect(clock.sleeps).toEqual([3000]);
  });

  it('does not retry a missing scope (99991672): retrying cannot grant it', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    const clock = recordingClock();
    lark.failNext(SEND, larkError(400, 99991672, 'Access denied. One of the following scopes is required: [im:message:send_as_bot]'), 1);
    const err = (await messengerFor(client(), clock).sendToChat(CHAT, 'text', { text: 'hi' }).catch((e: unknown) => e)) as LarkApiError;
    expect(err).toMatchObject({ code: 99991672, retryable: false });
    expect(clock.sleeps).toEqual([]);
    expect(sends()).toBe(1);
  });
});

describe('a refused tenant token', () => {
  it('is renewed once and the call tried again at once, when Lark invalidates or expires it', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    const clock = recordingClock();
    const messenger = messengerFor(client(), clock);
    await messenger.sendToChat(CHAT, 'text', { text: 'first' });
    expect(tokenRequests()).toBe(1);
    for (const [i, refuse] of [() => lark.invalidateTokens(), () => lark.expireTokens()].entries()) {
      refuse();
      await messenger.sendToChat(CHAT, 'text', { text: `after ${i}` });
      expect(tokenRequests()).toBe(2 + i);
    }
    expect(clock.sleeps).toEqual([]); // a new token, not a backoff
    expect([...lark.messages.values()].map((m) => JSON.parse(m.content).text)).toEqual(['first', 'after 0', 'after 1']);
  });

  it('does not use up a try: after the renewal the call still has all its retries', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    const clock = recordingClock();
    const messenger = messengerFor(client(), clock, { attempts: 2 });
    lark.failNext(SEND, larkError(400, 99991663, 'Invalid access token for authorization.'), 1);
    lark.failNext(SEND, larkError(500, 1, 'internal error'), 1);
    await messenger.sendToChat(CHAT, 'text', { text: 'through' });
    expect(clock.sleeps).toEqual([375]);
    expect(sends()).toBe(3);
  });

  it('is renewed only once per call: a token refused again is an error', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    const messenger = messengerFor(client(), recordingClock());
    await messenger.sendToChat(CHAT, 'text', { text: 'warm the token cache' });
    for (const code of [99991663, 99991661]) {
      const before = { tokens: tokenRequests(), sends: sends() };
      lark.failNext(SEND, larkError(400, code, 'Invalid access token for authorization.'), 2);
      const err = (await messenger.sendToChat(CHAT, 'text', { text: 'x' }).catch((e: unknown) => e)) as LarkApiError;
      expect(err.code).toBe(code);
      expect(tokenRequests() - before.tokens).toBe(1);
      expect(sends() - before.sends).toBe(2);
    }
  });
});

describe('the SDK client', () => {
  it('has its own timeout: another client in the process does not change it', async () => {
    lark = await startLarkEmulator({ apps: { [APP]: SECRET } });
    lark.route('POST', '/open-apis/im/v1/messages', async () => {
      await new Promise((r) => setTimeout(r, 400));
      return ok({ message_id: 'om_slow', msg_type: 'text', create_time: '0', update_time: '0', chat_id: CHAT });
    });
    const hasty = messengerFor(client(100), recordingClock(), { attempts: 1 });
    const patient = messengerFor(client(5_000), recordingClock(), { attempts: 1 });
    const [fast, slow] = await Promise.allSettled([hasty.sendToChat(CHAT, 'text', { text: 'a' }), patient.sendToChat(CHAT, 'text', { text: 'b' })]);
    expect(fast.status).toBe('rejected');
    expect(((fast as PromiseRejectedResult).reason as LarkApiError).larkMsg).toMatch(/timeout/i);
    expect(slow).toMatchObject({ status: 'fulfilled', value: { messageId: 'om_slow' } });
  });
});

import { describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { BUSINESS_BACKOFF, callBusiness } from '../src/flows/business-call.js';
import { stageSchema } from '../src/flows/flow-schema.js';
import type { UpstreamClient, UpstreamOutcome } from '../src/upstream/client.js';

/** `retries` counts EXTRA tries; between tries the call waits base·2^(n-1) with equal jitter, capped. */
function recorder(answer: (n: number) => UpstreamOutcome) {
  const events: string[] = [];
  let calls = 0;
  const upstream: UpstreamClient = {
    async postJson() {
      events.push('call');
      return answer(++calls);
    },
    close: async () => undefined,
  };
  const clock: Clock = {
    now: () => 1_700_000_000_000,
    async sleep(ms) {
      events.push(`sleep ${ms}`);
    },
  };
  return { events, upstream, clock };
}

const unavailable: UpstreamOutcome = { kind: 'failure', retryable: true, httpStatus: 503, response: '', error: 'upstream answered HTTP 503', durationMs: 1 };
const request = { ticket_id: 'T-1', flow: 'f', stage: 'check' as const, fields: {}, applicant: {} };
const spec = (retries: number) => stageSchema.parse({ url: 'https://biz.example.test/check', retries });

async function delaysFor(retries: number, random: () => number): Promise<string[]> {
  const r = recorder(() => unavailable);
  const outcome = await callBusiness({ upstream: r.upstream, clock: r.clock, random }, spec(retries), 's'.repeat(20), request, 'k');
  expect(outcome).toMatchObject({ kind: 'unreachable', attempts: retries + 1 });
  return r.events;
}

describe('business-call backoff', () => {
  it('waits between tries, doubling, with the jitter inside [ceiling/2, ceiling]', async () => {
    expect(BUSINESS_BACKOFF).toEqual({ baseMs: 200, capMs: 5_000 });
    expect(await delaysFor(3, () => 0)).toEqual(['call', 'sleep 100', 'call', 'sleep 200', 'call', 'sleep 400', 'call']);
    expect(await delaysFor(3, () => 0.5)).toEqual(['call', 'sleep 150', 'call', 'sleep 300', 'call', 'sleep 600', 'call']);
    expect(await delaysFor(3, () => 1)).toEqual(['call', 'sleep 200', 'call', 'sleep 400', 'call', 'sleep 800', 'call']);
  });

  it('caps the wait at 5 s', async () => {
    const sleeps = (await delaysFor(8, () => 1)).filter((e) => e.startsWith('sleep'));
    expect(sleeps).toEqual(['sleep 200', 'sleep 400', 'sleep 800', 'sleep 1600', 'sleep 3200', 'sleep 5000', 'sleep 5000', 'sleep 5000']);
  });

  it('retries counts extra tries: 0 is one call and no wait; the default 2 is three calls', async () => {
    expect(await delaysFor(0, () => 0.5)).toEqual(['call']);
    expect(stageSchema.parse({ url: 'https://biz.example.test/x' }).retries).toBe(2);
    expect((await delaysFor(2, () => 0.5)).filter((e) => e === 'call')).toHaveLength(3);
  });

  it('does not retry a 4xx, and stops retrying once an answer comes', async () => {
    const refused = recorder(() => ({ kind: 'failure', retryable: false, httpStatus: 403, response: 'no', error: 'upstream answered HTTP 403', durationMs: 1 }));
    await callBusiness({ upstream: refused.upstream, clock: refused.clock, random: () => 0.5 }, spec(3), 's'.repeat(20), request, 'k');
    expect(refused.events).toEqual(['call']);
    const second = recorder((n) => (n < 2 ? unavailable : { kind: 'success', httpStatus: 200, response: '{"result":true,"msg":"ok"}', durationMs: 1 }));
    const outcome = await callBusiness({ upstream: second.upstream, clock: second.clock, random: () => 0.5 }, spec(3), 's'.repeat(20), request, 'k');
    expect(outcome).toMatchObject({ kind: 'result', result: { result: true, msg: 'ok' } });
    expect(second.events).toEqual(['call', 'sleep 150', 'call']);
  });
});

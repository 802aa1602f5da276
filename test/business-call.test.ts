import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import {
  bodySignatureMatches,
  businessIdempotencyKey,
  businessRequest,
  callBusiness,
  CALLBACK_WINDOW_SEC,
  callbackTimestampProblem,
  signBody,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  type BusinessRequest,
} from '../src/flows/business-call.js';
import { stageSchema, type ApprovalFlow } from '../src/flows/flow-schema.js';
import type { UpstreamClient, UpstreamOutcome } from '../src/upstream/client.js';

/**
 * The business API contract as functions: the HMAC we sign with and check callbacks by, the
 * callback time window to the second, and what a call answers for every kind of upstream outcome.
 */
const SECRET = 'business-secret-0123456789';
const NOW = 1_700_000_000_999; // not a whole second: the header carries whole seconds
const NOW_SEC = 1_700_000_000;
const hmac = (secret: string, text: string) => createHmac('sha256', secret).update(text).digest('hex');

describe('signBody and bodySignatureMatches (hex HMAC-SHA256 of "<timestamp>.<raw body>")', () => {
  it('signs the documented string, the same for text and bytes', () => {
    const raw = '{"ticket_id":"T-1","result":true}';
    expect(signBody(SECRET, '1700000000', raw)).toBe(hmac(SECRET, `1700000000.${raw}`));
    expect(signBody(SECRET, '1700000000', Buffer.from(raw))).toBe(hmac(SECRET, `1700000000.${raw}`));
  });

  it('matches the right signature in either case, and nothing else', () => {
    const raw = Buffer.from('{"result":true}');
    const sig = hmac(SECRET, `1700000000.${raw.toString()}`);
    expect(bodySignatureMatches(SECRET, '1700000000', sig, raw)).toBe(true);
    expect(bodySignatureMatches(SECRET, '1700000000', sig.toUpperCase(), raw)).toBe(true);
    expect(bodySignatureMatches(SECRET, '1700000001', sig, raw)).toBe(false);
    expect(bodySignatureMatches(`${SECRET}x`, '1700000000', sig, raw)).toBe(false);
    expect(bodySignatureMatches(SECRET, '1700000000', sig, Buffer.from('{"result":false}'))).toBe(false);
    expect(bodySignatureMatches(SECRET, '1700000000', sig.slice(0, 63), raw)).toBe(false);
    // Without the "." the same bytes are another string.
    expect(bodySignatureMatches(SECRET, '1700000000', hmac(SECRET, `1700000000${raw.toString()}`), raw)).toBe(false);
  });
});

describe('callbackTimestampProblem', () => {
  const SIG = 'ab'.repeat(32);
  const problem = (ts: string | undefined, sig: string | undefined = SIG) => callbackTimestampProblem(ts, sig, NOW_SEC * 1000);
  const outside = 'callback timestamp is outside the 5 minute window';

  it('needs both headers', () => {
    const missing = 'missing x-bridge-timestamp or x-bridge-signature';
    expect(problem(undefined)).toBe(missing);
    expect(callbackTimestampProblem(String(NOW_SEC), undefined, NOW_SEC * 1000)).toBe(missing);
    expect(problem('', 'ab')).toBe(missing);
    expect(problem(String(NOW_SEC), '')).toBe(missing);
    expect(problem(String(NOW_SEC))).toBeUndefined();
  });

  it('takes the timestamp only as 1 to 12 decimal digits', () => {
    for (const ts of [`x${NOW_SEC}`, `${NOW_SEC}x`, `${NOW_SEC}.5`, ` ${NOW_SEC}`, `-${NOW_SEC}`, '1'.repeat(13), `${NOW_SEC}, ${NOW_SEC}`]) expect(problem(ts), ts).toBe(outside);
  });

  it('accepts exactly 300 s either way and refuses one second more', () => {
    expect(CALLBACK_WINDOW_SEC).toBe(300);
    expect(problem(String(NOW_SEC - 300))).toBeUndefined();
    expect(problem(String(NOW_SEC + 300))).toBeUndefined();
    expect(problem(String(NOW_SEC - 301))).toBe(outside);
    expect(problem(String(NOW_SEC + 301))).toBe(outside);
  });
});

/** An upstream that answers from a script and records each call; a clock that moves when slept. */
function scripted(answers: UpstreamOutcome[]) {
  const calls: Array<{ url: string; body: unknown; headers: Record<string, string>; timeoutMs: number; keepBytes?: number }> = [];
  const sleeps: number[] = [];
  let now = NOW;
  const upstream: UpstreamClient = {
    async postJson(url, body, headers, timeoutMs, keepBytes) {
      calls.push({ url, body, headers, timeoutMs, keepBytes });
      return answers[Math.min(calls.length, answers.length) - 1]!;
    },
    get: async () => {
      throw new Error('not used: business calls and options only POST');
    },
    close: async () => undefined,
  };
  const clock: Clock = {
    now: () => now,
    async sleep(ms) {
      sleeps.push(ms);
      now += ms;
    },
  };
  return { upstream, clock, calls, sleeps };
}

const request: BusinessRequest = { ticket_id: 'T-1', flow: 'admin-permission', stage: 'execute', fields: { account: 'alice' }, applicant: { user_id: 'u1' }, callback_url: 'https://bridge.example.test/cb' };
const spec = (o: Record<string, unknown> = {}) => stageSchema.parse({ url: 'https://biz.example.test/grant', timeoutMs: 1000, retries: 2, ...o });
const ok = (response: string): UpstreamOutcome => ({ kind: 'success', httpStatus: 200, response, durationMs: 1 });
const failed = (httpStatus: number | undefined, response = ''): UpstreamOutcome => ({
  kind: 'failure',
  retryable: false,
  httpStatus,
  response,
  error: httpStatus ? `upstream answered HTTP ${httpStatus}` : 'connect ECONNREFUSED',
  durationMs: 1,
});
const timeout: UpstreamOutcome = { kind: 'timeout', error: 'read timeout', durationMs: 1000 };
const call = async (answers: UpstreamOutcome[], o: Record<string, unknown> = {}) => {
  const s = scripted(answers);
  const outcome = await callBusiness({ upstream: s.upstream, clock: s.clock, random: () => 1 }, spec(o), SECRET, request, 'idem-key');
  return { outcome, ...s };
};

describe('callBusiness: what is sent', () => {
  it('POSTs the request as JSON, signed at whole seconds, with the idempotency key, the timeout and a 64 KiB answer cap', async () => {
    const { calls } = await call([ok('{"result":true}')]);
    expect(calls).toHaveLength(1);
    const c = calls[0]!;
    expect(c.url).toBe('https://biz.example.test/grant');
    expect(c.body).toBe(JSON.stringify(request));
    expect(c.headers).toEqual({ [TIMESTAMP_HEADER]: String(NOW_SEC), [SIGNATURE_HEADER]: hmac(SECRET, `${NOW_SEC}.${JSON.stringify(request)}`), 'idempotency-key': 'idem-key' });
    expect(c.timeoutMs).toBe(1000);
    expect(c.keepBytes).toBe(64 * 1024);
  });

  it('signs each try at its own time', async () => {
    const { calls, sleeps } = await call([failed(503), ok('{"result":true}')]);
    expect(sleeps).toEqual([200]);
    expect(calls.map((c) => c.headers[TIMESTAMP_HEADER])).toEqual([String(NOW_SEC), String(Math.floor((NOW + 200) / 1000))]);
    for (const c of calls) expect(bodySignatureMatches(SECRET, c.headers[TIMESTAMP_HEADER]!, c.headers[SIGNATURE_HEADER]!, Buffer.from(c.body as string))).toBe(true);
  });
});

describe('callBusiness: what it answers', () => {
  it('a sync 2xx with {result, msg} is the result (msg defaults to ""); an async 2xx is "accepted" whatever it says', async () => {
    expect((await call([ok('{"ticket_id":"T-1","result":false,"error":"no quota"}')])).outcome).toEqual({ kind: 'result', result: { ticket_id: 'T-1', result: false, msg: '', error: 'no quota' } });
    const async = await call([ok('not json at all')], { mode: 'async' });
    expect(async.outcome).toEqual({ kind: 'accepted' });
    expect(async.calls).toHaveLength(1);
  });

  it('retries a malformed sync answer, then gives up naming the first 200 characters of it', async () => {
    const long = `{"unexpected":"${'x'.repeat(300)}"}`;
    const { outcome, calls } = await call([ok(long)]);
    expect(calls).toHaveLength(3);
    expect(outcome).toEqual({ kind: 'unreachable', error: `malformed answer (expected {result, msg}): ${long.slice(0, 200)}`, attempts: 3 });
    expect((await call([ok('[]')], { retries: 0 })).outcome).toEqual({ kind: 'unreachable', error: 'malformed answer (expected {result, msg}): []', attempts: 1 });
  });

  it('retries a timeout and says how long it waited', async () => {
    const { outcome, calls } = await call([timeout]);
    expect(calls).toHaveLength(3);
    expect(outcome).toEqual({ kind: 'unreachable', error: 'no answer within 1000 ms', attempts: 3 });
  });

  it('retries 5xx, 408, 429 and network errors; takes any other status below 500 as final at once', async () => {
    for (const status of [500, 502, 503, 599, 408, 429, undefined]) {
      const { outcome, calls } = await call([failed(status, 'busy')], { retries: 1 });
      expect(calls, String(status)).toHaveLength(2);
      expect(outcome, String(status)).toEqual({ kind: 'unreachable', error: status ? `upstream answered HTTP ${status}` : 'connect ECONNREFUSED', attempts: 2 });
    }
    for (const status of [400, 401, 403, 404, 409, 422, 499, 301]) {
      const { outcome, calls, sleeps } = await call([failed(status, 'refused')], { retries: 3 });
      expect(calls, String(status)).toHaveLength(1);
      expect(sleeps).toEqual([]);
      expect(outcome).toEqual({ kind: 'unreachable', error: `upstream answered HTTP ${status}: refused`, attempts: 1 });
    }
  });

  it('quotes a final refusal’s body (first 200 characters), and adds nothing when it is empty', async () => {
    expect((await call([failed(403)])).outcome).toEqual({ kind: 'unreachable', error: 'upstream answered HTTP 403', attempts: 1 });
    const body = 'r'.repeat(250);
    expect((await call([failed(422, body)])).outcome).toEqual({ kind: 'unreachable', error: `upstream answered HTTP 422: ${'r'.repeat(200)}`, attempts: 1 });
  });

  it('stops at the first usable answer, after the last error', async () => {
    const { outcome, calls } = await call([timeout, failed(503), ok('{"result":true,"msg":"granted"}')]);
    expect(calls).toHaveLength(3);
    expect(outcome).toEqual({ kind: 'result', result: { result: true, msg: 'granted' } });
  });
});

describe('businessRequest and businessIdempotencyKey (what a stage call carries)', () => {
  const flow = {
    id: 'vpn-access',
    check: { mode: 'sync' },
    execute: { mode: 'async' },
  } as unknown as ApprovalFlow;
  const ticket = { instanceCode: 'INST-1', applicant: { userId: 'u1', openId: 'ou_1' }, fields: { days: 3, reason: '出差' } };

  it('carries the ticket, the flow, the stage, the fields and the applicant; a callback URL and the attempt id only for an async stage', () => {
    const carried = { ticket_id: 'INST-1', flow: 'vpn-access', fields: { days: 3, reason: '出差' }, applicant: { user_id: 'u1', open_id: 'ou_1' } };
    expect(businessRequest(flow, 'check', ticket, 'https://bridge.example', 'INST-1:check:t:0')).toEqual({ ...carried, stage: 'check' });
    expect(businessRequest(flow, 'execute', ticket, 'https://bridge.example', 'INST-1:execute:t:1')).toEqual({
      ...carried,
      stage: 'execute',
      callback_url: 'https://bridge.example/api/v1/lark/execute/callback',
      attempt_id: 'INST-1:execute:t:1',
    });
  });

  it('sends empty fields when the ticket has none, and no callback URL for a stage the flow does not have', () => {
    const checkOnly = { id: 'f', check: { mode: 'async' } } as unknown as ApprovalFlow;
    const bare = { instanceCode: 'I', applicant: {} };
    expect(businessRequest(checkOnly, 'execute', bare, 'http://127.0.0.1:1', 'I:execute:t:0')).toEqual({ ticket_id: 'I', flow: 'f', stage: 'execute', fields: {}, applicant: { user_id: undefined, open_id: undefined } });
    expect(businessRequest(checkOnly, 'check', bare, 'http://127.0.0.1:1', 'I:check:t:0').callback_url).toBe('http://127.0.0.1:1/api/v1/lark/check/callback');
  });

  it('keys a call by instance, stage, task and retry count, percent-encoding what a header cannot carry', () => {
    expect(businessIdempotencyKey('INST-1', 'execute', 'task-9', 0)).toBe('INST-1:execute:task-9:0');
    expect(businessIdempotencyKey('INST-1', 'execute', 'task-9', 2)).toBe('INST-1:execute:task-9:2');
    expect(businessIdempotencyKey('审批 1:x', 'check', 't', 1)).toBe(`${encodeURIComponent('审批 1:x')}:check:t:1`);
  });
});

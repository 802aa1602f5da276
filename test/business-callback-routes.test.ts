import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { NotFound } from '../src/errors.js';
import type { BusinessResult } from '../src/flows/business-call.js';
import { businessCallbackRoutes } from '../src/flows/callback-routes.js';
import { FlowRegistry } from '../src/flows/flow-registry.js';
import type { Stage } from '../src/flows/flow-schema.js';
import { listRoutes } from '../src/http/route.js';
import { silentLogger } from '../src/log.js';
import { postJson, servedPerTest, serveRoutes } from './helpers/serve-routes.js';
import { removeDir, tempDir } from './helpers/test-app.js';

/**
 * The `business-hmac` guard and the two callback routes, over a real flow registry with two
 * flows and their own secrets: the signature and its time window decide before anything is
 * looked up, and the engine is told which flow signed.
 */
const SECRET_A = 'secret-of-flow-a-0123456789';
const SECRET_B = 'secret-of-flow-b-0123456789';
const NOW_SEC = 1_800_000_000;

let dir: string;
let flows: FlowRegistry;
let now = NOW_SEC * 1000;
const clock: Clock = { now: () => now, sleep: async () => undefined };
const accepted: Array<{ stage: Stage; ticket: string; flow: string; result: BusinessResult }> = [];
const engine = {
  async acceptCallback(stage: Stage, ticket: string, signer: { id: string }, result: BusinessResult, attemptId?: string) {
    if (ticket === 'UNKNOWN') throw new NotFound(`unknown ticket ${ticket}`);
    accepted.push({ stage, ticket, flow: signer.id, result, ...(attemptId === undefined ? {} : { attemptId }) });
  },
};

const flow = (id: string, approvalCode: string, secret: string) => ({
  kind: 'approval',
  id,
  name: id,
  approvalCode,
  execute: { url: 'https://biz.example.test/grant', mode: 'async' },
  secret,
});

beforeAll(async () => {
  dir = await tempDir('callback-routes-');
  await writeFile(join(dir, 'a.json'), JSON.stringify(flow('flow-a', 'AC-A', SECRET_A)));
  await writeFile(join(dir, 'b.json'), JSON.stringify(flow('flow-b', 'AC-B', SECRET_B)));
  flows = new FlowRegistry(dir, {}, silentLogger(), undefined, 'assistant01');
  await flows.loadAll();
  expect(flows.all().map((f) => f.id).sort()).toEqual(['flow-a', 'flow-b']);
});
const served = servedPerTest(() => serveRoutes(businessCallbackRoutes(engine, flows, clock)));
const emptyServed = servedPerTest(() => serveRoutes(businessCallbackRoutes(engine, new FlowRegistry(join(dir, 'none'), {}, silentLogger()), clock)));
afterAll(async () => {
  await removeDir(dir);
});
beforeEach(() => {
  accepted.length = 0;
  now = NOW_SEC * 1000;
});

const sign = (secret: string, ts: number, raw: string) => createHmac('sha256', secret).update(`${ts}.${raw}`).digest('hex');
/** POSTs a callback; headers as given (a signature computed with `secret` at `ts` unless overridden). */
async function callback(stage: string, body: unknown, o: { secret?: string; ts?: number; headers?: Record<string, string>; to?: typeof served } = {}) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const ts = o.ts ?? NOW_SEC;
  const headers = o.headers ?? { 'x-bridge-timestamp': String(ts), 'x-bridge-signature': sign(o.secret ?? SECRET_A, ts, raw) };
  const s = (o.to ?? served).get();
  return postJson(`${s.url}/api/v1/lark/${stage}/callback`, raw, headers);
}
const refused = (message: string) => ({ status: 401, body: { error: { code: 'unauthorized', message } } });
const ok = { ticket_id: 'T-1', result: true, msg: 'granted' };

describe('the callback routes', () => {
  it('are POST /api/v1/lark/{check,execute}/callback, guarded by business-hmac', () => {
    expect(listRoutes(businessCallbackRoutes(engine, new FlowRegistry(dir, {}, silentLogger()), clock))).toEqual([
      { method: 'POST', path: '/api/v1/lark/check/callback', guard: 'business-hmac' },
      { method: 'POST', path: '/api/v1/lark/execute/callback', guard: 'business-hmac' },
    ]);
  });

  it('hand the engine the stage, the ticket, the result and the flow whose secret signed it', async () => {
    expect(await callback('execute', ok)).toEqual({ status: 200, body: { status: 'accepted', ticket_id: 'T-1', stage: 'execute' } });
    expect(await callback('check', { ticket_id: 'T-2', result: false, error: 'no quota' }, { secret: SECRET_B })).toEqual({
      status: 200,
      body: { status: 'accepted', ticket_id: 'T-2', stage: 'check' },
    });
    expect(accepted).toEqual([
      { stage: 'execute', ticket: 'T-1', flow: 'flow-a', result: { ticket_id: 'T-1', result: true, msg: 'granted' } },
      { stage: 'check', ticket: 'T-2', flow: 'flow-b', result: { ticket_id: 'T-2', result: false, msg: '', error: 'no quota' } },
    ]);
    // What the engine refuses reaches the caller as it is.
    expect((await callback('execute', { ...ok, ticket_id: 'UNKNOWN' })).status).toBe(404);
  });

  it('hand over the attempt_id a callback echoes; null or "" is no attempt_id; another type is a 400 naming it', async () => {
    expect((await callback('execute', { ...ok, attempt_id: 'T-1:execute:t:1' })).status).toBe(200);
    expect(accepted.at(-1)).toMatchObject({ ticket: 'T-1', attemptId: 'T-1:execute:t:1' });
    for (const attempt_id of [null, '']) {
      expect((await callback('execute', { ...ok, attempt_id })).status).toBe(200);
      expect(accepted.at(-1)).not.toHaveProperty('attemptId');
    }
    const before = accepted.length;
    const number = await callback('execute', { ...ok, attempt_id: 7 });
    expect(number.status).toBe(400);
    expect(number.body.error.message).toBe('attempt_id: must be the attempt_id string of our call');
    expect(accepted.length).toBe(before);
  });
});

describe('the business-hmac guard', () => {
  it('refuses missing headers, and either one alone', async () => {
    const missing = refused('missing x-bridge-timestamp or x-bridge-signature');
    const raw = JSON.stringify(ok);
    expect(await callback('execute', ok, { headers: {} })).toEqual(missing);
    expect(await callback('execute', ok, { headers: { 'x-bridge-timestamp': String(NOW_SEC) } })).toEqual(missing);
    expect(await callback('execute', ok, { headers: { 'x-bridge-signature': sign(SECRET_A, NOW_SEC, raw) } })).toEqual(missing);
    expect(accepted).toEqual([]);
  });

  it('accepts a signature dated exactly 5 minutes either way, and refuses one a second older or newer', async () => {
    const outside = refused('callback timestamp is outside the 5 minute window');
    expect((await callback('execute', ok, { ts: NOW_SEC - 300 })).status).toBe(200);
    expect((await callback('execute', ok, { ts: NOW_SEC + 300 })).status).toBe(200);
    expect(await callback('execute', ok, { ts: NOW_SEC - 301 })).toEqual(outside);
    expect(await callback('execute', ok, { ts: NOW_SEC + 301 })).toEqual(outside);
    // The window follows the injected clock.
    now += 3_600_000;
    expect(await callback('execute', ok)).toEqual(outside);
    expect(accepted).toHaveLength(2);
  });

  it('refuses a signature with another secret, over other bytes, or one digit off; takes capitals', async () => {
    const bad = refused('callback signature does not verify');
    const raw = JSON.stringify(ok);
    expect(await callback('execute', ok, { secret: 'not-any-flow-secret-000' })).toEqual(bad);
    const sig = sign(SECRET_A, NOW_SEC, raw);
    const headers = (signature: string) => ({ 'x-bridge-timestamp': String(NOW_SEC), 'x-bridge-signature': signature });
    expect(await callback('execute', JSON.stringify(ok, null, 2), { headers: headers(sig) })).toEqual(bad);
    expect(await callback('execute', raw, { headers: headers(sig.slice(0, 63) + (sig.endsWith('0') ? '1' : '0')) })).toEqual(bad);
    expect(accepted).toEqual([]);
    expect((await callback('execute', raw, { headers: headers(sig.toUpperCase()) })).status).toBe(200);
  });

  it('runs before the body is parsed: an unsigned bad body is a 401, a signed one a 400 naming the field', async () => {
    expect((await callback('execute', { ticket_id: '' }, { headers: {} })).status).toBe(401);
    const empty = await callback('execute', { ticket_id: '', result: true });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toBe('ticket_id: is required');
    expect((await callback('execute', { ticket_id: 'T-1' })).body.error.message).toMatch(/^result: /);
    expect(accepted).toEqual([]);
  });

  it('refuses every callback when no flow is loaded', async () => {
    expect(await callback('execute', ok, { to: emptyServed })).toEqual(refused('callback signature does not verify'));
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { BUSINESS_SECRET, flowFile, startHarness, type Harness } from './helpers/approval-harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const WIFI_CODE = 'B1C2D3E4-0000-1111-2222-333344445555';
const WIFI_SECRET = 'wifi-secret-abcdefghijklmnop';
const approves = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve');

/** Two flows with their own secrets: admin-permission (flow A) and wifi (flow B), both async execute. */
async function twoFlows(): Promise<void> {
  process.env.TEST_WIFI_SECRET = WIFI_SECRET;
  h = await startHarness({
    flow: (url) => flowFile(url, { check: undefined }),
    moreFlows: (url) => ({
      'wifi.json': flowFile(url, {
        id: 'wifi',
        name: 'Wi-Fi whitelist',
        approvalCode: WIFI_CODE,
        check: undefined,
        execute: { url: `${url}/wifi/add`, mode: 'async', timeoutMs: 1000, retries: 0 },
        secret: '${env:TEST_WIFI_SECRET}',
      }),
    }),
  });
  h.newInstance('INST-A');
  h.newInstance('INST-B', undefined, WIFI_CODE);
  await h.pendingAt('INST-A', 'ta', 'execute_node');
  await h.pendingAt('INST-B', 'tb', 'execute_node', { approvalCode: WIFI_CODE });
  await h.waitForRun('INST-A', (r) => r.stages.execute?.state === 'waiting_callback');
  await h.waitForRun('INST-B', (r) => r.stages.execute?.state === 'waiting_callback');
}

describe('business callbacks: verified before anything is looked up', () => {
  it('answers an unknown and a known ticket alike when unsigned, badly signed or stale; another flow’s secret is 404; the right one is accepted', async () => {
    await twoFlows();
    const ok = { result: true, msg: 'added' };
    const now = Math.floor(Date.now() / 1000);

    // The same 401, word for word, whether the ticket exists or not: nothing is learnt.
    for (const o of [{ unsigned: true }, { secret: 'not-the-flow-secret-000' }, { timestampSec: now - 3600 }, { timestampSec: now + 3600 }]) {
      const known = await h.callback('execute', { ticket_id: 'INST-A', ...ok }, o);
      const unknown = await h.callback('execute', { ticket_id: 'NO-SUCH-TICKET', ...ok }, o);
      expect(known.status).toBe(401);
      expect(unknown).toEqual(known);
    }
    // A callback signed with flow A's secret cannot touch flow B's ticket: as unknown as no ticket.
    const crossed = await h.callback('execute', { ticket_id: 'INST-B', ...ok }, { secret: BUSINESS_SECRET });
    expect(crossed.status).toBe(404);
    expect(crossed.body.error).toEqual({ code: 'not_found', message: 'unknown ticket INST-B' });
    expect((await h.callback('execute', { ticket_id: 'NO-SUCH-TICKET', ...ok }, { secret: BUSINESS_SECRET })).body.error.code).toBe('not_found');
    expect((await h.run('INST-B'))!.stages.execute!.state).toBe('waiting_callback');
    expect(approves()).toHaveLength(0);

    const right = await h.callback('execute', { ticket_id: 'INST-B', ...ok }, { secret: WIFI_SECRET });
    expect(right).toEqual({ status: 200, body: { status: 'accepted', ticket_id: 'INST-B', stage: 'execute' } });
    await h.waitForRun('INST-B', (r) => r.status === 'done');
    expect(approves().map((c) => c.body.instance_code)).toEqual(['INST-B']);
    expect((await h.run('INST-A'))!.stages.execute!.state).toBe('waiting_callback');
  });

  it('treats prototype-named and non-ASCII ticket ids as plain unknown tickets', async () => {
    await twoFlows();
    for (const ticket of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '审批-实例-1', 'INST-A/../INST-B']) {
      const res = await h.callback('execute', { ticket_id: ticket, result: true });
      expect(res.status, ticket).toBe(404);
      expect(res.body.error.message).toBe(`unknown ticket ${ticket}`);
    }
    expect((await fetch(`${h.app.url}/readyz`)).status).toBe(200);
  });

  it('takes exactly one of two concurrent results for a stage; the other is told 409', async () => {
    await twoFlows();
    const [a, b] = await Promise.all([
      h.callback('execute', { ticket_id: 'INST-A', result: true, msg: 'first' }),
      h.callback('execute', { ticket_id: 'INST-A', result: false, error: 'second' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const winner = a.status === 200 ? 'first' : 'second';
    const run = await h.waitForRun('INST-A', (r) => r.status !== 'active');
    expect(run.status).toBe(winner === 'first' ? 'done' : 'failed');
    // a replay of the accepted callback, once more
    expect((await h.callback('execute', { ticket_id: 'INST-A', result: true, msg: 'first' })).status).toBe(409);
  });
});

describe('a business API that calls back before answering our call', () => {
  it('has its callback accepted while our call is still in flight, and the run completes at once', async () => {
    const early: Array<{ status: number; body: any }> = [];
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'async', timeoutMs: 5000, retries: 0 } }) });
    // The API posts the signed result and waits for our answer before answering our call.
    h.business.handler = async (call) => {
      early.push(await h.callback('execute', { ticket_id: call.body.ticket_id, result: true, msg: 'granted before answering' }));
      return { status: 202, body: { accepted: true } };
    };
    h.newInstance('INST-E');
    await h.pendingAt('INST-E', 't-exec', 'execute_node');
    const run = await h.waitForRun('INST-E', (r) => r.status === 'done');
    expect(early).toEqual([{ status: 200, body: { status: 'accepted', ticket_id: 'INST-E', stage: 'execute' } }]);
    expect(h.business.calls).toHaveLength(1);
    expect(approves()).toHaveLength(1);
    expect(approves()[0]!.body.comment).toBe('granted before answering');
    expect(run.steps.at(-1)).toMatchObject({ step: 'done', detail: 'granted before answering' });
  });

  it('refuses a callback for a synchronous stage (its result is the answer to our call)', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { execute: undefined, check: { url: `${url}/perm/check`, mode: 'sync', timeoutMs: 2000, retries: 0 } }) });
    h.business.handler = async (call) => {
      const cb = await h.callback('check', { ticket_id: call.body.ticket_id, result: false, error: 'forged verdict' });
      return { status: 200, body: { ticket_id: call.body.ticket_id, result: true, msg: `sync ok (callback got ${cb.status})` } };
    };
    h.newInstance('INST-S');
    await h.pendingAt('INST-S', 't1', 'check_node');
    const run = await h.waitForRun('INST-S', (r) => r.status === 'done');
    expect(run.stages.check!.decision).toMatchObject({ approve: true, comment: 'sync ok (callback got 409)' });
  });
});

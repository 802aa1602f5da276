/**
 * Two replicas (src/main.ts processes) on one PostgreSQL database run approval flows: Lark may
 * deliver an event to either (or, retrying, to both), and a replica may die mid-run.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signBody } from '../src/flows/business-call.js';
import { ApprovalEmulation, registerCardPatch } from './lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import { APP_ID, APP_SECRET, APPROVAL_CODE, approvalEnv, ASSISTANT, BUSINESS_SECRET, ENCRYPT_KEY, flowFile, FORM, PROGRESS_CHAT, VERIFICATION_TOKEN } from './helpers/approval-harness.js';
import { FakeUpstream, type UpstreamHandler } from './helpers/fake-upstream.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { killReplica, query, startReplicas, type Replica } from './helpers/replicas.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

describe.skipIf(postgresSkipReason() !== undefined)('two replicas on one PostgreSQL: approval runs', () => {
  let cluster: PostgresCluster;
  let lark: LarkEmulator | undefined;
  let approval: ApprovalEmulation;
  let business: FakeUpstream | undefined;
  let dbUrl: string;
  const procs: Replica[] = [];
  const dirs: string[] = [];
  const holds: Array<() => void> = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());
  afterEach(async () => {
    for (const release of holds.splice(0)) release();
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    await lark?.close();
    await business?.close();
    await Promise.all(dirs.splice(0).map(removeDir));
  });

  async function twoReplicas(flow: (businessUrl: string) => unknown, handler: UpstreamHandler): Promise<[Replica, Replica]> {
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    approval = new ApprovalEmulation(lark);
    registerCardPatch(lark, []);
    business = await new FakeUpstream(handler).start();
    const flowsDir = await tempDir('lark-bridge-flows-');
    const dataDir = await tempDir();
    dirs.push(flowsDir, dataDir);
    await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify(flow(business.url)));
    dbUrl = await cluster.createDatabase('replica_runs');
    const env = { ...approvalEnv(lark.url, flowsDir), DATABASE_URL: dbUrl, DATABASE_LEASE_MS: '2000', DATA_DIR: dataDir, TEST_BUSINESS_SECRET: BUSINESS_SECRET };
    const [a, b] = await startReplicas(2, env);
    procs.push(a!, b!);
    return [a!, b!];
  }

  const pending = (code: string, taskId: string, node: string) => {
    approval.createInstance({ approval_code: APPROVAL_CODE, instance_code: code, user_id: 'applicant1', open_id: 'ou_applicant1', form: FORM, task_list: [] });
    approval.addTask(code, { id: taskId, user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: node });
  };
  const taskEvent = (code: string, taskId: string) => approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: code, taskId, userId: ASSISTANT });
  const deliver = (r: Replica, event: unknown) => sendLarkEvent(`${r.url}/api/v1/lark/callback`, event, { encryptKey: ENCRYPT_KEY });
  const callback = async (r: Replica, body: unknown) => {
    const raw = JSON.stringify(body);
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await fetch(`${r.url}/api/v1/lark/check/callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-bridge-timestamp': ts, 'x-bridge-signature': signBody(BUSINESS_SECRET, ts, raw) },
      body: raw,
    });
    return res.status;
  };
  const callsFor = (code: string) => business!.calls.filter((c) => c.body.ticket_id === code);
  const stageState = async (code: string) =>
    (await query<{ state: string }>(dbUrl, "SELECT doc->'stages'->'check'->>'state' AS state FROM live_records WHERE collection = 'runs' AND id = $1", [code]))[0]?.state;

  it('the same event delivered to both replicas at once (one event id, or two for one task): one business call, one approval, one card', async () => {
    const [a, b] = await twoReplicas((u) => flowFile(u, { execute: undefined }), (c) => ({ status: 200, delayMs: 30, body: { ticket_id: c.body.ticket_id, result: true, msg: 'ok' } }));
    const codes: string[] = [];
    const deliveries: Promise<{ status: number }>[] = [];
    for (let i = 0; i < 8; i++) {
      // Lark retries a delivery that was slow to answer: the same event id reaches both replicas.
      const same = `INST-SAME-${i}`;
      pending(same, 't-check', 'check_node');
      const event = taskEvent(same, 't-check');
      deliveries.push(deliver(a, event), deliver(b, event));
      // One change of the task under two event ids: both replicas record it, the run's lock lets one act.
      const twice = `INST-TWICE-${i}`;
      pending(twice, 't-check', 'check_node');
      deliveries.push(deliver(a, taskEvent(twice, 't-check')), deliver(b, taskEvent(twice, 't-check')));
      codes.push(same, twice);
    }
    expect((await Promise.all(deliveries)).map((d) => d.status)).toEqual(deliveries.map(() => 200));
    await waitFor(() => codes.every((c) => approval.task(c, 't-check').status === 'APPROVED'), 20_000);
    await waitFor(async () => (await query(dbUrl, "SELECT 1 FROM live_records WHERE collection IN ('runs', 'run-inbox', 'run-wakeups')")).length === 0, 10_000);

    for (const code of codes) {
      expect(callsFor(code), code).toHaveLength(1);
      expect(approval.instances.get(code)!.comments, code).toEqual([{ task_id: 't-check', action: 'approve', comment: 'ok', user_id: ASSISTANT }]);
    }
    const cards = [...lark!.messages.values()].filter((m) => m.msg_type === 'interactive' && m.chat_id === PROGRESS_CHAT);
    expect(cards).toHaveLength(codes.length);
    expect(lark!.callsTo('POST', '/open-apis/approval/v4/tasks/approve')).toHaveLength(codes.length);
  }, 90_000);

  it('a replica dies with runs waiting for callbacks and one mid-call: the other takes the callback, rejects at the deadline, and calls again with the same key', async () => {
    const [a, b] = await twoReplicas(
      (u) => flowFile(u, { check: { url: `${u}/perm/check`, mode: 'async', timeoutMs: 20_000, retries: 0, callbackTimeoutMs: 5_000 }, execute: undefined }),
      async (c) => {
        // INST-HANG: the first call is never answered before the kill (a's turn is cut mid-call).
        if (c.body.ticket_id === 'INST-HANG' && callsFor('INST-HANG').length === 1) await new Promise<void>((resolve) => holds.push(resolve));
        return { status: 202, body: { ticket_id: c.body.ticket_id } };
      },
    );
    for (const code of ['INST-CB', 'INST-LATE', 'INST-HANG']) {
      pending(code, 't-check', 'check_node');
      expect((await deliver(a, taskEvent(code, 't-check'))).status).toBe(200);
    }
    // a is waiting for two callbacks (its timers armed) and is inside the third run's business call.
    await waitFor(async () => (await stageState('INST-CB')) === 'waiting_callback' && (await stageState('INST-LATE')) === 'waiting_callback', 10_000);
    // Their turns are over (turn marks gone): only the deadline marks say when to look at them again.
    const turnMarks = "SELECT 1 FROM live_records WHERE collection = 'run-wakeups' AND doc->>'kind' = 'turn' AND doc->>'runId' IN ('INST-CB', 'INST-LATE')";
    await waitFor(async () => (await query(dbUrl, turnMarks)).length === 0, 10_000);
    await waitFor(() => callsFor('INST-HANG').length === 1);
    const killedAt = await killReplica(a);

    // The business answers through b: b applies it and approves.
    expect(await callback(b, { ticket_id: 'INST-CB', result: true, msg: 'granted via b' })).toBe(200);
    await waitFor(() => approval.task('INST-CB', 't-check').status === 'APPROVED', 10_000);
    expect(approval.instances.get('INST-CB')!.comments[0]!.comment).toBe('granted via b');

    // a's cut turn is taken up by b once its lease ran out: the same call again, with the same key.
    await waitFor(() => callsFor('INST-HANG').length === 2, 15_000);
    const keys = callsFor('INST-HANG').map((c) => c.headers['idempotency-key']);
    expect(keys).toEqual(['INST-HANG:check:t-check:0', 'INST-HANG:check:t-check:0']);
    await waitFor(async () => (await stageState('INST-HANG')) === 'waiting_callback', 10_000);
    expect(await callback(b, { ticket_id: 'INST-HANG', result: true, msg: 'granted after all' })).toBe(200);
    await waitFor(() => approval.task('INST-HANG', 't-check').status === 'APPROVED', 10_000);

    // No callback for INST-LATE: its deadline was a's timer; b, woken by the deadline mark, rejects.
    await waitFor(() => approval.task('INST-LATE', 't-check').status === 'REJECTED', 15_000);
    expect(approval.instances.get('INST-LATE')!.comments[0]!.comment).toMatch(/did not report back within 5 s/);
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    for (const code of ['INST-CB', 'INST-LATE']) expect(callsFor(code), code).toHaveLength(1);
    expect(lark!.callsTo('POST', '/open-apis/approval/v4/tasks/approve')).toHaveLength(2);
    expect(lark!.callsTo('POST', '/open-apis/approval/v4/tasks/reject')).toHaveLength(1);
    expect(await b.kill('SIGTERM')).toBe(0);
  }, 90_000);
});

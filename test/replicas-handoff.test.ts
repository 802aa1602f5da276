/**
 * Two replicas in one test process, each with its own PostgreSQL store (pool, owner, lock
 * connection), as two processes would have: the hand-offs between them that a process test can
 * only hit by chance are driven here step by step.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { approvalTaskEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import { APP_ID, APPROVAL_CODE, approvalEnv, ASSISTANT, ENCRYPT_KEY, flowFile, startApprovalApp, startHarness, VERIFICATION_TOKEN, type Harness } from './helpers/approval-harness.js';
import { FakeFeedSource, startRepliesApp, startRepliesHarness, type RepliesHarness } from './helpers/replies-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { query } from './helpers/replicas.js';
import { api, removeDir, startTestApp, waitFor, type TestApp } from './helpers/test-app.js';

describe.skipIf(postgresSkipReason() !== undefined)('two replicas in one process on PostgreSQL: hand-offs', () => {
  let cluster: PostgresCluster;
  let h: Harness | undefined;
  let replies: RepliesHarness | undefined;
  let upstream: FakeUpstream | undefined;
  const apps: TestApp[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());
  afterEach(async () => {
    for (const app of apps.splice(0)) {
      await app.stop().catch(() => undefined);
      await removeDir(app.dataDir);
    }
    await h?.close();
    await replies?.close();
    await upstream?.close();
    h = replies = upstream = undefined;
  });

  /** The harness's app is replica a; replica b shares its database, flows and Lark. */
  async function twoApprovalReplicas(): Promise<TestApp> {
    const url = await cluster.createDatabase('handoff');
    h = await startHarness({ env: { DATABASE_URL: url }, flow: (u) => flowFile(u, { execute: { url: `${u}/perm/grant`, mode: 'sync', timeoutMs: 2000, retries: 0 } }) });
    const b = await startApprovalApp(h.env);
    apps.push(b);
    return b;
  }

  const eventTo = (app: TestApp, instanceCode: string, taskId: string) =>
    sendLarkEvent(`${app.url}/api/v1/lark/callback`, approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode, taskId, userId: ASSISTANT }), {
      encryptKey: ENCRYPT_KEY,
    });
  const addTask = (instanceCode: string, taskId: string, node: string) =>
    h!.approval.addTask(instanceCode, { id: taskId, user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: node });

  it('news recorded on b while a holds the run is applied by a before it lets go, even when b is gone', async () => {
    const b = await twoApprovalReplicas();
    h!.newInstance('INST-HOLD');
    h!.approval.gates.get.hold((code) => code === 'INST-HOLD');
    addTask('INST-HOLD', 't-check', 'check_node');
    expect((await eventTo(h!.app, 'INST-HOLD', 't-check')).status).toBe(200);
    await waitFor(() => h!.approval.gates.get.waiting > 0); // a's turn holds the run's lock, waiting on Lark

    // The execute task's event reaches b meanwhile: recorded, but b cannot take the run's lock…
    addTask('INST-HOLD', 't-exec', 'execute_node');
    expect((await eventTo(b, 'INST-HOLD', 't-exec')).status).toBe(200);
    // …and b stops before it could try again: only a's last look before letting go can take it.
    await b.deps.engine!.stop();
    h!.approval.gates.get.open();
    await waitFor(() => h!.approval.task('INST-HOLD', 't-exec').status === 'APPROVED', 5_000); // the sweep would take 30 s (the item's lease)
    expect(h!.approval.task('INST-HOLD', 't-check').status).toBe('APPROVED');
    expect(h!.business.calls.map((c) => c.path)).toEqual(['/perm/check', '/perm/grant']);
  });

  it('news recorded on b while another replica holds the run: b retries the lock and applies it once free', async () => {
    const b = await twoApprovalReplicas();
    h!.newInstance('INST-BUSY');
    addTask('INST-BUSY', 't-check', 'check_node');
    // Another replica's turn holds the run (the test takes the lock with a's store).
    const held = await h!.app.deps.store.tryLock('run:INST-BUSY');
    expect(held).toBeDefined();
    expect((await eventTo(b, 'INST-BUSY', 't-check')).status).toBe(200);
    // Recorded durably, but not applied while the lock is held.
    await waitFor(async () => (await query(cluster.url(dbName(b)), "SELECT 1 FROM live_records WHERE collection = 'run-inbox'")).length === 1);
    expect(h!.business.calls).toHaveLength(0);
    await held!.release();
    await waitFor(() => h!.approval.task('INST-BUSY', 't-check').status === 'APPROVED', 5_000); // not the 30 s sweep
    expect(h!.business.calls).toHaveLength(1);
  });

  it('a replica that loses a job\'s lease stops sending its records and cannot write it; the job is finished once it is claimed again', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 80 }));
    const url = await cluster.createDatabase('fencing');
    const app = await startTestApp({ DATABASE_URL: url, DATABASE_LEASE_MS: '1000', TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, TASK_SYNC_CONCURRENCY: '1' });
    apps.push(app);
    const records = Array.from({ length: 20 }, (_, i) => `r${i}`);
    const created = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records } });
    expect(created.status).toBe(202);
    const jobId = created.json.jobId as string;
    await waitFor(() => upstream!.calls.length >= 3);

    // Another replica takes the job over (as if this one had paused past its lease).
    await query(url, "UPDATE live_records SET lease_owner = 'another-replica', lease_until = $2 WHERE collection = 'jobs' AND id = $1", [jobId, Date.now() + 3_600_000]);
    const jobDoc = async () => (await query<{ doc: unknown }>(url, "SELECT doc FROM live_records WHERE collection = 'jobs' AND id = $1", [jobId]))[0]?.doc;
    const atTakeover = await jobDoc();
    // The replica finds out (its write is refused, or its heartbeat's renew): it drops the job.
    await waitFor(() => app.deps.worker.depth().records === 0, 5_000);
    const sentBeforeLoss = upstream.calls.length;
    expect(sentBeforeLoss).toBeLessThan(records.length);

    // While the other replica holds it, nothing of ours lands: not one result more in the record.
    expect(await jobDoc()).toEqual(atTakeover);

    // The other replica dies: its lease expires, this replica claims the job back and finishes it.
    await query(url, "UPDATE live_records SET lease_until = 0 WHERE collection = 'jobs' AND id = $1", [jobId]);
    const done = await waitFor(async () => {
      const r = await api(app.url, `/api/task-sync/status/${jobId}`);
      return r.json.status === 'success' ? r.json : undefined;
    }, 10_000);
    expect(done.results.map((r: { recordId: string }) => r.recordId)).toEqual(records);
    // Each record went out once, but for those in flight when the lease was lost: the one call
    // running (one slot), and the result before it if its write was still on its way (writes do
    // not hold the slot). Those were refused, so they were sent again, with the same key.
    const perRecord = records.map((r) => upstream!.callsFor(r).length);
    expect(perRecord.filter((n) => n !== 1).every((n) => n === 2)).toBe(true);
    expect(perRecord.filter((n) => n === 2).length).toBeLessThanOrEqual(2);
    const keys = records.flatMap((r) => upstream!.callsFor(r).map((c) => c.headers['idempotency-key']));
    expect(new Set(keys)).toEqual(new Set(records.map((r) => `${jobId}:${r}`)));
  });

  it('keeps the results of calls that end while the database is down, and writes them once it is back, without a restart', async () => {
    const held: Array<() => void> = [];
    upstream = await startFakeUpstream(async () => {
      await new Promise<void>((resolve) => held.push(resolve));
      return { status: 200 };
    });
    const url = await cluster.createDatabase('outage_results');
    const app = await startTestApp({ DATABASE_URL: url, DATABASE_LEASE_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '1000', TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, TASK_SYNC_CONCURRENCY: '3' });
    apps.push(app);
    const created = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: ['r1', 'r2', 'r3'] } });
    expect(created.status).toBe(202);
    await waitFor(() => held.length === 3); // the three calls are in flight…
    await cluster.stop('fast'); // …when the database goes away
    try {
      for (const answer of held.splice(0)) answer(); // the upstream answers: the results cannot be written
      await waitFor(() => upstream!.calls.every((c) => c.cutAt === undefined) && app.deps.worker.depth().running === 0);
    } finally {
      await cluster.start();
    }
    const done = await waitFor(async () => {
      const r = await api(app.url, `/api/task-sync/status/${created.json.jobId}`);
      return r.json?.status === 'success' ? r.json : undefined;
    }, 10_000);
    expect(done.results.map((r: { recordId: string }) => r.recordId)).toEqual(['r1', 'r2', 'r3']);
    expect(upstream.calls).toHaveLength(3); // nothing was sent again
  });

  it('an @bot reply being handled on a is left to a by a replica that starts; once a is gone it is answered once, and a\'s late write is refused', async () => {
    const url = await cluster.createDatabase('replies');
    replies = await startRepliesHarness({ env: { DATABASE_URL: url } });
    const source = new FakeFeedSource();
    replies.sources.set('guance-issues', source);
    let release!: () => void;
    source.hold = new Promise<void>((r) => (release = r));
    const card = await replies.postCard('guance-issues', 'issue-1', { title: 'Disk full' });
    const { message, event } = replies.say({ text: '@_user_1 on it', replyTo: card.message_id, inThread: true });
    expect((await replies.deliver(event)).status).toBe(200);
    await waitFor(() => source.calls === 1); // a is adding the comment

    // Replica b starts meanwhile: a's message is a's, b takes nothing.
    const targets = { pollerIds: () => ['guance-issues'], sourceFor: () => source, repliesEnabled: () => true };
    const b = await startRepliesApp(approvalEnv(replies.lark.url, replies.app.dataDir, { DATABASE_URL: url }), { replyTargets: targets });
    apps.push(b);
    await b.deps.chatReplies!.idle();
    expect(source.calls).toBe(1);
    expect(replies.answersTo(message.message_id)).toEqual([]);

    // a dies (its lease runs out): b's sweep takes the message and tells the thread to check.
    await query(url, "UPDATE live_records SET lease_until = 0 WHERE collection = 'chat-replies'");
    await b.deps.chatReplies!.resume();
    await waitFor(() => replies!.answersTo(message.message_id).length === 1);
    expect(replies.answersTo(message.message_id)[0]).toMatch(/restarted while adding this comment/);
    // a wakes up: its comment went to the source, but its write (and so its answer) is refused.
    release();
    await replies.idle();
    expect(source.calls).toBe(1);
    expect(replies.answersTo(message.message_id)).toHaveLength(1);
  });
});

function dbName(app: TestApp): string {
  return new URL(app.deps.config.database!.url).pathname.slice(1);
}

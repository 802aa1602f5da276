/**
 * A poller scheduled on two replicas (src/main.ts processes) on one PostgreSQL database: each
 * tick runs on one of them; the one running is killed with SIGKILL mid-run and the other carries
 * on from the stored cursor. Each feed item reaches the chat once.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGuance, type FakeGuance, type FakeIssue } from './fake-guance/fake-guance.js';
import { startLarkEmulator, type LarkEmulator, type RecordedCall } from './lark-emulator/emulator.js';
import { GUANCE_KEY, guanceFlow, ONCALL_CHAT, POLLER_APP_ID, POLLER_APP_SECRET, TEMPLATES } from './helpers/poller-harness.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { advisoryLockHolders, killReplica, query, startReplicas, type Replica } from './helpers/replicas.js';
import { removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

const ISSUES = 30;

describe.skipIf(postgresSkipReason() !== undefined)('two replicas on one PostgreSQL: a poller', () => {
  let cluster: PostgresCluster;
  let lark: LarkEmulator | undefined;
  let guance: FakeGuance | undefined;
  const procs: Replica[] = [];
  const dirs: string[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    await lark?.close();
    await guance?.close();
    await Promise.all(dirs.splice(0).map(removeDir));
  });

  it('runs each tick on one replica; the one running is killed mid-run, the other posts the rest: each item once', async () => {
    lark = await startLarkEmulator({ apps: { [POLLER_APP_ID]: POLLER_APP_SECRET } });
    guance = await startFakeGuance(GUANCE_KEY);
    const dataDir = await tempDir();
    const flowsDir = await tempDir('lark-bridge-flows-');
    dirs.push(dataDir, flowsDir);
    await writeFile(join(flowsDir, 'guance-issues.json'), JSON.stringify(guanceFlow(guance.url, { schedule: '* * * * * *', replies: false })));
    const dbUrl = await cluster.createDatabase('replica_pollers');
    const env = {
      DATABASE_URL: dbUrl,
      DATA_DIR: dataDir,
      FLOWS_DIR: flowsDir,
      TEMPLATES_DIR: TEMPLATES,
      API_TOKENS: TOKEN,
      LARK_APP_ID: POLLER_APP_ID,
      LARK_APP_SECRET: POLLER_APP_SECRET,
      LARK_DOMAIN: lark.url,
      TEST_GUANCE_KEY: GUANCE_KEY,
    };
    const replicas = await startReplicas(2, env);
    procs.push(...replicas);

    // A slow Lark: a run posting 30 cards takes seconds, so a kill lands in the middle of one.
    lark.latencyMs = 120;
    const issues: FakeIssue[] = [];
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < ISSUES; i++) issues.push(guance.addIssue({ name: `replica-${i} disk full on db-${i}`, createAt: now - 1 }));
    await waitFor(() => cards().length >= 5, 15_000);
    expect([...postsByUuid().values()].filter((calls) => calls.length > 1)).toEqual([]); // one replica runs each tick

    // Kill the replica that holds the poller's lock: the one running now.
    const [holder] = await advisoryLockHolders(dbUrl);
    const running = replicas.find((r) => r.child.pid === holder);
    expect(running, `lock held by pid ${holder}`).toBeDefined();
    const killedAt = await killReplica(running!);
    const postedAtKill = cards().length;
    expect(postedAtKill).toBeLessThan(ISSUES); // mid-run

    const survivor = replicas.find((r) => r !== running)!;
    await waitFor(() => cards().length >= ISSUES, 30_000);
    // A few more ticks on the survivor: nothing more is posted.
    // (The killed replica's run saved no state; the survivor's saves it as each of its runs ends.)
    const runs = async () => (await query<{ n: number }>(dbUrl, "SELECT (doc->'counts'->>'runs')::int AS n FROM live_records WHERE collection = 'poller-state'"))[0]?.n ?? 0;
    const after = await waitFor(async () => (await runs()) || undefined, 15_000);
    await waitFor(async () => (await runs()) >= after + 2, 10_000);

    const titles = cards().map((m) => (JSON.parse(m.content).header.title.content as string).replace(/^\[P\d\] /, ''));
    expect(titles.sort()).toEqual(issues.map((i) => i.name).sort()); // each item once

    // Who sent what: every post carries the item's uuid. Before the kill no item was sent twice
    // (one replica ran each tick); one item may have been sent again after it (the post in
    // flight at the kill), under the same uuid, so Lark kept one message.
    const posts = postsByUuid();
    expect(posts.size).toBe(ISSUES);
    const again = [...posts.values()].filter((calls) => calls.length > 1);
    expect(again.length).toBeLessThanOrEqual(1);
    for (const calls of again) expect(calls.map((c) => c.at < killedAt)).toEqual([true, false]);
    expect(await survivor.kill('SIGTERM')).toBe(0);
  }, 90_000);

  /** The posts Lark received (each carries the item's uuid), by uuid. */
  function postsByUuid(): Map<string, RecordedCall[]> {
    const posts = new Map<string, RecordedCall[]>();
    for (const call of lark!.callsTo('POST', '/open-apis/im/v1/messages')) {
      const uuid = String((call.body as { uuid?: string }).uuid);
      posts.set(uuid, [...(posts.get(uuid) ?? []), call]);
    }
    return posts;
  }

  function cards() {
    return [...lark!.messages.values()].filter((m) => m.chat_id === ONCALL_CHAT && m.msg_type === 'interactive');
  }
});

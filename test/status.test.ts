import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/approval-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { guanceFlow, startPollerHarness, type PollerHarness } from './helpers/poller-harness.js';
import { api, removeDir, startTestApp, waitFor, waitForJob, type TestApp } from './helpers/test-app.js';

/** GET /api/status: what an operator looks at when something is slow or failing. */
const TOKEN_A = 'status-token-a-0123456789';
const TOKEN_B = 'status-token-b-0123456789';

let app: TestApp | undefined;
let upstream: FakeUpstream | undefined;
let h: Harness | undefined;
let ph: PollerHarness | undefined;
afterEach(async () => {
  await app?.stop();
  if (app) await removeDir(app.dataDir);
  await upstream?.close();
  await h?.close();
  await ph?.close();
  app = upstream = h = ph = undefined;
});

describe('GET /api/status', () => {
  it('is behind the API token', async () => {
    app = await startTestApp({ API_TOKENS: TOKEN_A });
    expect((await api(app.url, '/api/status', { token: null })).status).toBe(401);
    expect((await api(app.url, '/api/status', { token: 'not-a-token' })).status).toBe(401);
    expect((await api(app.url, '/api/status', { token: TOKEN_A })).status).toBe(200);
  });

  it('shows the task-sync queue in all and per client (named by a digest, never the token), and jobs by status', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    upstream = await startFakeUpstream(async () => {
      await held;
      return { status: 200, body: { ok: true } };
    });
    // Two tokens: each may have half of the 8 calls running.
    app = await startTestApp({ API_TOKENS: `${TOKEN_A},${TOKEN_B}`, TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/` });
    const webhookUrl = `${upstream.url}/hooks/sync`;
    const records = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
    const created = await api(app.url, '/api/task-sync', { token: TOKEN_A, body: { webhookUrl, records } });
    expect(created.status).toBe(202);
    await waitFor(() => upstream!.inFlight === 4);

    const asA = await api(app.url, '/api/status', { token: TOKEN_A });
    expect(asA.status).toBe(200);
    const bytes = Buffer.byteLength(webhookUrl) + records.join('').length;
    expect(asA.json.taskSync).toEqual({
      queued: { records: 6, bytes },
      calls: { running: 4, waiting: 2 },
      clients: [{ client: expect.stringMatching(/^token:[0-9a-f]{12}$/), records: 6, bytes, running: 4, you: true }],
    });
    expect(asA.json.jobs).toEqual({ live: { queued: 0, running: 1 }, finishedSinceStart: {}, archived: 0 });
    const asB = await api(app.url, '/api/status', { token: TOKEN_B });
    expect(asB.json.taskSync.clients).toEqual([{ client: asA.json.taskSync.clients[0].client, records: 6, bytes, running: 4 }]);
    for (const body of [JSON.stringify(asA.json), JSON.stringify(asB.json)]) {
      expect(body).not.toContain(TOKEN_A);
      expect(body).not.toContain(TOKEN_B);
    }

    release();
    await waitForJob(app.url, created.json.jobId, 10_000, TOKEN_A);
    const after = await api(app.url, '/api/status', { token: TOKEN_B });
    expect(after.json.taskSync).toEqual({ queued: { records: 0, bytes: 0 }, calls: { running: 0, waiting: 0 }, clients: [] });
    expect(after.json.jobs).toEqual({ live: { queued: 0, running: 0 }, finishedSinceStart: { success: 1 }, archived: 1 });
    expect(after.json.uptimeSec).toBeGreaterThanOrEqual(0);
  });

  it('lists active approval runs by step and the failed ones (flow, run, stage, reason), newest first, across a restart', async () => {
    h = await startHarness({
      business: (call) => (call.body.ticket_id.startsWith('FAIL')
        ? { status: 200, body: { ticket_id: call.body.ticket_id, result: false, msg: 'no quota left', error: 'quota exhausted for alice' } }
        : { status: 200, body: { ticket_id: call.body.ticket_id, result: true, msg: 'ok' } }),
    });
    for (const code of ['FAIL-1', 'FAIL-2', 'OK-1']) {
      h.newInstance(code);
      await h.pendingAt(code, `t-${code}`, 'check_node');
      await h.waitForRun(code, (r) => r.status !== 'active' || r.steps.at(-1)?.step === 'waiting_approvers');
    }

    const status = async () => (await api(h!.app.url, '/api/status')).json;
    const before = await status();
    expect(before.approvals.active).toEqual([{ flow: 'admin-permission', step: 'waiting_approvers', runs: 1 }]);
    const expected = ['FAIL-2', 'FAIL-1'].map((runId) => ({
      flow: 'admin-permission',
      runId,
      stage: 'check',
      reason: 'quota exhausted for alice',
      at: expect.any(String),
    }));
    await waitFor(async () => ((await status()).approvals.recentFailures.length === 2 ? true : undefined));
    expect((await status()).approvals.recentFailures).toEqual(expected);

    await h.app.deps.store.flush(); // the note is written off the run's path; a crash right after it may lose the last one
    await h.restart();
    expect((await status()).approvals.recentFailures).toEqual(expected);
  });

  it("shows each poller's last run, without its source or target", async () => {
    ph = await startPollerHarness();
    await ph.writeFlow(guanceFlow(ph.guance.url));
    ph.guance.addIssue({ name: 'disk full', createAt: Math.floor(Date.now() / 1000) - 5 });
    expect((await ph.runNow()).status).toBe(200);
    const res = await api(ph.app.url, '/api/status');
    expect(res.json.pollers).toEqual([
      expect.objectContaining({
        id: 'guance-issues',
        scheduled: true,
        running: false,
        lastRun: expect.objectContaining({ trigger: 'manual', listed: 1, posted: 1, failed: 0 }),
        lastError: null,
        counts: expect.objectContaining({ runs: 1, posted: 1 }),
      }),
    ]);
    expect(Object.keys(res.json.pollers[0])).not.toContain('source');
    expect(JSON.stringify(res.json)).not.toContain(ph.guance.url);
  });
});

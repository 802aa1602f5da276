import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larkError } from './lark-emulator/emulator.js';
import { flowFile, startHarness, type Harness } from './helpers/approval-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, TOKEN, waitForJob } from './helpers/test-app.js';

/**
 * GET /metrics as Prometheus scrapes it: refused without the metrics token, and counters that
 * move when the service works (a task-sync job, a Lark event and its approval run, a poller run).
 */
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const FEED_CHAT = 'oc_feed_chat';

let h: Harness;
let feed: FakeUpstream;
let hooks: FakeUpstream;

beforeAll(async () => {
  const now = Date.now();
  feed = await startFakeUpstream(() => ({
    status: 200,
    body: { items: [{ id: 'i-1', title: 'disk full', at: now - 60_000 }, { id: 'i-2', title: 'cpu high', at: now - 30_000 }] },
  }));
  hooks = await startFakeUpstream();
  h = await startHarness({
    flow: (url) => flowFile(url, { execute: undefined }), // check only: a passed check ends the run as done
    moreFlows: () => ({
      'feed.json': {
        kind: 'poller',
        id: 'feed',
        name: 'Feed',
        schedule: '0 0 1 1 *',
        source: { type: 'http', url: `${feed.url}/items`, itemsPath: 'items', id: 'id', title: 'title', createdAt: 'at' },
        notify: { chatId: FEED_CHAT },
      },
    }),
    env: { METRICS_TOKEN, API_TOKENS: TOKEN, TASK_SYNC_ALLOWED_URLS: `${hooks.url}/hooks/` },
  });
  h.app.deps.pollers!.start();
});

afterAll(async () => {
  await h.app.deps.pollers?.stop(1_000);
  await h.close();
  await feed.close();
  await hooks.close();
});

async function scrape(): Promise<string> {
  const res = await fetch(`${h.app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The sum of the samples of `name` whose labels include `labels` (0 when there is none). */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

describe('GET /metrics', () => {
  it('refuses a scrape without the metrics token: none, a wrong one, an API token, a token in the query', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong-metrics-token-0000' }, { authorization: `Bearer ${TOKEN}` }, { authorization: METRICS_TOKEN }]) {
      const res = await fetch(`${h.app.url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(((await res.json()) as any).error.code).toBe('unauthorized');
    }
    expect((await fetch(`${h.app.url}/metrics?token=${METRICS_TOKEN}`)).status).toBe(401);
    expect(h.app.routes).toContainEqual({ method: 'GET', path: '/metrics', guard: 'metrics-token' });
  });

  it('is not served at all without METRICS_TOKEN (deny by default)', async () => {
    const app = await startTestApp();
    try {
      const res = await api(app.url, '/metrics', { token: 'anything-at-all-0123456789' });
      expect(res.status).toBe(401);
      expect(res.json.error.message).toMatch(/metrics are off: set METRICS_TOKEN/);
    } finally {
      await app.stop();
      await removeDir(app.dataDir);
    }
  });

  it('shows the counters moving as the service works, labelled by route template, never by raw path', async () => {
    const before = await scrape();

    // A task-sync job of two records, and a read of its status.
    const created = await api(h.app.url, '/api/task-sync', { body: { webhookUrl: `${hooks.url}/hooks/sync`, records: ['a', 'b'] } });
    expect(created.status).toBe(202);
    await waitForJob(h.app.url, created.json.jobId);
    // A path no route matches, with something a scanner might send.
    expect((await api(h.app.url, '/wp-admin/setup-config-7f3a.php')).status).toBe(404);

    // A Lark event: its approval run checks, approves and ends; the same event again is dropped.
    h.newInstance('INST-METRICS');
    expect((await h.pendingAt('INST-METRICS', 't-metrics', 'check_node', { uuid: 'event-metrics-1' })).status).toBe(200);
    await h.waitForRun('INST-METRICS', (r) => r.status === 'done');
    expect((await h.sendTaskEvent('INST-METRICS', 't-metrics', { uuid: 'event-metrics-1' })).status).toBe(200);

    // A poller run: Lark refuses the first card, takes the second.
    h.lark.failNext('POST /open-apis/im/v1/messages', larkError(400, 230001, 'Your request contains an invalid request parameter'));
    const run = await api(h.app.url, '/api/pollers/feed/run', { method: 'POST' });
    expect(run.json).toMatchObject({ posted: [{ itemId: 'i-2' }], failed: [{ itemId: 'i-1' }] });

    await h.app.deps.store.flush();
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);

    expect(moved('lark_bridge_http_requests_total', { method: 'POST', route: '/api/task-sync', status: '202' })).toBe(1);
    expect(moved('lark_bridge_http_requests_total', { method: 'GET', route: '/api/task-sync/status/:jobId', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(moved('lark_bridge_http_requests_total', { route: '(unmatched)', status: '404' })).toBe(1);
    expect(moved('lark_bridge_http_requests_total', { method: 'POST', route: '/api/v1/lark/callback', status: '200' })).toBe(2);
    expect(moved('lark_bridge_http_request_duration_seconds_count', { method: 'POST', route: '/api/task-sync' })).toBe(1);
    expect(after).not.toContain(created.json.jobId);
    expect(after).not.toContain('wp-admin');

    expect(moved('lark_bridge_task_sync_jobs_finished_total', { status: 'success' })).toBe(1);
    expect(moved('lark_bridge_upstream_request_duration_seconds_count', { purpose: 'task_sync', result: 'success' })).toBe(2);
    expect(moved('lark_bridge_upstream_request_duration_seconds_count', { purpose: 'business', result: 'success' })).toBe(1);
    expect(moved('lark_bridge_upstream_request_duration_seconds_count', { purpose: 'poller', result: 'success' })).toBe(1);

    expect(moved('lark_bridge_lark_api_calls_total', { api: 'approval.instance.get', code: '0' })).toBeGreaterThanOrEqual(2);
    expect(moved('lark_bridge_lark_api_calls_total', { api: 'approval.task.approve', code: '0' })).toBe(1);
    expect(moved('lark_bridge_lark_api_calls_total', { api: 'im.message.create', code: '230001' })).toBe(1);
    expect(moved('lark_bridge_lark_api_calls_total', { api: 'im.message.create', code: '0' })).toBe(2); // the progress card and the second feed card
    expect(moved('lark_bridge_lark_api_duration_seconds_count', { api: 'approval.task.approve' })).toBe(1);

    expect(moved('lark_bridge_approval_runs_ended_total', { flow: 'admin-permission', state: 'done' })).toBe(1);
    expect(moved('lark_bridge_lark_event_duplicates_total', { kind: 'event' })).toBe(1);
    expect(moved('lark_bridge_poller_runs_total', { poller: 'feed', result: 'error' })).toBe(1);
    expect(moved('lark_bridge_poller_items_posted_total', { poller: 'feed' })).toBe(1);
    expect(moved('lark_bridge_poller_items_failed_total', { poller: 'feed' })).toBe(1);
    expect(moved('lark_bridge_store_commit_duration_seconds_count')).toBeGreaterThan(0);
    expect(moved('lark_bridge_store_commit_bytes_total')).toBeGreaterThan(0);

    // Levels read at scrape time.
    expect(value(after, 'lark_bridge_task_sync_queued_records')).toBe(0);
    expect(value(after, 'lark_bridge_task_sync_jobs', { status: 'running' })).toBe(0);
    expect(value(after, 'lark_bridge_flows', { kind: 'approval' })).toBe(1);
    expect(value(after, 'lark_bridge_flows', { kind: 'poller' })).toBe(1);
    expect(value(after, 'lark_bridge_flow_files_invalid')).toBe(0);
    expect(after).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(after).toMatch(/^# HELP lark_bridge_task_sync_calls /m);
  });
});

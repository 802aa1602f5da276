import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, startFakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitForJob, type TestApp } from './helpers/test-app.js';

/** The task-sync allow-list end to end: what is refused is never called, what is called is what was checked. */
describe('allow-list, through POST /api/task-sync (loopback only)', () => {
  let allowed: FakeUpstream;
  let other: FakeUpstream;
  let v6: FakeUpstream;
  let app: TestApp;

  beforeAll(async () => {
    allowed = await startFakeUpstream();
    other = await startFakeUpstream();
    v6 = await new FakeUpstream().start('::1');
    app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${allowed.url}/hooks/,${v6.url}/hooks/`, TASK_SYNC_RETRIES: '0' });
  });
  afterAll(async () => {
    await app.stop();
    await removeDir(app.dataDir);
    await Promise.all([allowed.close(), other.close(), v6.close()]);
  });
  afterEach(() => {
    allowed.handler = () => ({ status: 200, body: { ok: true } });
  });

  const port = (u: string) => new URL(u).port;
  const refuse = async (webhookUrl: string, reason: RegExp) => {
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl, records: ['r1'] } });
    expect(res.status, webhookUrl).toBe(400);
    expect(res.json.error.message, webhookUrl).toMatch(reason);
  };

  it('refuses dot segments, encoded dots, other ports, userinfo, a trailing dot and other IP forms; nothing is called', async () => {
    const p = port(allowed.url);
    await refuse(`${allowed.url}/hooks/../admin`, /not in the allow-list/);
    await refuse(`${allowed.url}/hooks/%2e%2e/admin`, /not in the allow-list/);
    await refuse(`${allowed.url}/hooks/..%2fadmin`, /percent-encoded/);
    await refuse(`http://127.0.0.1:${port(other.url)}/hooks/a`, /not in the allow-list/);
    await refuse(`http://user:pw@127.0.0.1:${p}/hooks/a`, /credentials/);
    await refuse(`http://user@127.0.0.1:${p}/hooks/a`, /credentials/);
    await refuse(`http://localhost.:${p}/hooks/a`, /not in the allow-list/);
    await refuse(`http://[::ffff:127.0.0.1]:${p}/hooks/a`, /not in the allow-list/);
    await refuse(`http://[::1]:${p}/hooks/a`, /not in the allow-list/);
    expect(allowed.calls).toHaveLength(0);
    expect(other.calls).toHaveLength(0);
    expect(v6.calls).toHaveLength(0);
  });

  it('calls the normalised URL for an equivalent IPv6 spelling', async () => {
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `http://[0:0:0:0:0:0:0:1]:${port(v6.url)}/hooks/x/../v6`, records: ['r6'] } });
    expect(res.status).toBe(202);
    expect((await waitForJob(app.url, res.json.jobId)).status).toBe('success');
    expect(v6.calls.map((c) => c.path)).toEqual(['/hooks/v6']);
  });

  it('never follows a redirect to another host: the record is an error and the other host gets nothing', async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      allowed.handler = () => ({ status, headers: { location: `${other.url}/hooks/stolen` }, body: { moved: true } });
      const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${allowed.url}/hooks/r`, records: [`rec-${status}`] } });
      const job = await waitForJob(app.url, res.json.jobId);
      expect(job.status, String(status)).toBe('error');
      expect(job.results[0]).toMatchObject({ status: 'error', httpStatus: status, attempts: 1, error: `upstream answered HTTP ${status}` });
    }
    expect(allowed.calls).toHaveLength(5);
    expect(other.calls).toHaveLength(0);
  });
});

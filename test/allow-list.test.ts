import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createUrlAllowList } from '../src/jobs/allow-list.js';
import { FakeUpstream, startFakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitForJob, type TestApp } from './helpers/test-app.js';

const FEISHU = 'https://open.feishu.cn/anycross/trigger/callback/';

/** The reason assertAllowed gives, or "ok" with the URL it would call. */
function verdict(prefixes: string[], url: string): string {
  try {
    return `ok ${createUrlAllowList(prefixes)(url).href}`;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('allow-list, as a function (no call is made)', () => {
  it('folds host case and default ports, but never path case', () => {
    expect(verdict([FEISHU], 'https://OPEN.Feishu.CN/anycross/trigger/callback/abc')).toBe(`ok ${FEISHU}abc`);
    expect(verdict(['https://Open.Feishu.CN/anycross/trigger/callback/'], `${FEISHU}abc`)).toBe(`ok ${FEISHU}abc`);
    expect(verdict([FEISHU], 'https://open.feishu.cn:443/anycross/trigger/callback/abc')).toBe(`ok ${FEISHU}abc`);
    expect(verdict(['http://127.0.0.1/hooks/'], 'http://127.0.0.1:80/hooks/a')).toBe('ok http://127.0.0.1/hooks/a');
    expect(verdict([FEISHU], 'https://open.feishu.cn:8443/anycross/trigger/callback/abc')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'http://open.feishu.cn/anycross/trigger/callback/abc')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/ANYCROSS/trigger/callback/abc')).toMatch(/not in the allow-list/);
  });

  it('refuses a trailing dot, look-alike hosts and other hosts', () => {
    expect(verdict([FEISHU], 'https://open.feishu.cn./anycross/trigger/callback/abc')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://open.feishu.cn.evil.test/anycross/trigger/callback/abc')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://evil.test/anycross/trigger/callback/abc?https://open.feishu.cn/')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://evil.test#@open.feishu.cn/anycross/trigger/callback/abc')).toMatch(/not in the allow-list/);
  });

  it('refuses userinfo in every spelling', () => {
    for (const url of [
      'https://user:pw@open.feishu.cn/anycross/trigger/callback/abc',
      'https://user@open.feishu.cn/anycross/trigger/callback/abc',
      'https://:pw@open.feishu.cn/anycross/trigger/callback/abc',
      'https://@open.feishu.cn/anycross/trigger/callback/abc',
      'https://open.feishu.cn@evil.test/anycross/trigger/callback/abc',
    ]) {
      expect(verdict([FEISHU], url), url).toMatch(/credentials in the URL are not allowed/);
    }
  });

  it('resolves dot segments before comparing, and refuses encoded separators', () => {
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/../../admin')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/%2e%2e/%2E%2E/admin')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/.%2e/admin')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback\\..\\..\\admin')).toMatch(/not in the allow-list/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/..%2f..%2fadmin')).toMatch(/percent-encoded/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/..%5C..%5Cadmin')).toMatch(/percent-encoded/);
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/a%2Eb')).toMatch(/percent-encoded/);
    // a dot segment that stays inside the prefix is fine
    expect(verdict([FEISHU], 'https://open.feishu.cn/anycross/trigger/callback/x/../abc')).toBe(`ok ${FEISHU}abc`);
  });

  it('matches a prefix without a trailing slash segment by segment', () => {
    const exact = ['http://127.0.0.1:8080/hooks/one'];
    expect(verdict(exact, 'http://127.0.0.1:8080/hooks/one')).toBe('ok http://127.0.0.1:8080/hooks/one');
    expect(verdict(exact, 'http://127.0.0.1:8080/hooks/one/sub')).toBe('ok http://127.0.0.1:8080/hooks/one/sub');
    expect(verdict(exact, 'http://127.0.0.1:8080/hooks/oneother')).toMatch(/not in the allow-list/);
    expect(verdict(exact, 'http://127.0.0.1:8080/hooks/on')).toMatch(/not in the allow-list/);
  });

  it('compares IP addresses in their normalised form', () => {
    const v6 = ['http://[::1]:8080/hooks/'];
    expect(verdict(v6, 'http://[0:0:0:0:0:0:0:1]:8080/hooks/a')).toBe('ok http://[::1]:8080/hooks/a');
    expect(verdict(v6, 'http://[0000::0001]:8080/hooks/a')).toBe('ok http://[::1]:8080/hooks/a');
    expect(verdict(v6, 'http://[::ffff:127.0.0.1]:8080/hooks/a')).toMatch(/not in the allow-list/);
    expect(verdict(v6, 'http://127.0.0.1:8080/hooks/a')).toMatch(/not in the allow-list/);
    const v4 = ['http://127.0.0.1:8080/hooks/'];
    expect(verdict(v4, 'http://[::ffff:127.0.0.1]:8080/hooks/a')).toMatch(/not in the allow-list/);
    expect(verdict(v4, 'http://[::1]:8080/hooks/a')).toMatch(/not in the allow-list/);
    expect(verdict(v4, 'http://2130706433:8080/hooks/a')).toBe('ok http://127.0.0.1:8080/hooks/a');
    expect(verdict(v4, 'http://127.1:8080/hooks/a')).toBe('ok http://127.0.0.1:8080/hooks/a');
    expect(verdict(v4, 'http://127.0.0.2:8080/hooks/a')).toMatch(/not in the allow-list/);
  });

  it('drops the fragment from the URL it returns', () => {
    expect(verdict([FEISHU], `${FEISHU}abc?x=1#frag`)).toBe(`ok ${FEISHU}abc?x=1`);
  });
});

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

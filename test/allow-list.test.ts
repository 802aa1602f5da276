import { describe, expect, it } from 'vitest';
import { createUrlAllowList } from '../src/jobs/allow-list.js';

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

  it('allows a URL under any one of several prefixes', () => {
    const two = [FEISHU, 'http://127.0.0.1:8080/hooks/'];
    expect(verdict(two, 'http://127.0.0.1:8080/hooks/a')).toBe('ok http://127.0.0.1:8080/hooks/a');
    expect(verdict(two, `${FEISHU}abc`)).toBe(`ok ${FEISHU}abc`);
    expect(verdict(two, 'http://127.0.0.1:8080/other/a')).toMatch(/not in the allow-list/);
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

  it('refuses what is not an absolute URL, quoting at most 80 characters of it', () => {
    expect(verdict([FEISHU], 'not a url')).toBe('webhookUrl: "not a url" is not an absolute URL');
    expect(verdict([FEISHU], '/anycross/trigger/callback/abc')).toBe('webhookUrl: "/anycross/trigger/callback/abc" is not an absolute URL');
    const eighty = `x${'y'.repeat(79)}`;
    expect(verdict([FEISHU], eighty)).toBe(`webhookUrl: "${eighty}" is not an absolute URL`);
    expect(verdict([FEISHU], `${eighty}z`)).toBe(`webhookUrl: "${eighty}…" is not an absolute URL`);
  });

  it('refuses schemes other than http and https, naming the scheme', () => {
    expect(verdict([FEISHU], 'ftp://open.feishu.cn/anycross/trigger/callback/abc')).toBe('webhookUrl: scheme "ftp" is not allowed; use http or https');
    expect(verdict(['file:///hooks/'], 'file:///hooks/a')).toBe('webhookUrl: scheme "file" is not allowed; use http or https');
    expect(verdict([FEISHU], 'javascript:alert(1)')).toBe('webhookUrl: scheme "javascript" is not allowed; use http or https');
  });

  it('refuses userinfo that the URL parser keeps or drops: empty, behind leading spaces', () => {
    for (const url of [
      'https://:@open.feishu.cn/anycross/trigger/callback/abc',
      ' https://user@open.feishu.cn/anycross/trigger/callback/abc',
      '\thttps://:pw@open.feishu.cn/anycross/trigger/callback/abc',
    ]) {
      expect(verdict([FEISHU], url), url).toBe('webhookUrl: credentials in the URL are not allowed');
    }
  });

  it('accepts "@" and ":" after the host: in the path and the query they are not credentials', () => {
    expect(verdict([FEISHU], `${FEISHU}abc?next=x:y@z`)).toBe(`ok ${FEISHU}abc?next=x:y@z`);
    expect(verdict([FEISHU], `${FEISHU}user:pw@abc`)).toBe(`ok ${FEISHU}user:pw@abc`);
  });

  it('lists the configured prefixes, as written, with a refusal', () => {
    const prefixes = [FEISHU, 'http://127.0.0.1:8080/hooks/one'];
    try {
      createUrlAllowList(prefixes)('https://evil.test/anycross/trigger/callback/abc');
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'bad_request', message: 'webhookUrl: not in the allow-list (TASK_SYNC_ALLOWED_URLS)', details: { allowedPrefixes: prefixes } });
    }
  });
});

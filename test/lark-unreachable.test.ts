import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyLarkFailure } from '../src/lark/lark-error.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN } from './helpers/test-app.js';

// A 64-character label cannot be put in a DNS query: getaddrinfo fails at once with ENOTFOUND,
// and no packet leaves the machine.
const UNRESOLVABLE = `${'a'.repeat(64)}.example`;

describe('a Lark domain that does not resolve', () => {
  it('is classified as not reached (dns), not as a refusal', () => {
    const dns = classifyLarkFailure(Object.assign(new Error(`getaddrinfo ENOTFOUND ${UNRESOLVABLE}`), { code: 'ENOTFOUND', hostname: UNRESOLVABLE }));
    expect(dns).toMatchObject({ code: -1, unreachable: 'dns', retryable: true, larkMsg: `cannot resolve ${UNRESOLVABLE} (ENOTFOUND): check LARK_DOMAIN and this host's DNS` });
    const refused = classifyLarkFailure(Object.assign(new Error('Request failed with status code 400'), { response: { status: 400, data: { code: 230002, msg: 'bot not in chat' } } }));
    expect(refused.unreachable).toBeUndefined();
    expect(classifyLarkFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })).unreachable).toBe('network');
  });

  describe('POST /api/endpoint (the real service)', () => {
    let dir: string;
    let service: ServiceProcess;
    beforeAll(async () => {
      dir = await tempDir('lark-bridge-dns-');
      await mkdir(join(dir, 'flows'));
      service = await spawnService({
        DATA_DIR: join(dir, 'data'),
        FLOWS_DIR: join(dir, 'flows'),
        API_TOKENS: TOKEN,
        LARK_APP_ID: 'cli_0123456789abcdef',
        LARK_APP_SECRET: 'dns-test-app-secret',
        LARK_DOMAIN: `https://${UNRESOLVABLE}`,
        CHAT_ID: 'oc_dns_test',
      });
    });
    afterAll(async () => {
      await service?.kill('SIGTERM');
      await removeDir(dir);
    });

    it('says Lark could not be reached because its domain does not resolve, not that Lark refused the message', async () => {
      const res = await api(service.url, '/api/endpoint', { body: { summaryText: 'disk full on db-1' } });
      expect(res.status).toBe(502);
      expect(res.json.error.message).toBe(`could not reach Lark for oc_dns_test: cannot resolve ${UNRESOLVABLE} (ENOTFOUND): check LARK_DOMAIN and this host's DNS; 1 of 1 chat(s) not sent`);
      expect(res.json.error.message).not.toMatch(/refused/);
      expect(res.json.error.details.chats).toEqual([expect.objectContaining({ chatId: 'oc_dns_test', status: 'failed', unreachable: 'dns' })]);
    }, 30_000);
  });
});

import { createCipheriv, createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FlowRegistry } from '../src/flows/flow-registry.js';
import { decryptOptions } from '../src/flows/options-encryption.js';
import { externalOptionsRoutes } from '../src/flows/options-routes.js';
import { listRoutes } from '../src/http/route.js';
import { silentLogger } from '../src/log.js';
import type { UpstreamClient, UpstreamOutcome } from '../src/upstream/client.js';
import { postJson, servedPerTest, serveRoutes } from './helpers/serve-routes.js';
import { removeDir, tempDir } from './helpers/test-app.js';

/**
 * GET|POST /field/:uri behind its `options-token` guard, over a real flow registry and a
 * scripted business URL: who gets options, what is relayed, and what Lark is answered.
 * https://open.feishu.cn/document/server-docs/approval-v4/approval/associate-external-options
 */
const KEY = 'widget-key-from-the-admin';
const ITEMS = [
  { id: 'viewer', text: 'Read only' },
  { id: 'admin', text: '管理员' },
];
const BUSINESS_URL = 'https://biz.example.test/options';

let dir: string;
let flows: FlowRegistry;
let answer: UpstreamOutcome;
const relayed: Array<{ url: string; body: unknown; headers: Record<string, string>; timeoutMs: number; keepBytes?: number }> = [];
const upstream: UpstreamClient = {
  async postJson(url, body, headers, timeoutMs, keepBytes) {
    relayed.push({ url, body, headers, timeoutMs, keepBytes });
    return answer;
  },
  get: async () => {
    throw new Error('not used: options only POST');
  },
  close: async () => undefined,
};

beforeAll(async () => {
  dir = await tempDir('options-routes-');
  const flow = {
    kind: 'approval',
    id: 'roles',
    name: 'Roles',
    approvalCode: 'AC-OPTIONS',
    execute: { url: 'https://biz.example.test/grant' },
    secret: 'a-business-secret-of-some-length',
    options: {
      fixed: { items: ITEMS },
      fixedWithToken: { items: ITEMS, token: 'fixed-token' },
      remote: { url: BUSINESS_URL, token: 'remote-token', timeoutMs: 1500 },
      sealed: { url: BUSINESS_URL, token: 'sealed-token', encryptKey: KEY },
    },
  };
  await writeFile(join(dir, 'roles.json'), JSON.stringify(flow));
  flows = new FlowRegistry(dir, {}, silentLogger(), undefined, 'assistant01');
  await flows.loadAll();
  expect(flows.problems()).toEqual([]);
});
const served = servedPerTest(() => serveRoutes(externalOptionsRoutes(flows, upstream)));
const url = async (path: string) => `${served.get().url}${path}`;
afterAll(async () => {
  await removeDir(dir);
});
beforeEach(() => {
  relayed.length = 0;
  answer = { kind: 'success', httpStatus: 200, response: JSON.stringify(ITEMS), durationMs: 1 };
});

const field = async (uri: string, body: unknown) => postJson(await url(`/field/${uri}`), body);
const result = (locale = 'zh_cn') => ({
  options: [
    { id: 'viewer', value: '@i18n@1', isDefault: false },
    { id: 'admin', value: '@i18n@2', isDefault: false },
  ],
  i18nResources: [{ locale, isDefault: true, texts: { '@i18n@1': 'Read only', '@i18n@2': '管理员' } }],
  hasMore: false,
  nextPageToken: '',
});
const success = (locale?: string) => ({ status: 200, body: { code: 0, msg: 'success!', data: { result: result(locale) } } });

/** Lark's documented Java encrypter: a zero IV over 16 zero bytes + the text. */
function larkEncrypt(plain: string, key: string): string {
  const c = createCipheriv('aes-256-cbc', createHash('sha256').update(key).digest(), Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.concat([Buffer.alloc(16), Buffer.from(plain)])), c.final()]).toString('base64');
}

describe('the options routes', () => {
  it('are GET and POST /field/:uri, guarded by options-token', () => {
    expect(listRoutes(externalOptionsRoutes(new FlowRegistry(dir, {}, silentLogger()), upstream))).toEqual([
      { method: 'GET', path: '/field/:uri', guard: 'options-token' },
      { method: 'POST', path: '/field/:uri', guard: 'options-token' },
    ]);
  });
});

describe('which options source', () => {
  it('answers 404 naming an options uri no flow declares, prototype-named ones included', async () => {
    for (const uri of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const r = await field(uri, { token: 'remote-token' });
      expect(r.status, uri).toBe(404);
      expect(r.body.error.message).toBe(`no flow declares options "${uri}"`);
    }
    expect(relayed).toHaveLength(0);
  });
});

describe('the token', () => {
  it('is not asked of a fixed list declared without one; a fixed list is answered without any call', async () => {
    expect(await field('fixed', {})).toEqual(success());
    expect(await field('fixed', { token: 'whatever' })).toEqual(success());
    expect(relayed).toEqual([]);
  });

  it('is compared exactly, before anything is relayed', async () => {
    for (const token of [undefined, '', 'remote-toke', 'remote-token ', 'REMOTE-TOKEN', 'fixed-token']) {
      const r = await field('remote', { token, user_id: 'u1' });
      expect(r.status, String(token)).toBe(401);
      expect(r.body.error.message).toBe('options token does not match');
    }
    expect((await field('fixedWithToken', {})).status).toBe(401);
    // A token that is not a string is no token.
    expect((await field('remote', { token: ['remote-token'] })).status).toBe(401);
    expect(relayed).toHaveLength(0);
    expect(await field('fixedWithToken', { token: 'fixed-token' })).toEqual(success());
  });

  it('is read from the query string of a GET', async () => {
    expect((await fetch(await url('/field/remote?token=wrong'))).status).toBe(401);
    const r = await fetch(await url('/field/remote?token=remote-token&locale=en-US'));
    expect(r.status).toBe(200);
    expect((await r.json()) as unknown).toEqual(success('en_us').body);
    expect(relayed.map((c) => c.body)).toEqual([{ token: 'remote-token', locale: 'en-US' }]);
  });
});

describe('relaying to the business URL', () => {
  it('POSTs Lark’s request as it came, with the source’s timeout and a 256 KiB cap, and maps the answer', async () => {
    const request = { token: 'remote-token', user_id: 'u1', linkage_params: { dept: 'ops' }, query: 'ad', page_token: '', extra: 'kept' };
    expect(await field('remote', request)).toEqual(success());
    expect(relayed).toEqual([{ url: BUSINESS_URL, body: request, headers: {}, timeoutMs: 1500, keepBytes: 256 * 1024 }]);
  });

  it('names the texts by the request’s locale, lower case with "_", zh_cn by default', async () => {
    expect(await field('remote', { token: 'remote-token', locale: 'en-US' })).toEqual(success('en_us'));
    expect(await field('remote', { token: 'remote-token', locale: 'ja_JP' })).toEqual(success('ja_jp'));
    expect(await field('remote', { token: 'remote-token' })).toEqual(success('zh_cn'));
  });

  it('answers Lark’s format with code 1 when the business URL fails or answers something else', async () => {
    // A failing status with a body that looks like options is still a failure.
    answer = { kind: 'failure', retryable: true, httpStatus: 500, response: JSON.stringify(ITEMS), error: 'upstream answered HTTP 500', durationMs: 1 };
    expect(await field('remote', { token: 'remote-token' })).toEqual({ status: 200, body: { code: 1, msg: 'options source failed: upstream answered HTTP 500' } });
    answer = { kind: 'timeout', error: 'no answer within 1500 ms', durationMs: 1500 };
    expect(await field('remote', { token: 'remote-token' })).toEqual({ status: 200, body: { code: 1, msg: 'options source failed: no answer within 1500 ms' } });
    for (const response of ['{"options":[]}', '[{"id":"a"}]', '[{"id":"","text":"x"}]', 'not json']) {
      answer = { kind: 'success', httpStatus: 200, response, durationMs: 1 };
      expect(await field('remote', { token: 'remote-token' }), response).toEqual({ status: 200, body: { code: 1, msg: 'options source failed: answer is not [{id, text}]' } });
    }
  });
});

describe('a source with an encryption Key', () => {
  it('opens an encrypted request before reading its token, and relays it decrypted', async () => {
    const r = await field('sealed', { encrypt: larkEncrypt(JSON.stringify({ token: 'sealed-token', user_id: 'u9' }), KEY) });
    expect(r.status).toBe(200);
    expect(JSON.parse(decryptOptions(r.body.data.result, KEY))).toEqual(result());
    expect(relayed.map((c) => c.body)).toEqual([{ token: 'sealed-token', user_id: 'u9' }]);
  });

  it('refuses a request sealed with another Key, saying so, and one whose sealed token is wrong', async () => {
    const wrongKey = await field('sealed', { encrypt: larkEncrypt(JSON.stringify({ token: 'sealed-token' }), 'not-the-key') });
    expect(wrongKey.status).toBe(401);
    expect(wrongKey.body.error.message).toBe('options request could not be decrypted with the Key of this options source');
    const notJson = await field('sealed', { encrypt: larkEncrypt('not json', KEY) });
    expect(notJson.body.error.message).toBe('options request could not be decrypted with the Key of this options source');
    const wrongToken = await field('sealed', { encrypt: larkEncrypt(JSON.stringify({ token: 'nope' }), KEY) });
    expect(wrongToken.body.error.message).toBe('options token does not match');
    expect(relayed).toHaveLength(0);
  });

  it('answers data.result encrypted, a fresh IV each time', async () => {
    const a = await field('sealed', { token: 'sealed-token' });
    const b = await field('sealed', { token: 'sealed-token' });
    expect(typeof a.body.data.result).toBe('string');
    expect(a.body.data.result).not.toBe(b.body.data.result);
    expect(JSON.parse(decryptOptions(b.body.data.result, KEY))).toEqual(result());
  });

  it('is not applied to a source without a Key: an "encrypt" field there is just a field', async () => {
    const r = await field('remote', { encrypt: larkEncrypt(JSON.stringify({ token: 'remote-token' }), KEY) });
    expect(r.status).toBe(401);
    expect(r.body.error.message).toBe('options token does not match');
  });
});

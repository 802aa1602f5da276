import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseFlowText } from '../src/flows/load-flows.js';
import { flowFile, startHarness, type Harness } from './helpers/approval-harness.js';
import { waitFor } from './helpers/test-app.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const OPTIONS_KEY = 'widget-key-from-the-approval-admin';

/**
 * Decrypts as Lark's documented decrypter does: base64 → the first 16 bytes are the IV →
 * AES-256-CBC with SHA-256(Key), PKCS#7.
 * https://open.feishu.cn/document/server-docs/approval-v4/approval/associate-external-options
 */
function larkDecrypt(text: string, key: string): string {
  const buf = Buffer.from(text, 'base64');
  const decipher = createDecipheriv('aes-256-cbc', createHash('sha256').update(key).digest(), buf.subarray(0, 16));
  return Buffer.concat([decipher.update(buf.subarray(16)), decipher.final()]).toString('utf8');
}

/** Lark's documented Java encrypter: a zero IV over 16 zero bytes + the plain text, PKCS#5. */
function larkEncryptLikeJava(plain: string, key: string): string {
  const cipher = createCipheriv('aes-256-cbc', createHash('sha256').update(key).digest(), Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.concat([Buffer.alloc(16), Buffer.from(plain)])), cipher.final()]).toString('base64');
}

const post = (path: string, body: unknown) =>
  fetch(`${h.app.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

const roleOptions = [
  { id: 'viewer', text: 'Read only' },
  { id: 'admin', text: '管理员' },
];
const expectedResult = {
  options: [
    { id: 'viewer', value: '@i18n@1', isDefault: false },
    { id: 'admin', value: '@i18n@2', isDefault: false },
  ],
  i18nResources: [{ locale: 'zh_cn', isDefault: true, texts: { '@i18n@1': 'Read only', '@i18n@2': '管理员' } }],
  hasMore: false,
  nextPageToken: '',
};

describe('external options fed by a business URL', () => {
  it('refuses, at load, a url source without a token: file, JSON path and reason', async () => {
    const flow = { ...flowFile('https://admin.example.com'), options: { roles: { url: 'https://admin.example.com/options' } } };
    const r = parseFlowText('admin.json', JSON.stringify(flow), { TEST_BUSINESS_SECRET: 's'.repeat(20) });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems).toEqual([
      { file: 'admin.json', path: 'options.roles.token', message: 'an options source with a url needs a token (the Token set on the widget in the approval admin)' },
    ]);
    // Served by the running service: the file is refused and nothing is relayed.
    h = await startHarness();
    await writeFile(join(h.flowsDir, 'admin-permission.json'), JSON.stringify({ ...flowFile(h.business.url), options: { roles: { url: `${h.business.url}/options` } } }));
    await waitFor(() => h.app.deps.flows.problems().some((p) => p.path === 'options.roles.token'));
    expect((await post('/field/roles', { user_id: 'u1' })).status).toBe(404);
    expect(h.business.calls).toHaveLength(0);
  });

  it('checks the token before calling the business URL', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { options: { roles: { url: `${url}/options`, token: 'opt-token-123' } } }) });
    h.business.handler = () => ({ status: 200, body: roleOptions });
    for (const token of ['wrong', '', undefined, 'opt-token-12', 'opt-token-1234']) {
      const res = await post('/field/roles', { user_id: 'u1', token, locale: 'zh_cn' });
      expect(res.status, String(token)).toBe(401);
    }
    const viaQuery = await fetch(`${h.app.url}/field/roles?token=nope`);
    expect(viaQuery.status).toBe(401);
    expect(h.business.calls).toHaveLength(0);

    const ok = await post('/field/roles', { user_id: 'u1', token: 'opt-token-123', locale: 'zh_cn', linkage_params: { dept: 'ops' } });
    expect(ok).toEqual({ status: 200, body: { code: 0, msg: 'success!', data: { result: expectedResult } } });
    expect(h.business.calls).toHaveLength(1);
    expect(h.business.calls[0]!.body).toMatchObject({ user_id: 'u1', linkage_params: { dept: 'ops' } });
  });
});

describe('external options with an encryption Key on the widget', () => {
  it('answers data.result encrypted the way Lark decrypts it', async () => {
    process.env.TEST_OPTIONS_KEY = OPTIONS_KEY;
    h = await startHarness({ flow: (url) => flowFile(url, { options: { roles: { url: `${url}/options`, token: 'opt-token-123', encryptKey: '${env:TEST_OPTIONS_KEY}' } } }) });
    h.business.handler = () => ({ status: 200, body: roleOptions });
    const res = await post('/field/roles', { user_id: 'u1', token: 'opt-token-123', locale: 'zh_cn' });
    expect(res.status).toBe(200);
    expect(res.body.code).toBe(0);
    expect(typeof res.body.data.result).toBe('string');
    expect(JSON.parse(larkDecrypt(res.body.data.result, OPTIONS_KEY))).toEqual(expectedResult);
    // Another key does not give it back: usually the padding check throws; 1 time in ~256 the
    // padding passes by chance (the IV is random) and the text is noise, so test the outcome.
    const withOtherKey = (() => {
      try {
        return larkDecrypt(res.body.data.result, 'another-key');
      } catch {
        return 'refused';
      }
    })();
    expect(withOtherKey).not.toBe(JSON.stringify(expectedResult));
    // A random IV each time: the same answer never encrypts to the same text twice.
    const again = await post('/field/roles', { user_id: 'u1', token: 'opt-token-123', locale: 'zh_cn' });
    expect(again.body.data.result).not.toBe(res.body.data.result);
  });

  it('opens an encrypted request with the same Key before checking its token', async () => {
    process.env.TEST_OPTIONS_KEY = OPTIONS_KEY;
    h = await startHarness({ flow: (url) => flowFile(url, { options: { roles: { token: 'opt-token-123', encryptKey: '${env:TEST_OPTIONS_KEY}', items: roleOptions } } }) });
    const good = await post('/field/roles', { encrypt: larkEncryptLikeJava(JSON.stringify({ token: 'opt-token-123', locale: 'zh_cn' }), OPTIONS_KEY) });
    expect(good.status).toBe(200);
    expect(JSON.parse(larkDecrypt(good.body.data.result, OPTIONS_KEY))).toEqual(expectedResult);
    const wrongToken = await post('/field/roles', { encrypt: larkEncryptLikeJava(JSON.stringify({ token: 'nope' }), OPTIONS_KEY) });
    expect(wrongToken.status).toBe(401);
    const wrongKey = await post('/field/roles', { encrypt: larkEncryptLikeJava(JSON.stringify({ token: 'opt-token-123' }), 'not-the-key') });
    expect(wrongKey.status).toBe(401);
    const garbage = await post('/field/roles', { encrypt: randomBytes(40).toString('base64') });
    expect(garbage.status).toBe(401);
  });
});

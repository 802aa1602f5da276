import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { larkError, startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { api, removeDir, startTestApp, type TestApp } from './helpers/test-app.js';

const APP_ID = 'cli_a1b2c3d4e5f60002';
const APP_SECRET = 'summary-secret';
let lark: LarkEmulator;
let app: TestApp;

beforeAll(async () => {
  lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
});
afterAll(() => lark.close());
afterEach(async () => {
  await app?.stop();
  await removeDir(app.dataDir);
  lark.calls.length = 0;
  lark.messages.clear();
});

const larkEnv = (extra: Record<string, string> = {}) => ({
  LARK_APP_ID: APP_ID,
  LARK_APP_SECRET: APP_SECRET,
  LARK_DOMAIN: lark.url,
  CHAT_ID: 'oc_main',
  PD_CHAT_ID: 'oc_pd',
  OPS_CHAT_ID: 'oc_ops',
  ...extra,
});

const sentPosts = () => lark.callsTo('POST', '/open-apis/im/v1/messages');

describe('POST /api/endpoint', () => {
  it('sends a rich-text post to CHAT_ID: lines become paragraphs, @ou_ ids become at tags', async () => {
    app = await startTestApp(larkEnv());
    const res = await api(app.url, '/api/endpoint', {
      body: { summaryText: 'Deploy finished @ou_abc123 please check\nSecond line\n@ou_def456', title: 'Release 1.2' },
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'success', targets: ['oc_main'], parts: 1 });
    expect(res.json.messages[0].messageId).toMatch(/^om_/);
    expect(res.json.chats).toEqual([{ chatId: 'oc_main', status: 'sent', messageIds: [res.json.messages[0].messageId] }]);

    const [call] = sentPosts();
    expect(call!.query).toEqual({ receive_id_type: 'chat_id' });
    expect(call!.headers.authorization).toMatch(/^Bearer t-/); // the SDK fetched a tenant token first
    expect(call!.body).toMatchObject({ receive_id: 'oc_main', msg_type: 'post', uuid: expect.any(String) });
    expect(JSON.parse(call!.body.content)).toEqual({
      zh_cn: {
        title: 'Release 1.2',
        content: [
          [
            { tag: 'text', text: 'Deploy finished ' },
            { tag: 'at', user_id: 'ou_abc123' },
            { tag: 'text', text: ' please check' },
          ],
          [{ tag: 'text', text: 'Second line' }],
          [{ tag: 'at', user_id: 'ou_def456' }],
        ],
      },
    });
    expect(lark.callsTo('POST', '/open-apis/auth/v3/tenant_access_token/internal')).toHaveLength(1);
  });

  it('adds PD_CHAT_ID and OPS_CHAT_ID when pd / ops are set', async () => {
    app = await startTestApp(larkEnv());
    const res = await api(app.url, '/api/endpoint', { body: { summaryText: 'x', pd: true, ops: 'true' } });
    expect(res.json.targets).toEqual(['oc_main', 'oc_pd', 'oc_ops']);
    expect(sentPosts().map((c) => c.body.receive_id)).toEqual(['oc_main', 'oc_pd', 'oc_ops']);
    // token fetched once and reused
    expect(lark.callsTo('POST', '/open-apis/auth/v3/tenant_access_token/internal')).toHaveLength(1);
  });

  it('answers 400 naming the missing chat variable, and sends nothing', async () => {
    app = await startTestApp(larkEnv({ PD_CHAT_ID: '' }));
    const res = await api(app.url, '/api/endpoint', { body: { summaryText: 'x', pd: true } });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/PD_CHAT_ID not set/);
    expect(sentPosts()).toHaveLength(0);
  });

  it('answers 400 for a missing or empty summaryText', async () => {
    app = await startTestApp(larkEnv());
    expect((await api(app.url, '/api/endpoint', { body: {} })).json.error.message).toMatch(/summaryText: is required/);
    expect((await api(app.url, '/api/endpoint', { body: { summaryText: '  ' } })).json.error.message).toMatch(/must not be empty/);
  });

  it('answers 502 with Lark’s code and message per chat when Lark refuses', async () => {
    app = await startTestApp(larkEnv({ CHAT_ID: 'oc_gone' }));
    lark.failNext('POST /open-apis/im/v1/messages', larkError(400, 230002, 'Bot/User can NOT be out of the chat.'));
    const res = await api(app.url, '/api/endpoint', { body: { summaryText: 'x' } });
    expect(res.status).toBe(502);
    expect(res.json.error).toMatchObject({
      code: 'upstream_failed',
      message: 'Lark refused the message to oc_gone (230002 Bot/User can NOT be out of the chat.); 1 of 1 chat(s) not sent',
      details: {
        status: 'failed',
        targets: ['oc_gone'],
        parts: 1,
        chats: [{ chatId: 'oc_gone', status: 'failed', messageIds: [], larkCode: 230002, larkMsg: 'Bot/User can NOT be out of the chat.' }],
      },
    });
  });

  it('treats HTTP 200 with a non-zero code as a failure', async () => {
    app = await startTestApp(larkEnv());
    lark.failNext('POST /open-apis/im/v1/messages', { status: 200, body: { code: 230006, msg: 'Bot ability is not activated.' } });
    const res = await api(app.url, '/api/endpoint', { body: { summaryText: 'x' } });
    expect(res.status).toBe(502);
    expect(res.json.error.details.chats[0]).toMatchObject({ status: 'failed', larkCode: 230006 });
  });

  it('retries a rate-limited send (429, code 99991400) with the same uuid', async () => {
    app = await startTestApp(larkEnv());
    lark.failNext('POST /open-apis/im/v1/messages', larkError(429, 99991400, 'request trigger frequency limit', { 'x-ogw-ratelimit-reset': '0' }));
    const res = await api(app.url, '/api/endpoint', { body: { summaryText: 'x' } });
    expect(res.status).toBe(200);
    const calls = sentPosts();
    expect(calls).toHaveLength(2);
    expect(calls[0]!.body.uuid).toBe(calls[1]!.body.uuid);
    expect(lark.messages.size).toBe(1);
  });

  it('answers 503 when Lark is not configured', async () => {
    app = await startTestApp({ CHAT_ID: 'oc_main' });
    const res = await api(app.url, '/api/endpoint', { body: { summaryText: 'x' } });
    expect(res.status).toBe(503);
    expect(res.json.error.message).toMatch(/LARK_APP_ID/);
  });
});

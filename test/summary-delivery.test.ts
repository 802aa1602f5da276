import { rm, writeFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { summaryToPost } from '../src/lark/post-content.js';
import { postRequestBytes, splitPostToFit } from '../src/summary/split-post.js';
import { larkError, startLarkEmulator, type LarkEmulator, type RecordedCall } from './lark-emulator/emulator.js';
import { api, removeDir, startTestApp, type TestApp } from './helpers/test-app.js';

const APP_ID = 'cli_a1b2c3d4e5f60003';
const APP_SECRET = 'summary-delivery-secret';
const CREATE = 'POST /open-apis/im/v1/messages';
let lark: LarkEmulator;
let app: TestApp | undefined;

beforeAll(async () => {
  lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
});
afterAll(() => lark.close());
afterEach(async () => {
  if (app) {
    await app.stop();
    await removeDir(app.dataDir);
    app = undefined;
  }
  lark.calls.length = 0;
  lark.messages.clear();
});

const start = async (extra: Record<string, string> = {}) => {
  app = await startTestApp({ LARK_APP_ID: APP_ID, LARK_APP_SECRET: APP_SECRET, LARK_DOMAIN: lark.url, CHAT_ID: 'oc_main', PD_CHAT_ID: 'oc_pd', OPS_CHAT_ID: 'oc_ops', API_TOKENS: 'tok-a,tok-b', ...extra });
  return app;
};
const post = (body: unknown, o: { key?: string; token?: string } = {}) =>
  api(app!.url, '/api/endpoint', { body, token: o.token ?? 'tok-a', headers: o.key ? { 'idempotency-key': o.key } : {} });
const creates = (): RecordedCall[] => lark.callsTo('POST', '/open-apis/im/v1/messages');
const messagesIn = (chatId: string) => [...lark.messages.values()].filter((m) => m.chat_id === chatId);
const textOf = (content: string) => (JSON.parse(content).zh_cn.content as Array<Array<{ tag: string; text?: string }>>).map((p) => p.map((e) => e.text ?? '').join(''));

describe('POST /api/endpoint with an Idempotency-Key', () => {
  it('answers per chat; a retry with the same key sends only to the chat that failed', async () => {
    await start();
    const body = { summaryText: 'Nightly sync done', pd: true, ops: true };
    lark.failNext(CREATE, larkError(400, 230002, 'Bot/User can NOT be out of the chat.'));
    const first = await post(body, { key: 'nightly-1' });
    expect(first.status).toBe(502);
    expect(first.json.error.details.status).toBe('partial');
    expect(first.json.error.details.chats).toEqual([
      { chatId: 'oc_main', status: 'failed', messageIds: [], larkCode: 230002, larkMsg: 'Bot/User can NOT be out of the chat.' },
      { chatId: 'oc_pd', status: 'sent', messageIds: [expect.stringMatching(/^om_/)] },
      { chatId: 'oc_ops', status: 'sent', messageIds: [expect.stringMatching(/^om_/)] },
    ]);
    expect(creates()).toHaveLength(3);

    const retry = await post(body, { key: 'nightly-1' });
    expect(retry.status).toBe(200);
    expect(retry.json.chats.map((c: any) => [c.chatId, c.status])).toEqual([['oc_main', 'sent'], ['oc_pd', 'sent'], ['oc_ops', 'sent']]);
    expect(retry.json.chats[1].messageIds).toEqual(first.json.error.details.chats[1].messageIds);
    expect(creates()).toHaveLength(4); // only oc_main was sent again
    for (const chat of ['oc_main', 'oc_pd', 'oc_ops']) expect(messagesIn(chat), chat).toHaveLength(1);
    // the refused send and its retry carried the same uuid, derived from the key (≤ 50 characters, Lark's limit)
    const mainCalls = creates().filter((c) => c.body.receive_id === 'oc_main');
    expect(mainCalls).toHaveLength(2);
    expect(mainCalls[0]!.body.uuid).toBe(mainCalls[1]!.body.uuid);
    expect(new Set(creates().map((c) => c.body.uuid)).size).toBe(3); // one uuid per chat
    for (const c of creates()) expect(c.body.uuid.length).toBeLessThanOrEqual(50);

    // a third call sends nothing and says it replayed
    const again = await post(body, { key: 'nightly-1' });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.json.messages).toEqual(retry.json.messages);
    expect(creates()).toHaveLength(4);
  });

  it('remembers what was sent across a restart', async () => {
    const env = { LARK_APP_ID: APP_ID, LARK_APP_SECRET: APP_SECRET, LARK_DOMAIN: lark.url, CHAT_ID: 'oc_main', PD_CHAT_ID: 'oc_pd', API_TOKENS: 'tok-a' };
    app = await startTestApp(env);
    lark.failNext(CREATE, larkError(400, 230002, 'Bot/User can NOT be out of the chat.'));
    expect((await post({ summaryText: 'restart', pd: true }, { key: 'r-1' })).status).toBe(502);
    await app.crash();
    app = await startTestApp(env, app.dataDir);
    const retry = await post({ summaryText: 'restart', pd: true }, { key: 'r-1' });
    expect(retry.status).toBe(200);
    expect(creates().map((c) => c.body.receive_id)).toEqual(['oc_main', 'oc_pd', 'oc_main']);
  });

  it('refuses the same key with another body (409), sends nothing for it; another token’s same key is its own', async () => {
    await start();
    expect((await post({ summaryText: 'first' }, { key: 'k1' })).status).toBe(200);
    const other = await post({ summaryText: 'second' }, { key: 'k1' });
    expect(other.status).toBe(409);
    expect(other.json.error).toMatchObject({ code: 'conflict', message: 'Idempotency-Key was already used with a different request body' });
    expect((await post({ summaryText: 'first', pd: true }, { key: 'k1' })).status).toBe(409);
    expect(creates()).toHaveLength(1);

    const b = await post({ summaryText: 'first' }, { key: 'k1', token: 'tok-b' });
    expect(b.status).toBe(200);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    expect(messagesIn('oc_main')).toHaveLength(2);
  });

  it('sends once for concurrent requests with the same key', async () => {
    await start();
    const body = { summaryText: 'burst', pd: true };
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(body, { key: 'burst-1' })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true')).toHaveLength(5);
    expect(new Set(answers.map((a) => JSON.stringify(a.json.messages))).size).toBe(1);
    expect(messagesIn('oc_main')).toHaveLength(1);
    expect(messagesIn('oc_pd')).toHaveLength(1);
    expect(creates()).toHaveLength(2);
  });

  it('takes prototype-named keys as plain keys', async () => {
    await start();
    for (const key of ['__proto__', 'constructor', 'toString']) {
      expect((await post({ summaryText: `k ${key}` }, { key })).status, key).toBe(200);
      const again = await post({ summaryText: `k ${key}` }, { key });
      expect(again.headers.get('idempotent-replayed'), key).toBe('true');
      expect((await post({ summaryText: 'other body' }, { key })).status, key).toBe(409);
    }
    expect(messagesIn('oc_main')).toHaveLength(3);
  });

  it('answers 503 and sends nothing when the key cannot be saved', async () => {
    const a = await start();
    await removeDir(a.dataDir);
    await writeFile(a.dataDir, 'the data dir is now a file');
    const res = await post({ summaryText: 'x' }, { key: 'disk-1' });
    expect(res.status).toBe(503);
    expect(res.json.error.message).toMatch(/nothing was sent/);
    expect(creates()).toHaveLength(0);
    await rm(a.dataDir);
  });

  it('without a key every request is a new message (a uuid per send)', async () => {
    await start();
    await post({ summaryText: 'same' });
    await post({ summaryText: 'same' });
    expect(messagesIn('oc_main')).toHaveLength(2);
  });

  it('refuses a key longer than 255 characters before sending', async () => {
    await start();
    const res = await post({ summaryText: 'x' }, { key: 'k'.repeat(256) });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/Idempotency-Key must be 1 to 255/);
    expect(creates()).toHaveLength(0);
  });
});

describe('POST /api/endpoint and Lark’s 30 KB per rich-text request', () => {
  const cjk = (n: number, from = 0) => Array.from({ length: n }, (_, i) => String.fromCharCode(0x4e00 + ((from + i) % 20000))).join('');

  /** Every create call fits, parts are titled in order, and together they hold the text exactly. */
  function expectSplit(chatId: string, title: string, text: string) {
    const calls = creates().filter((c) => c.body.receive_id === chatId);
    const n = calls.length;
    expect(n).toBeGreaterThan(1);
    const paragraphs: string[] = [];
    calls.forEach((c, i) => {
      expect(Buffer.byteLength(JSON.stringify(c.body))).toBeLessThanOrEqual(30 * 1024);
      const content = JSON.parse(c.body.content);
      expect(content.zh_cn.title).toBe(title ? `${title} (${i + 1}/${n})` : `(${i + 1}/${n})`);
      const texts = textOf(c.body.content);
      // a paragraph cut between two parts continues at the start of the next
      if (paragraphs.length && i > 0 && cutBetween(calls[i - 1]!, c, text)) paragraphs[paragraphs.length - 1] += texts.shift()!;
      paragraphs.push(...texts);
    });
    expect(paragraphs.join('\n')).toBe(text);
    return n;
  }
  // The text has no paragraph ending exactly where a part ends unless a newline is there.
  const cutBetween = (prev: RecordedCall, next: RecordedCall, text: string) => {
    const a = textOf(prev.body.content).at(-1)!;
    const b = textOf(next.body.content)[0]!;
    return !text.includes(`${a}\n${b}`);
  };

  it('splits 30,000 CJK characters in paragraphs into posts under 30 KB each, titled (i/n), in every chat', async () => {
    await start();
    const text = Array.from({ length: 310 }, (_, i) => cjk(98, i * 98)).join('\n').slice(0, 30_000);
    expect(text.length).toBe(30_000);
    const res = await post({ summaryText: text, title: '日报', pd: true });
    expect(res.status).toBe(200);
    expect(res.json.parts).toBeGreaterThanOrEqual(4); // ~90 KB of UTF-8
    const n = expectSplit('oc_main', '日报', text);
    expect(expectSplit('oc_pd', '日报', text)).toBe(n);
    expect(res.json.chats.map((c: any) => c.messageIds.length)).toEqual([n, n]);
    expect(lark.calls.filter((c) => c.path === '/open-apis/im/v1/messages' && c.body?.receive_id).length).toBe(2 * n);
  });

  it('cuts one huge paragraph between characters, never inside an emoji', async () => {
    await start();
    const huge = cjk(30_000);
    expect((await post({ summaryText: huge })).status).toBe(200);
    expectSplit('oc_main', '', huge);
    lark.calls.length = 0;
    lark.messages.clear();
    const emoji = '😀'.repeat(15_000); // 30,000 UTF-16 units, 60 KB
    expect((await post({ summaryText: emoji, title: 'e' })).status).toBe(200);
    expectSplit('oc_main', 'e', emoji);
    for (const c of creates()) expect(textOf(c.body.content).join('')).toMatch(/^(😀)+$/u);
  });

  it('answers 413, sending nothing, when the text would take more than 10 messages', async () => {
    await start();
    const res = await post({ summaryText: '@ou_a '.repeat(5_000) });
    expect(res.status).toBe(413);
    expect(res.json.error).toMatchObject({ code: 'payload_too_large', message: expect.stringMatching(/needs \d+ messages at Lark's 30 KB per message; at most 10 are sent: shorten it/) });
    expect(creates()).toHaveLength(0);
  });


  it('the emulator refuses a post over 30 KB with Lark’s 230025, as Lark does', async () => {
    const token = await fetch(`${lark.url}/open-apis/auth/v3/tenant_access_token/internal`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ app_id: APP_ID, app_secret: APP_SECRET }),
    }).then((r) => r.json() as Promise<{ tenant_access_token: string }>);
    const send = (text: string) =>
      fetch(`${lark.url}/open-apis/im/v1/messages?receive_id_type=chat_id`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token.tenant_access_token}` },
        body: JSON.stringify({ receive_id: 'oc_main', msg_type: 'post', content: JSON.stringify({ zh_cn: { title: '', content: [[{ tag: 'text', text }]] } }) }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { code: number; msg: string } }));
    expect(await send(cjk(11_000))).toEqual({ status: 400, body: { code: 230025, msg: 'The length of the message content reaches its limit.' } });
    expect((await send(cjk(10_000))).body.code).toBe(0);
  });
});

describe('splitPostToFit', () => {
  // Characters whose JSON escaping costs more than their UTF-8 size, twice escaped in the body.
  const alphabet = ['a', ' ', '"', '\\', '\n', '\t', '\u0001', '\u2028', 'é', '中', '😀', '@ou_abc12 ', '<', '&'];
  const uuid = 'u'.repeat(50);

  it('cuts any text into parts that each fit the limit exactly as measured, and loses nothing', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 40; round++) {
      const text = Array.from({ length: 200 + Math.floor(random() * 3000) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const whole = summaryToPost(text, round % 2 ? 'Title "quoted"' : '');
      const limit = 1500 + Math.floor(random() * 2000);
      const parts = splitPostToFit(whole, 'oc_chat', limit, 100);
      for (const p of parts) expect(postRequestBytes('oc_chat', p, uuid)).toBeLessThanOrEqual(limit);
      // joined back (a paragraph cut between parts is rejoined), the parts hold the post's elements
      const flat = (content: unknown[][]) => JSON.stringify(content.flat().reduce<any[]>((out, e: any) => {
        const last = out.at(-1);
        if (last?.tag === 'text' && e.tag === 'text') last.text += e.text;
        else out.push({ ...e });
        return out;
      }, []));
      expect(flat(parts.flatMap((p) => p.zh_cn.content))).toBe(flat(whole.zh_cn.content));
      if (parts.length > 1) expect(parts.map((p) => p.zh_cn.title.replace(/^.*\((\d+)\/(\d+)\)$/, '$1/$2'))).toEqual(parts.map((_, i) => `${i + 1}/${parts.length}`));
    }
  });

  it('returns a post that fits unchanged, and refuses an element that fits no part', () => {
    const small = summaryToPost('hello', 'T');
    expect(splitPostToFit(small, 'oc_chat')).toEqual([small]);
    expect(() => splitPostToFit(summaryToPost(`@ou_${'a'.repeat(3000)}`), 'oc_chat', 2000)).toThrow(/too long for one Lark message/);
  });
});

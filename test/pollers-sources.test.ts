import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { guanceSourceSchema, httpSourceSchema, pollerFlowSchema } from '../src/flows/poller-flow-schema.js';
import { FeedError } from '../src/pollers/feed.js';
import { issueMessageOf } from '../src/pollers/issue-message.js';
import { createGuanceSource } from '../src/pollers/sources/guance.js';
import { createHttpSource } from '../src/pollers/sources/http-feed.js';
import { createUpstreamClient, type UpstreamClient } from '../src/upstream/client.js';
import { startFakeGuance, type FakeGuance } from './fake-guance/fake-guance.js';
import { startFakeUpstream, type FakeUpstream, type UpstreamHandler } from './helpers/fake-upstream.js';

let feed: FakeUpstream | undefined;
let guance: FakeGuance | undefined;
let raw: Server | undefined;
const upstream: UpstreamClient = createUpstreamClient({ connectTimeoutMs: 1000, verifySsl: true });

afterEach(async () => {
  await feed?.close();
  await guance?.close();
  if (raw) {
    raw.closeAllConnections();
    await new Promise<void>((r) => raw!.close(() => r()));
  }
  feed = guance = raw = undefined;
});

const T = Date.UTC(2026, 0, 2, 3, 4, 5);
async function httpFeed(handler: UpstreamHandler, spec: Record<string, unknown> = {}) {
  feed = await startFakeUpstream(handler);
  return createHttpSource(httpSourceSchema.parse({ type: 'http', url: `${feed.url}/feed?team=ops`, id: 'id', title: 'title', createdAt: 'ts', ...spec }), upstream);
}
const failure = async (p: Promise<unknown>): Promise<FeedError> => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof FeedError)) throw new Error(`expected a FeedError, got ${String(err)}`);
  return err;
};

describe('the http source', () => {
  it('reads items at itemsPath with dot paths; the cursor goes in the query in the format asked for', async () => {
    const source = await httpFeed(
      () => ({
        body: {
          data: {
            items: [
              { id: 7, title: 'disk', ts: T / 1000, sev: 'critical', host: { name: 'db-1' }, detail: 'full', web: 'https://feed.example/7' },
              { id: 'x-8', title: 'cpu', ts: new Date(T + 1000).toISOString(), tags: ['a', 'b'] },
            ],
          },
        },
      }),
      { itemsPath: 'data.items', level: 'sev', description: 'detail', link: 'web', fields: { Host: 'host.name', Tags: 'tags' }, since: { in: 'query', name: 'from', format: 's', until: 'to' } },
    );
    const items = await source.list(T - 60_000, T + 60_000);
    expect(feed!.calls[0]!.path).toBe(`/feed?team=ops&from=${(T - 60_000) / 1000}&to=${(T + 60_000) / 1000}`);
    expect(items.map((i) => ({ ...i, fields: { ...i.fields } }))).toEqual([
      { id: '7', title: 'disk', createdAt: T, fields: { level: 'critical', description: 'full', Host: 'db-1' }, url: 'https://feed.example/7' },
      { id: 'x-8', title: 'cpu', createdAt: T + 1000, fields: { Tags: '["a","b"]' } },
    ]);
  });

  it('puts the cursor in a POST body (ms or ISO) next to the configured body', async () => {
    const source = await httpFeed(() => ({ body: [] }), { method: 'POST', body: { project: 'p1' }, since: { in: 'body', name: 'since', format: 'iso' } });
    await source.list(T, T + 1);
    expect(feed!.calls[0]!.body).toEqual({ project: 'p1', since: new Date(T).toISOString() });
  });

  it('names what is wrong in an unexpected answer: no list, an item without id, title or time', async () => {
    const list = (body: unknown, spec: Record<string, unknown> = {}) => httpFeed(() => ({ body }), spec).then((s) => s.list(0, T));
    expect((await failure(list({ items: {} }, { itemsPath: 'items' }))).message).toBe('itemsPath "items" is not a list (found object)');
    await feed!.close();
    expect((await failure(list({}))).message).toBe('the answer is not a list (found object)');
    await feed!.close();
    expect((await failure(list([{ id: 1, title: 't', ts: T }, { title: 'no id', ts: T }]))).message).toBe('item 1: id at "id" is missing');
    await feed!.close();
    expect((await failure(list([{ id: 1, title: { a: 1 }, ts: T }]))).message).toBe('item 0: title at "title" is not a string or number ({"a":1})');
    await feed!.close();
    expect((await failure(list([{ id: 1, title: 't', ts: 'soon' }]))).message).toBe('item 0: createdAt at "ts" is not a time ("soon")');
  });

  it('follows own properties only: "__proto__" or "constructor" paths find nothing, an item id "__proto__" is just an id', async () => {
    const s1 = await httpFeed(() => ({ body: {} }), { itemsPath: 'constructor' });
    expect((await failure(s1.list(0, T))).message).toBe('itemsPath "constructor" is not a list (found undefined)');
    await feed!.close();
    const s2 = await httpFeed(() => ({ body: [{ id: '__proto__', title: 'p', ts: T }] }), { fields: { Proto: '__proto__.x' } });
    const [item] = await s2.list(0, T + 1);
    expect(item).toMatchObject({ id: '__proto__', title: 'p' });
    expect(Object.keys(item!.fields)).toEqual([]);
  });

  it('reads 10,000 items; refuses 10,001 (over maxItems) saying what to do', async () => {
    const items = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `i${i}`, title: `item ${i}`, ts: T + i }));
    const source = await httpFeed(() => ({ body: items(10_000) }));
    const started = performance.now();
    expect(await source.list(0, T + 20_000)).toHaveLength(10_000);
    const ms = performance.now() - started;
    await feed!.close();
    const over = await httpFeed(() => ({ body: items(10_001) }));
    expect((await failure(over.list(0, T))).message).toBe('the answer holds 10001 items, more than maxItems (10000): pass the cursor with since, or raise maxItems');
    console.log(`http source: 10,000 items listed in ${ms.toFixed(0)} ms`);
  });

  it('a hung or trickling feed ends at the deadline; 5xx is retryable, 4xx is not; the query never shows in errors', async () => {
    const hung = await httpFeed(() => ({ delayMs: 3_000, body: [] }), { timeoutMs: 200 });
    const hungStarted = Date.now();
    expect((await failure(hung.list(0, T))).message).toMatch(/: no complete answer within 200 ms$/);
    expect(Date.now() - hungStarted).toBeLessThan(2_000);
    await feed!.close();
    // A feed that sends a byte every 50 ms never trips a read timeout: only the deadline ends it.
    raw = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => raw!.listen(0, '127.0.0.1', r));
    const port = (raw.address() as AddressInfo).port;
    const trickle = createHttpSource(httpSourceSchema.parse({ type: 'http', url: `http://127.0.0.1:${port}/f?token=secret-token`, id: 'id', title: 't', createdAt: 'ts', timeoutMs: 300 }), upstream);
    const started = Date.now();
    const e = await failure(trickle.list(0, T));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(e.message).toBe(`GET http://127.0.0.1:${port}/f: no complete answer within 300 ms`);
    expect(e.retryable).toBe(true);

    feed = await startFakeUpstream((c) => (c.path.startsWith('/five') ? { status: 502, body: { error: 'bad gateway' } } : { status: 404, body: { error: 'no such feed' } }));
    const five = createHttpSource(httpSourceSchema.parse({ type: 'http', url: `${feed.url}/five?key=k1`, id: 'id', title: 't', createdAt: 'ts' }), upstream);
    const four = createHttpSource(httpSourceSchema.parse({ type: 'http', url: `${feed.url}/four?key=k1`, id: 'id', title: 't', createdAt: 'ts' }), upstream);
    const e5 = await failure(five.list(0, T));
    expect(e5.message).toBe(`GET ${feed.url}/five: upstream answered HTTP 502: {"error":"bad gateway"}`);
    expect(e5.retryable).toBe(true);
    const e4 = await failure(four.list(0, T));
    expect(e4.retryable).toBe(false);
    expect(`${e5.message}${e4.message}`).not.toContain('k1');
  });

  it('refuses an answer larger than 16 MB instead of parsing a cut one', async () => {
    const big = 'x'.repeat(17 * 1024 * 1024);
    const source = await httpFeed(() => ({ body: [{ id: 1, title: big, ts: T }] }));
    expect((await failure(source.list(0, T))).message).toMatch(/the answer is larger than 16777216 bytes$/);
  });

  it('adds a reply through reply.url and body templates; lists the replies feed of an item', async () => {
    feed = await startFakeUpstream((c) =>
      c.path.endsWith('/comments')
        ? { body: { comments: [{ cid: 'c2', who: 'bob', body: 'later', at: T + 2000 }, { cid: 'c1', who: 'ann', body: 'first', at: T }] } }
        : { status: 201, body: {} },
    );
    const source = createHttpSource(
      httpSourceSchema.parse({
        type: 'http',
        url: `${feed.url}/feed`,
        id: 'id',
        title: 'title',
        createdAt: 'ts',
        headers: { authorization: 'Bearer feed-token' },
        reply: { url: `${feed.url}/items/{{itemId}}/reply`, body: { text: '{{text}}', meta: { by: '{{author}}', item: '{{itemId}}' } } },
        repliesFeed: { url: `${feed.url}/items/{{itemId}}/comments`, itemsPath: 'comments', id: 'cid', author: 'who', text: 'body', createdAt: 'at' },
      }),
      upstream,
    );
    await source.addReply!('a/b c', 'looking "now"', 'Ann Lee');
    const call = feed.calls.at(-1)!;
    expect(call.path).toBe('/items/a%2Fb%20c/reply');
    expect(call.body).toEqual({ text: 'looking "now"', meta: { by: 'Ann Lee', item: 'a/b c' } });
    expect(call.headers.authorization).toBe('Bearer feed-token');
    const replies = await source.listReplies!('a/b c', T - 1);
    expect(replies).toEqual([
      { id: 'c1', itemId: 'a/b c', author: 'ann', text: 'first', createdAt: T },
      { id: 'c2', itemId: 'a/b c', author: 'bob', text: 'later', createdAt: T + 2000 },
    ]);
    expect(await source.listReplies!('a/b c', T + 1)).toHaveLength(1);
  });

  it('a source without reply takes no replies', async () => {
    const source = await httpFeed(() => ({ body: [] }));
    expect(source.addReply).toBeUndefined();
    expect(source.listReplies).toBeUndefined();
  });
});

describe('the guance source', () => {
  const spec = (channel = 'on-call', o: Record<string, unknown> = {}) => guanceSourceSchema.parse({ type: 'guance', baseUrl: guance!.url, apiKey: 'test-guance-key', channel, ...o });

  it('asks issue/list for the window in unix seconds with DF-API-KEY, reads every page, maps levels', async () => {
    guance = await startFakeGuance();
    guance.defaultPageSize = 5;
    for (let i = 0; i < 12; i++) guance.addIssue({ name: `n${i}`, createAt: T / 1000 + i, level: i === 0 ? 'system_level_0' : i === 1 ? 'issl_custom1' : 3 });
    guance.addIssue({ name: 'other channel', createAt: T / 1000, channelUUID: guance.channels[1]!.uuid });
    guance.addIssue({ name: 'too old', createAt: T / 1000 - 100 });
    const source = createGuanceSource(spec('on-call', { pageSize: 5, issueUrl: 'https://console.guance.example/issues/{id}' }), upstream);
    const items = await source.list(T - 500, T + 20_000);
    expect(items.map((i) => i.title)).toEqual(Array.from({ length: 12 }, (_, i) => `n${i}`));
    expect(items[0]).toMatchObject({ createdAt: T, fields: { level: 'P0', resource: 'svc-api', description: 'n0 (described)' } });
    expect(items[1]!.fields.level).toBe('issl_custom1');
    expect(items[2]!.fields.level).toBe('P3');
    expect(items[0]!.url).toBe(`https://console.guance.example/issues/${guance.issues[0]!.uuid}`);
    const lists = guance.callsTo('POST', '/api/v1/issue/list');
    expect(lists.map((c) => c.body.pageIndex)).toEqual([1, 2, 3]);
    expect(lists[0]!.body).toMatchObject({ channelUUID: guance.channels[0]!.uuid, startTime: Math.floor((T - 500) / 1000), endTime: Math.ceil((T + 20_000) / 1000), pageSize: 5 });
    expect(lists[0]!.headers['df-api-key']).toBe('test-guance-key');
    expect(guance.callsTo('GET', '/api/v1/channel/quick_list')).toHaveLength(1);
    await source.list(T, T + 1);
    expect(guance.callsTo('GET', '/api/v1/channel/quick_list')).toHaveLength(1); // resolved once
  });

  it('refuses two channels of the same name (asks for the uuid)', async () => {
    guance = await startFakeGuance();
    guance.channels.push({ id: 3, name: 'on-call', uuid: 'chan_dup' });
    const e = await failure(createGuanceSource(spec(), upstream).list(0, T));
    expect(e.message).toBe('2 Guance channels are named "on-call": write its uuid in source.channel');
  });

  it('adds a reply with issue/reply/create naming the author; an unknown issue is a FeedError', async () => {
    guance = await startFakeGuance();
    const issue = guance.addIssue({ name: 'x' });
    const source = createGuanceSource(spec(), upstream);
    await source.addReply!(issue.uuid, 'restarted the pod', 'Ann Lee');
    expect(guance.replies).toEqual([{ issueUUID: issue.uuid, content: 'Ann Lee (Lark): restarted the pod', extend: {} }]);
    const e = await failure(source.addReply!('issue_nope', 'x', 'Ann'));
    expect(e.message).toContain('HTTP 404');
  });
});

describe('what a card shows of an item', () => {
  const flow = pollerFlowSchema.parse({ kind: 'poller', id: 'p', name: 'Feed', schedule: '* * * * *', source: { type: 'http', url: 'https://f.example', id: 'id', title: 't', createdAt: 'ts' }, notify: { chatId: 'oc_1' } });
  it('keeps only http(s) links, cuts long texts, colours by level', () => {
    const m = (url: string | undefined, fields: Record<string, string> = {}) => issueMessageOf({ id: '1', title: 'x'.repeat(500), createdAt: T, fields, url }, flow);
    expect(m('javascript:alert(1)').url).toBeUndefined();
    expect(m('https://ok.example/1').url).toBe('https://ok.example/1');
    expect(m(undefined).title).toHaveLength(200);
    expect(m(undefined, { level: 'warning', description: 'd'.repeat(5000) })).toMatchObject({ severity: 'medium', level: 'warning' });
    expect(m(undefined, { description: 'd'.repeat(5000) }).description).toHaveLength(3000);
    expect(m(undefined, { level: 'P0' }).severity).toBe('critical');
    expect(m(undefined, { level: 'issl_abc' }).severity).toBe('unknown');
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type UpstreamCall } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitForJob, type TestApp } from './helpers/test-app.js';

let upstream: FakeUpstream;
let app: TestApp;

beforeEach(async () => {
  upstream = await startFakeUpstream();
  app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/` });
});

afterEach(async () => {
  await app.stop();
  await upstream.close();
  await removeDir(app.dataDir);
});

const IDS = {
  cjk: '订单-二〇二六-第42号',
  emoji: 'rec-🚀-👩‍👩‍👧-🇨🇳',
  rtl: 'הזמנה-١٢٣-طلب',
  bidiMixed: 'abc-\u202Eevil\u202C-123',
  combiningDecomposed: 'cafe\u0301-n\u0303', // "é" and "ñ" as base letter + combining mark
  combiningPrecomposed: 'caf\u00e9-\u00f1', // the same text, precomposed: another id
  percentInAscii: 'a%20b%zz',
  spaceInside: 'order 42',
  plain: 'REC_00042.v1:x-y',
};

/** What an upstream reads back from the headers, following X-Bridge-Record-Id-Encoding. */
function idFromHeaders(call: UpstreamCall): string {
  const value = String(call.headers['x-bridge-record-id']);
  return call.headers['x-bridge-record-id-encoding'] === 'percent' ? decodeURIComponent(value) : value;
}

describe('record ids beyond plain ASCII', () => {
  it('CJK, emoji, RTL, bidi controls and combining marks reach the upstream intact: body as sent, headers percent-encoded', async () => {
    const ids = Object.values(IDS);
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/u`, records: ids } });
    expect(res.status).toBe(202);
    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.status).toBe('success');
    expect(job.results.map((r: any) => r.recordId).sort()).toEqual([...ids].sort());

    expect(upstream.calls).toHaveLength(ids.length);
    for (const id of ids) {
      const calls = upstream.calls.filter((c) => c.body.recordId === id);
      expect(calls, id).toHaveLength(1); // precomposed and decomposed are two ids, not one
      const call = calls[0]!;
      // The body's bytes are the id's UTF-8, unnormalised.
      expect(call.raw.equals(Buffer.from(JSON.stringify({ recordId: id }), 'utf8')), id).toBe(true);
      expect(idFromHeaders(call), id).toBe(id);
      const encoded = call.headers['x-bridge-record-id-encoding'] === 'percent';
      const value = encoded ? encodeURIComponent(id) : id;
      expect(call.headers['x-bridge-record-id'], id).toBe(value);
      expect(call.headers['idempotency-key'], id).toBe(`${res.json.jobId}:${value}`);
      expect(call.headers['x-bridge-job-id']).toBe(res.json.jobId);
    }
    // Printable ASCII without "%" is sent as is; anything else is flagged as encoded.
    const flagged = (id: string) => upstream.calls.find((c) => c.body.recordId === id)!.headers['x-bridge-record-id-encoding'];
    expect(flagged(IDS.plain)).toBeUndefined();
    expect(flagged(IDS.spaceInside)).toBeUndefined();
    for (const id of [IDS.cjk, IDS.emoji, IDS.rtl, IDS.bidiMixed, IDS.combiningDecomposed, IDS.combiningPrecomposed, IDS.percentInAscii]) {
      expect(flagged(id), id).toBe('percent');
    }
    expect(upstream.calls.find((c) => c.body.recordId === IDS.cjk)!.headers['x-bridge-record-id']).toBe(
      '%E8%AE%A2%E5%8D%95-%E4%BA%8C%E3%80%87%E4%BA%8C%E5%85%AD-%E7%AC%AC42%E5%8F%B7',
    );
  });

  it('a single emoji record answers 200 success with the id as sent', async () => {
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/u`, recordId: '✅完了' } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'success', results: [{ recordId: '✅完了', status: 'success', httpStatus: 200 }] });
    expect(idFromHeaders(upstream.calls[0]!)).toBe('✅完了');
  });

  it('refuses with 400 what cannot be sent at all: control characters and lone surrogates; nothing is called', async () => {
    const refused: Array<[string, RegExp]> = [
      ['a\u0000b', /control characters/],
      ['line\nbreak', /control characters/],
      ['tab\tinside', /control characters/],
      ['bell\u0007', /control characters/],
      ['del\u007f', /control characters/],
      ['c1\u0085', /control characters/],
    ];
    for (const [id, message] of refused) {
      const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/u`, records: ['fine', id] } });
      expect(res.status, JSON.stringify(id)).toBe(400);
      expect(res.json.error.message).toMatch(/^records\.1: /);
      expect(res.json.error.message).toMatch(message);
    }
    // A lone surrogate can only arrive as a JSON escape: JSON.stringify would write a valid pair.
    for (const escaped of ['\\ud800', 'x\\udc00y', '\\ude00\\ud83d']) {
      const res = await api(app.url, '/api/task-sync', {
        rawBody: `{"webhookUrl":"${upstream.url}/hooks/u","recordId":"${escaped}"}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status, escaped).toBe(400);
      expect(res.json.error.message).toMatch(/^recordId: must be valid Unicode \(it holds a lone surrogate\)/);
    }
    expect(upstream.calls).toHaveLength(0);
  });
});

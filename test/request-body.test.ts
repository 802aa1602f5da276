import { ServerResponse, type IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import Koa, { type Context } from 'koa';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../src/errors.js';
import { parseJsonBody, readBody } from '../src/http/request-body.js';

/**
 * readBody and parseJsonBody on a Koa context over a stream the test writes, chunk by chunk:
 * the limit to the byte, the declared length, the cut-off of a flood, the JSON rules.
 */
const LIMIT = 10;
/** Past this much a body is no longer drained but cut off (16 × the limit + 1 MiB). */
const FLOOD = LIMIT * 16 + 1024 * 1024;

function contextOf(headers: Record<string, string>, chunks: Buffer[] = [], end = true): { ctx: Context; req: PassThrough } {
  // autoDestroy off: `destroyed` then says whether readBody cut the stream, not that it ended.
  const req = Object.assign(new PassThrough({ autoDestroy: false }), { headers, method: 'POST', url: '/' });
  for (const c of chunks) req.write(c);
  if (end) req.end();
  const ctx = new Koa().createContext(req as unknown as IncomingMessage, new ServerResponse(req as unknown as IncomingMessage));
  return { ctx, req };
}
const chunked = { 'content-type': 'application/json', 'transfer-encoding': 'chunked' };
const bytes = (n: number, fill = 'x') => Buffer.alloc(n, fill);

/** "ok", or the refusal as "code: message". */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return `${err.code}: ${err.message}`;
  }
}

describe('readBody: the limit', () => {
  it('keeps a body of exactly the limit, whole, declared or chunked', async () => {
    const body = Buffer.from('{"a":12345}').subarray(0, LIMIT);
    for (const headers of [{ 'content-type': 'text/plain', 'content-length': String(LIMIT) }, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }] as Array<Record<string, string>>) {
      const { ctx } = contextOf(headers, [body.subarray(0, 4), body.subarray(4)]);
      expect(await outcome(readBody(ctx, LIMIT))).toBe('ok');
      expect(ctx.request.rawBody).toEqual(body);
    }
  });

  it('refuses a declared length over the limit at once, without reading or closing', async () => {
    const { ctx, req } = contextOf({ 'content-type': 'application/json', 'content-length': String(LIMIT + 1) }, [bytes(LIMIT + 1)]);
    expect(await outcome(readBody(ctx, LIMIT))).toBe('payload_too_large: request body exceeds 10 bytes');
    expect(ctx.request.rawBody).toBeUndefined();
    expect(ctx.response.get('Connection')).toBeUndefined();
    // Nothing was consumed from the stream.
    expect(req.read()).toEqual(bytes(LIMIT + 1));
  });

  it('refuses a chunked body one byte over the limit, after draining it, and closes the connection', async () => {
    const { ctx, req } = contextOf(chunked, [bytes(6), bytes(5)]);
    expect(await outcome(readBody(ctx, LIMIT))).toBe('payload_too_large: request body exceeds 10 bytes');
    expect(ctx.request.rawBody).toBeUndefined();
    expect(ctx.response.get('Connection')).toBe('close');
    expect(req.destroyed).toBe(false);
  });

  it('drains a body up to 16 × the limit + 1 MiB, and cuts off the stream one byte past that', async () => {
    const chunksOf = (total: number) => {
      const out: Buffer[] = [];
      for (let left = total; left > 0; left -= 65_536) out.push(bytes(Math.min(65_536, left)));
      return out;
    };
    const drained = contextOf(chunked, chunksOf(FLOOD));
    expect(await outcome(readBody(drained.ctx, LIMIT))).toBe('payload_too_large: request body exceeds 10 bytes');
    expect(drained.req.destroyed).toBe(false);
    // Not ended: only the cut-off answers.
    const flood = contextOf(chunked, chunksOf(FLOOD + 1), false);
    expect(await outcome(readBody(flood.ctx, LIMIT))).toBe('payload_too_large: request body exceeds 10 bytes');
    expect(flood.req.destroyed).toBe(true);
  });

  it('passes a read error on', async () => {
    const { ctx, req } = contextOf(chunked, [bytes(3)], false);
    const reading = readBody(ctx, LIMIT);
    req.destroy(new Error('client went away'));
    await expect(reading).rejects.toThrow('client went away');
  });

  it('reads a body once: a second call keeps the first bytes', async () => {
    const { ctx } = contextOf({ 'content-type': 'application/json', 'content-length': '7' }, [Buffer.from('{"a":1}')]);
    await readBody(ctx, LIMIT);
    const again = contextOf({ 'content-type': 'application/json', 'content-length': '7' }, [Buffer.from('{"a":2}')]);
    again.ctx.request.rawBody = ctx.request.rawBody;
    again.ctx.request.jsonBody = ctx.request.jsonBody;
    await readBody(again.ctx, LIMIT);
    expect(again.ctx.request.rawBody!.toString()).toBe('{"a":1}');
    expect(again.ctx.request.jsonBody).toEqual({ a: 1 });
    expect(again.req.read()!.toString()).toBe('{"a":2}');
  });
});

describe('readBody: JSON', () => {
  it('parses application/json and any +json type, and leaves other types and empty bodies unparsed', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/vnd.lark+json']) {
      const { ctx } = contextOf({ 'content-type': type, 'content-length': '7' }, [Buffer.from('{"a":1}')]);
      await readBody(ctx, LIMIT);
      expect(ctx.request.jsonBody, type).toEqual({ a: 1 });
    }
    for (const [type, body] of [['text/plain', '{"a":1}'], ['application/x-www-form-urlencoded', 'a=1'], ['application/json', '']] as const) {
      const { ctx } = contextOf({ 'content-type': type, 'content-length': String(body.length) }, body ? [Buffer.from(body)] : []);
      await readBody(ctx, LIMIT);
      expect(ctx.request.rawBody!.toString(), type).toBe(body);
      expect(ctx.request.jsonBody, type).toBeUndefined();
    }
  });

  it('refuses JSON that does not parse, saying why', async () => {
    const { ctx } = contextOf({ 'content-type': 'application/json', 'content-length': '5' }, [Buffer.from('{"a":')]);
    expect(await outcome(readBody(ctx, LIMIT))).toMatch(/^bad_request: request body is not valid JSON: .+/);
  });
});

describe('parseJsonBody', () => {
  const schema = z.object({ a: z.object({ b: z.number() }), n: z.number().default(7) });
  const parse = (ctx: Context) => {
    try {
      return parseJsonBody(ctx, schema);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return { refused: `${err.code}: ${err.message}`, details: err.details };
    }
  };
  const withBody = (raw: Buffer | undefined, json?: unknown) => {
    const { ctx } = contextOf({});
    ctx.request.rawBody = raw;
    ctx.request.jsonBody = json;
    return ctx;
  };
  const zodMessage = (value: unknown) => schema.safeParse(value).error!.issues[0]!.message;

  it('gives the handler the parsed value, defaults applied', () => {
    expect(parse(withBody(Buffer.from('{"a":{"b":1}}'), { a: { b: 1 } }))).toEqual({ a: { b: 1 }, n: 7 });
  });

  it('refuses a body never read or empty, and one that was not JSON', () => {
    const empty = { refused: 'bad_request: request body is empty: send a JSON object', details: undefined };
    expect(parse(withBody(undefined))).toEqual(empty);
    expect(parse(withBody(Buffer.alloc(0)))).toEqual(empty);
    expect(parse(withBody(Buffer.from('a=1')))).toEqual({ refused: 'unsupported_media_type: send the body as JSON with Content-Type: application/json', details: undefined });
  });

  it('names the path of the first problem, "(body)" for the body itself, and lists them all', () => {
    expect(parse(withBody(Buffer.from('x'), { a: { b: 'one' }, n: 'two' }))).toEqual({
      refused: `bad_request: a.b: ${zodMessage({ a: { b: 'one' } })}`,
      details: [
        { path: 'a.b', message: zodMessage({ a: { b: 'one' } }) },
        { path: 'n', message: zodMessage({ a: { b: 1 }, n: 'two' }) },
      ],
    });
    expect(parse(withBody(Buffer.from('x'), [1]))).toEqual({
      refused: `bad_request: (body): ${zodMessage([1])}`,
      details: [{ path: '(body)', message: zodMessage([1]) }],
    });
  });
});

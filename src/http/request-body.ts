import type { Context } from 'koa';
import type { z } from 'zod';
import { InvalidInput, TooLarge, UnsupportedMediaType } from '../errors.js';

declare module 'koa' {
  interface Request {
    /** The bytes as received; signatures are checked over these, never over re-serialised JSON. */
    rawBody?: Buffer;
    /** Parsed JSON body (undefined when there was none or it was not JSON). */
    jsonBody?: unknown;
  }
}

/** Reads the body once, capped at `limitBytes`, and parses JSON when the request says it is JSON. */
export async function readBody(ctx: Context, limitBytes: number): Promise<void> {
  if (ctx.request.rawBody !== undefined) return;
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limitBytes) throw new TooLarge(`request body exceeds ${limitBytes} bytes`);
  const { chunks, size } = await collect(ctx.req, limitBytes);
  if (size > limitBytes) {
    ctx.set('Connection', 'close');
    throw new TooLarge(`request body exceeds ${limitBytes} bytes`);
  }
  const raw = Buffer.concat(chunks, size);
  ctx.request.rawBody = raw;
  if (raw.length > 0 && ctx.request.is('application/json', '+json')) {
    try {
      ctx.request.jsonBody = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new InvalidInput(`request body is not valid JSON: ${(err as Error).message}`);
    }
  }
}

/** Parses the JSON body with a zod schema; the handler only ever sees typed data. */
export function parseJsonBody<T extends z.ZodType>(ctx: Context, schema: T): z.infer<T> {
  if (!ctx.request.rawBody?.length) throw new InvalidInput('request body is empty: send a JSON object');
  if (ctx.request.jsonBody === undefined) {
    throw new UnsupportedMediaType('send the body as JSON with Content-Type: application/json');
  }
  const parsed = schema.safeParse(ctx.request.jsonBody);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
    const first = details[0]!;
    throw new InvalidInput(`${first.path}: ${first.message}`, details);
  }
  return parsed.data;
}

/**
 * Buffers up to `limit` bytes. Past the limit it keeps draining (without keeping) so the client
 * can still read our 413, unless the body runs far beyond the limit.
 */
function collect(req: NodeJS.ReadableStream & { destroy(): void }, limit: number): Promise<{ chunks: Buffer[]; size: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > limit * 16 + 1024 * 1024) {
        req.destroy();
        resolve({ chunks: [], size });
      }
    });
    req.once('end', () => resolve({ chunks, size }));
    req.once('error', reject);
  });
}

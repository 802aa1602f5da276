// The floor of a durable 202 on this machine: bare Koa plus the one thing a durable answer cannot
// skip, an append made durable before the answer (one write + one fdatasync per tick for every
// request of that tick, as the journal does). No auth, validation, store, queue, metrics or logs.
import { randomUUID } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';

const path = join(tmpdir(), `lark-bridge-bench-floor-${process.pid}.log`);
const file = await open(path, 'wx');
let size = 0;
let pending: { data: Buffer[]; done: Array<() => void> } | null = null;
let inFlight = false;

function appendDurably(data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    pending ??= { data: [], done: [] };
    pending.data.push(data);
    pending.done.push(resolve);
    if (!inFlight) setImmediate(commit);
  });
}

async function commit(): Promise<void> {
  if (inFlight || !pending) return;
  inFlight = true;
  const batch = pending;
  pending = null;
  const data = Buffer.concat(batch.data);
  try {
    await file.write(data, 0, data.length, size);
    await file.datasync();
  } catch (err) {
    // A benchmark stand-in: a failing disk ends it loudly rather than leaving requests hanging.
    console.error('durable floor: the append failed', err);
    process.exit(1);
  }
  size += data.length;
  for (const resolve of batch.done) resolve();
  inFlight = false;
  if (pending) setImmediate(commit);
}

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method !== 'POST') {
    ctx.body = { status: 'ok' };
    return;
  }
  const chunks: Buffer[] = [];
  for await (const c of ctx.req) chunks.push(c as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  const jobId = randomUUID();
  await appendDurably(Buffer.from(`${JSON.stringify({ ...body, id: jobId, status: 'queued', at: Date.now() })}\n`));
  ctx.status = 202;
  ctx.body = { jobId, status: 'queued' };
});
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const a = server.address();
  console.log(`listening on http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`);
});
process.once('SIGTERM', () => {
  server.close();
  void file.close().then(() => rm(path, { force: true })).then(() => process.exit(0));
});

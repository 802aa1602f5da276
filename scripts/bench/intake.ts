/**
 * npm run bench:intake — POST /api/v1/lark/callback with encrypted, signed approval_task events
 * (each a new event id and instance, so each runs the whole pipeline: record → instance get →
 * business check → approve → card), against a bare Koa handler in the same run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { approvalTaskEvent, larkEncrypt, larkSign } from '../../test/lark-emulator/event-sender.js';
import { startProc as start, stopProc as stop } from './procs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const APP_ID = 'cli_a1b2c3d4e5f60003';
const APP_SECRET = 'bench-secret';
const ENCRYPT_KEY = 'bench-encrypt-key';
const TOKEN = 'bench-verification-token';
const APPROVAL_CODE = 'BENCH-APPROVAL';

function eventRequest() {
  let n = 0;
  return {
    method: 'POST' as const,
    setupRequest(req: { headers?: Record<string, string>; body?: string }) {
      n++;
      const id = `INST-${process.pid}-${n}`;
      const raw = JSON.stringify({
        encrypt: larkEncrypt(JSON.stringify(approvalTaskEvent({ token: TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: id, taskId: `${id}-check`, userId: 'assistant' })), ENCRYPT_KEY),
      });
      const ts = String(Math.floor(Date.now() / 1000));
      const nonce = String(n);
      req.headers = { 'content-type': 'application/json', 'x-lark-request-timestamp': ts, 'x-lark-request-nonce': nonce, 'x-lark-signature': larkSign(ts, nonce, ENCRYPT_KEY, raw) };
      req.body = raw;
      return req;
    },
  };
}

async function load(url: string) {
  await autocannon({ url, connections: CONNECTIONS, duration: 2, requests: [eventRequest() as never] }); // warm-up, not measured
  const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, requests: [eventRequest() as never] });
  return { rps: Math.round(r.requests.average), p99: r.latency.p99, non2xx: r.non2xx };
}

const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
const flowsDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-flows-'));
const bare = await start('scripts/bench/bare-koa.ts', {});
const business = await start('scripts/bench/upstream.ts', { DELAY_MS: '0' });
const lark = await start('scripts/bench/lark-emulator-proc.ts', { APP_ID, APP_SECRET, APPROVAL_CODE });
await writeFile(
  join(flowsDir, 'bench.json'),
  JSON.stringify({ kind: 'approval', id: 'bench', name: 'Bench', approvalCode: APPROVAL_CODE, fields: { account: { widget: 'Account', type: 'string' } }, check: { url: `${business.url}/check` }, secret: 'bench-business-secret-000', notify: { chatId: 'oc_bench' } }),
);
const svc = await start('src/main.ts', {
  DATA_DIR: dataDir,
  FLOWS_DIR: flowsDir,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  LARK_APP_ID: APP_ID,
  LARK_APP_SECRET: APP_SECRET,
  LARK_DOMAIN: lark.url,
  LARK_ENCRYPT_KEY: ENCRYPT_KEY,
  LARK_VERIFICATION_TOKEN: TOKEN,
  LARK_ASSISTANT_USER_ID: 'assistant',
});
try {
  console.log(`bench:intake — ${CONNECTIONS} connections, ${SECONDS} s per run, node ${process.version}`);
  const b = await load(`${bare.url}/api/v1/lark/callback`);
  const o = await load(`${svc.url}/api/v1/lark/callback`);
  console.log(`event intake (encrypted approval_task)  ${o.rps} req/s  p99 ${o.p99} ms | bare ${b.rps} req/s  p99 ${b.p99} ms | ratio ${((o.rps / b.rps) * 100).toFixed(0)}%${o.non2xx ? `  (non-2xx ${o.non2xx})` : ''}`);
} finally {
  for (const p of [svc, lark, business, bare]) await stop(p);
  await rm(dataDir, { recursive: true, force: true });
  await rm(flowsDir, { recursive: true, force: true });
}

// What the Lark intake benchmark needs: the Lark emulator, a business API, an approval flow, and
// requests that are each a new encrypted, signed approval_task event (a new instance), so that
// every request runs the whole pipeline: record → instance get → business check → approve → card.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approvalTaskEvent, larkEncrypt, larkSign } from '../../test/lark-emulator/event-sender.js';
import { startProc, stopProc } from './procs.js';

const APP_ID = 'cli_a1b2c3d4e5f60003';
const APP_SECRET = 'bench-secret';
const ENCRYPT_KEY = 'bench-encrypt-key';
const TOKEN = 'bench-verification-token';
const APPROVAL_CODE = 'BENCH-APPROVAL';

export const LARK_CALLBACK = '/api/v1/lark/callback';

/** autocannon `requests`: a fresh event per request. */
export function eventRequests(): unknown[] {
  let n = 0;
  return [
    {
      method: 'POST',
      setupRequest(req: { headers?: Record<string, string>; body?: string }) {
        n++;
        const id = `INST-${process.pid}-${Date.now()}-${n}`;
        const raw = JSON.stringify({
          encrypt: larkEncrypt(JSON.stringify(approvalTaskEvent({ token: TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: id, taskId: `${id}-check`, userId: 'assistant' })), ENCRYPT_KEY),
        });
        const ts = String(Math.floor(Date.now() / 1000));
        const nonce = String(n);
        req.headers = { 'content-type': 'application/json', 'x-lark-request-timestamp': ts, 'x-lark-request-nonce': nonce, 'x-lark-signature': larkSign(ts, nonce, ENCRYPT_KEY, raw) };
        req.body = raw;
        return req;
      },
    },
  ];
}

export interface LarkWorld {
  /** The service's environment for it (add DATA_DIR, LOG_LEVEL…). */
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startLarkWorld(): Promise<LarkWorld> {
  const flowsDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-flows-'));
  const business = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '0' });
  const lark = await startProc('scripts/bench/lark-emulator-proc.ts', { APP_ID, APP_SECRET, APPROVAL_CODE });
  await writeFile(
    join(flowsDir, 'bench.json'),
    JSON.stringify({ kind: 'approval', id: 'bench', name: 'Bench', approvalCode: APPROVAL_CODE, fields: { account: { widget: 'Account', type: 'string' } }, check: { url: `${business.url}/check` }, secret: 'bench-business-secret-000', notify: { chatId: 'oc_bench' } }),
  );
  return {
    env: {
      FLOWS_DIR: flowsDir,
      LARK_APP_ID: APP_ID,
      LARK_APP_SECRET: APP_SECRET,
      LARK_DOMAIN: lark.url,
      LARK_ENCRYPT_KEY: ENCRYPT_KEY,
      LARK_VERIFICATION_TOKEN: TOKEN,
      LARK_ASSISTANT_USER_ID: 'assistant',
    },
    async close() {
      await stopProc(lark);
      await stopProc(business);
      await rm(flowsDir, { recursive: true, force: true });
    },
  };
}

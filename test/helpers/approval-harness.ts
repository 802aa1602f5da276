import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signBody } from '../../src/flows/business-call.js';
import type { Run } from '../../src/flows/run.js';
import { ApprovalEmulation, registerCardPatch } from '../lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from '../lark-emulator/emulator.js';
import { approvalTaskEvent, sendLarkEvent } from '../lark-emulator/event-sender.js';
import { FakeUpstream, type UpstreamHandler } from './fake-upstream.js';
import { removeDir, startTestApp, tempDir, waitFor, type TestApp } from './test-app.js';

export const APP_ID = 'cli_a1b2c3d4e5f60001';
export const APP_SECRET = 'approval-app-secret';
export const ENCRYPT_KEY = 'test-encrypt-key-123';
export const VERIFICATION_TOKEN = 'test-verification-token';
export const ASSISTANT = 'assistant01';
export const BUSINESS_SECRET = 'business-secret-0123456789';
export const APPROVAL_CODE = '7C468A54-8745-2245-9675-08654A7F3AE2';
export const PROGRESS_CHAT = 'oc_progress_chat';
export const RETRY_USER = 'ou_boss';
const TEMPLATES = fileURLToPath(new URL('../../templates', import.meta.url));

export const FORM = JSON.stringify([
  { id: 'w1', name: 'Account', type: 'input', value: 'alice' },
  { id: 'w2', name: 'Role', type: 'radioV2', value: 'Admin' },
  { id: 'w3', name: 'Valid until', type: 'date', value: '2026-12-31T00:00:00+08:00' },
]);

export function flowFile(businessUrl: string, overrides: Record<string, unknown> = {}) {
  return {
    $schema: './flow.schema.json',
    kind: 'approval',
    id: 'admin-permission',
    name: 'Admin console permission request',
    approvalCode: APPROVAL_CODE,
    fields: {
      account: { widget: 'Account', type: 'string', required: true },
      role: { widget: 'Role', type: 'enum', map: { 'Read only': 'viewer', Admin: 'admin' } },
      until: { widget: 'Valid until', type: 'date' },
    },
    check: { url: `${businessUrl}/perm/check`, mode: 'sync', timeoutMs: 1000, retries: 1 },
    execute: { url: `${businessUrl}/perm/grant`, mode: 'async', timeoutMs: 1000, retries: 1, callbackTimeoutMs: 60_000 },
    secret: '${env:TEST_BUSINESS_SECRET}',
    notify: { chatId: PROGRESS_CHAT, retryBy: [RETRY_USER] },
    ...overrides,
  };
}

export interface Harness {
  lark: LarkEmulator;
  approval: ApprovalEmulation;
  patches: Array<{ messageId: string; content: string }>;
  business: FakeUpstream;
  app: TestApp;
  flowsDir: string;
  newInstance(code: string, form?: string): void;
  /** Adds a PENDING task for the assistant at a node and sends its event. */
  pendingAt(instanceCode: string, taskId: string, node: string, opts?: { uuid?: string }): Promise<{ status: number; body: any }>;
  sendTaskEvent(instanceCode: string, taskId: string, opts?: { uuid?: string; status?: string }): Promise<{ status: number; body: any }>;
  callback(stage: 'check' | 'execute', body: unknown, opts?: { secret?: string; timestampSec?: number; unsigned?: boolean }): Promise<{ status: number; body: any }>;
  run(instanceCode: string): Promise<Run | undefined>;
  waitForRun(instanceCode: string, check: (r: Run) => boolean): Promise<Run>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(opts: { business?: UpstreamHandler; flow?: (businessUrl: string) => unknown } = {}): Promise<Harness> {
  process.env.TEST_BUSINESS_SECRET = BUSINESS_SECRET;
  const lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  const approval = new ApprovalEmulation(lark);
  const patches: Harness['patches'] = [];
  registerCardPatch(lark, patches);
  const business = await new FakeUpstream(opts.business ?? ((call) => ({ status: 200, body: { ticket_id: call.body.ticket_id, result: true, msg: 'ok' } }))).start();
  const flowsDir = await tempDir('lark-bridge-flows-');
  await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify((opts.flow ?? flowFile)(business.url), null, 2));
  const env = {
    LARK_APP_ID: APP_ID,
    LARK_APP_SECRET: APP_SECRET,
    LARK_DOMAIN: lark.url,
    LARK_ENCRYPT_KEY: ENCRYPT_KEY,
    LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
    LARK_ASSISTANT_USER_ID: ASSISTANT,
    FLOWS_DIR: flowsDir,
    TEMPLATES_DIR: TEMPLATES,
    PUBLIC_BASE_URL: 'https://bridge.example.test',
  };
  const h: Harness = {
    lark,
    approval,
    patches,
    business,
    app: await startTestApp(env),
    flowsDir,
    newInstance(code, form = FORM) {
      approval.createInstance({ approval_code: APPROVAL_CODE, instance_code: code, user_id: 'applicant1', open_id: 'ou_applicant1', form, task_list: [] });
    },
    async pendingAt(instanceCode, taskId, node, o) {
      approval.addTask(instanceCode, { id: taskId, user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: node });
      return h.sendTaskEvent(instanceCode, taskId, o);
    },
    sendTaskEvent(instanceCode, taskId, o = {}) {
      return sendLarkEvent(
        `${h.app.url}/api/v1/lark/callback`,
        approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode, taskId, userId: ASSISTANT, ...o }),
        { encryptKey: ENCRYPT_KEY },
      );
    },
    async callback(stage, body, o = {}) {
      const raw = JSON.stringify(body);
      const ts = String(o.timestampSec ?? Math.floor(Date.now() / 1000));
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (!o.unsigned) {
        headers['x-bridge-timestamp'] = ts;
        headers['x-bridge-signature'] = signBody(o.secret ?? BUSINESS_SECRET, ts, raw);
      }
      const res = await fetch(`${h.app.url}/api/v1/lark/${stage}/callback`, { method: 'POST', headers, body: raw });
      return { status: res.status, body: await res.json() };
    },
    run: (code) => h.app.deps.engine!.findRun(code),
    waitForRun: (code, check) =>
      waitFor(async () => {
        await h.app.deps.engine!.idle();
        const r = await h.run(code);
        return r && check(r) ? r : undefined;
      }),
    async restart() {
      await h.app.crash();
      h.app = await startTestApp(env, h.app.dataDir);
    },
    async close() {
      await h.app.stop();
      await lark.close();
      await business.close();
      await removeDir(h.app.dataDir);
      await removeDir(flowsDir);
    },
  };
  return h;
}

import { mkdir, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { createDeps } from '../../src/deps.js';
import { signBody } from '../../src/flows/business-call.js';
import type { Run } from '../../src/flows/run.js';
import { silentLogger } from '../../src/log.js';
import { ApprovalEmulation, registerCardPatch, type Gate } from '../lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from '../lark-emulator/emulator.js';
import { approvalTaskEvent, cardActionEvent, sendLarkEvent } from '../lark-emulator/event-sender.js';
import { FakeUpstream, type UpstreamHandler } from './fake-upstream.js';
import { removeDir, tempDir, TOKEN, waitFor, type TestApp } from './test-app.js';

export const APP_ID = 'cli_a1b2c3d4e5f60001';
export const APP_SECRET = 'approval-app-secret';
export const ENCRYPT_KEY = 'test-encrypt-key-123';
export const VERIFICATION_TOKEN = 'test-verification-token';
export const ASSISTANT = 'assistant01';
export const BUSINESS_SECRET = 'business-secret-0123456789';
export const APPROVAL_CODE = '7C468A54-8745-2245-9675-08654A7F3AE2';
export const PROGRESS_CHAT = 'oc_progress_chat';
export const RETRY_USER = 'ou_boss';
export const TEMPLATES = fileURLToPath(new URL('../../templates', import.meta.url));

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

export interface HarnessOptions {
  business?: UpstreamHandler;
  flow?: (businessUrl: string) => unknown;
  /** More flow files: file name → content. */
  moreFlows?: (businessUrl: string) => Record<string, unknown>;
  /** Environment overrides; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>;
  clock?: Clock;
}

export interface Harness {
  lark: LarkEmulator;
  approval: ApprovalEmulation;
  patches: Array<{ messageId: string; content: string }>;
  /** Holds card updates (PATCH) while closed. */
  cardGate: Gate;
  business: FakeUpstream;
  app: TestApp;
  flowsDir: string;
  env: Record<string, string>;
  newInstance(code: string, form?: string, approvalCode?: string): void;
  /** Adds a PENDING task for the assistant at a node and sends its event. */
  pendingAt(instanceCode: string, taskId: string, node: string, opts?: { uuid?: string; approvalCode?: string }): Promise<{ status: number; body: any }>;
  sendTaskEvent(instanceCode: string, taskId: string, opts?: { uuid?: string; status?: string; userId?: string; approvalCode?: string }): Promise<{ status: number; body: any }>;
  callback(stage: 'check' | 'execute', body: unknown, opts?: { secret?: string; timestampSec?: number; unsigned?: boolean }): Promise<{ status: number; body: any }>;
  pressRetry(runId: string, stage: string, operator?: string): Promise<{ status: number; body: any }>;
  run(instanceCode: string): Promise<Run | undefined>;
  waitForRun(instanceCode: string, check: (r: Run) => boolean, timeoutMs?: number): Promise<Run>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  process.env.TEST_BUSINESS_SECRET = BUSINESS_SECRET;
  const lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  const approval = new ApprovalEmulation(lark);
  const patches: Harness['patches'] = [];
  const cardGate = registerCardPatch(lark, patches);
  const business = await new FakeUpstream(opts.business ?? ((call) => ({ status: 200, body: { ticket_id: call.body.ticket_id, result: true, msg: 'ok' } }))).start();
  const flowsDir = await tempDir('lark-bridge-flows-');
  await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify((opts.flow ?? flowFile)(business.url), null, 2));
  for (const [file, content] of Object.entries(opts.moreFlows?.(business.url) ?? {})) await writeFile(join(flowsDir, file), JSON.stringify(content, null, 2));
  const env = approvalEnv(lark.url, flowsDir, opts.env);
  const h: Harness = {
    lark,
    approval,
    patches,
    cardGate,
    business,
    app: await startApprovalApp(env, undefined, opts.clock),
    flowsDir,
    env,
    newInstance(code, form = FORM, approvalCode = APPROVAL_CODE) {
      approval.createInstance({ approval_code: approvalCode, instance_code: code, user_id: 'applicant1', open_id: 'ou_applicant1', form, task_list: [] });
    },
    async pendingAt(instanceCode, taskId, node, o) {
      approval.addTask(instanceCode, { id: taskId, user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: node });
      return h.sendTaskEvent(instanceCode, taskId, o);
    },
    sendTaskEvent(instanceCode, taskId, o = {}) {
      return sendLarkEvent(
        `${h.app.url}/api/v1/lark/callback`,
        approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: o.approvalCode ?? APPROVAL_CODE, instanceCode, taskId, userId: o.userId ?? ASSISTANT, uuid: o.uuid, status: o.status }),
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
    async pressRetry(runId, stage, operator = RETRY_USER) {
      const run = await h.run(runId);
      return sendLarkEvent(
        `${h.app.url}/api/v1/lark/card`,
        cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: operator, messageId: run?.cardMessageId ?? 'om_none', chatId: PROGRESS_CHAT, value: { action: 'retry', runId, stage } }),
        { encryptKey: ENCRYPT_KEY },
      );
    },
    run: (code) => h.app.deps.engine!.findRun(code),
    waitForRun: (code, check, timeoutMs) =>
      waitFor(async () => {
        await h.app.deps.engine!.idle();
        const r = await h.run(code);
        return r && check(r) ? r : undefined;
      }, timeoutMs),
    async restart() {
      await h.app.crash();
      h.app = await startApprovalApp(env, h.app.dataDir, opts.clock);
    },
    async close() {
      cardGate.open();
      for (const g of Object.values(approval.gates)) g.open();
      await h.app.stop();
      await lark.close();
      await business.close();
      await removeDir(h.app.dataDir);
      await removeDir(flowsDir);
    },
  };
  return h;
}

/** The environment of a service wired to the emulator with approval flows from `flowsDir`. */
export function approvalEnv(larkUrl: string, flowsDir: string, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    LARK_APP_ID: APP_ID,
    LARK_APP_SECRET: APP_SECRET,
    LARK_DOMAIN: larkUrl,
    LARK_ENCRYPT_KEY: ENCRYPT_KEY,
    LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
    LARK_ASSISTANT_USER_ID: ASSISTANT,
    FLOWS_DIR: flowsDir,
    TEMPLATES_DIR: TEMPLATES,
    PUBLIC_BASE_URL: 'https://bridge.example.test',
    ...overrides,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** The real app (as test-app.ts builds it) with an injectable clock. */
export async function startApprovalApp(env: Record<string, string>, dataDir?: string, clock?: Clock): Promise<TestApp> {
  const dir = dataDir ?? (await tempDir());
  await mkdir(join(dir, 'flows-for-test'), { recursive: true });
  const config = loadConfig({ DATA_DIR: dir, FLOWS_DIR: join(dir, 'flows-for-test'), API_TOKENS: TOKEN, LOG_LEVEL: 'silent', ...env });
  const deps = await createDeps(config, silentLogger(), clock);
  const app = createApp(deps);
  await deps.worker.resume();
  await deps.engine?.resume();
  deps.flows.watch();
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const shutDown = async (graceMs: number, flushStore: boolean) => {
    deps.flows.close();
    await deps.engine?.stop();
    await deps.worker.stop(graceMs);
    await new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    if (flushStore) await deps.store.close();
    await deps.upstream.close();
  };
  // routes: what createApp lists (TestApp gains it on main); a variable, so either shape type-checks.
  const started = { url, dataDir: dir, deps, routes: app.routes, stop: () => shutDown(5_000, true), crash: () => shutDown(0, false) };
  return started;
}

/** Collects unhandled promise rejections while a test runs (any one is a bug: it ends the real process). */
export function watchUnhandledRejections(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onRejection = (err: unknown) => errors.push(err);
  process.on('unhandledRejection', onRejection);
  return { errors, stop: () => process.off('unhandledRejection', onRejection) };
}

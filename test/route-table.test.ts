import { writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from '../src/flows/run.js';
import type { Job } from '../src/jobs/job.js';
import { ApprovalEmulation, registerCardPatch } from './lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent, cardActionEvent, larkEncrypt, sendLarkEvent } from './lark-emulator/event-sender.js';
import { APP_ID, APP_SECRET, APPROVAL_CODE, ASSISTANT, BUSINESS_SECRET, ENCRYPT_KEY, flowFile, FORM, PROGRESS_CHAT, RETRY_USER, VERIFICATION_TOKEN } from './helpers/approval-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, tempDir, waitFor, waitForJob, type TestApp } from './helpers/test-app.js';

/**
 * Every registered route, called without credentials (and with wrong ones) under many spellings
 * of its path and with every method: never a 2xx, never a side effect. The app is the full one:
 * Lark, a loaded approval flow with an external-options URL, chats and a task-sync allow-list, so
 * every kind of route is registered and a bypass would be seen by a fake.
 */
const TEMPLATES = fileURLToPath(new URL('../templates', import.meta.url));
const OPTIONS_URI = 'roles';
const RUN = 'INST-ROUTES';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

let lark: LarkEmulator;
let approval: ApprovalEmulation;
let business: FakeUpstream;
let upstream: FakeUpstream;
let flowsDir: string;
let app: TestApp;
let jobId: string;
let cardMessageId: string;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

beforeAll(async () => {
  process.env.TEST_BUSINESS_SECRET = BUSINESS_SECRET;
  lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  approval = new ApprovalEmulation(lark);
  registerCardPatch(lark, []);
  business = await startFakeUpstream((c) => ({ status: 200, body: { ticket_id: c.body?.ticket_id, result: false, error: 'no quota' } }));
  upstream = await startFakeUpstream();
  flowsDir = await tempDir('lark-bridge-flows-');
  const flow = flowFile(business.url, {
    check: undefined,
    execute: { url: `${business.url}/grant`, mode: 'sync', timeoutMs: 1000, retries: 0 },
    options: { [OPTIONS_URI]: { token: 'options-token', url: `${business.url}/options` } },
  });
  await writeFile(join(flowsDir, 'flow.json'), JSON.stringify(flow));
  app = await startTestApp({
    LARK_APP_ID: APP_ID,
    LARK_APP_SECRET: APP_SECRET,
    LARK_DOMAIN: lark.url,
    LARK_ENCRYPT_KEY: ENCRYPT_KEY,
    LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
    LARK_ASSISTANT_USER_ID: ASSISTANT,
    FLOWS_DIR: flowsDir,
    TEMPLATES_DIR: TEMPLATES,
    PUBLIC_BASE_URL: 'https://bridge.example.test',
    CHAT_ID: 'oc_main',
    TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
  });

  // Things a bypass could reach: a job of a real token, and a failed run with a Retry button.
  const created = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: ['legit'] } });
  jobId = created.json.jobId;
  await waitForJob(app.url, jobId);
  approval.createInstance({ approval_code: APPROVAL_CODE, instance_code: RUN, user_id: 'applicant1', open_id: 'ou_applicant1', form: FORM, task_list: [] });
  approval.addTask(RUN, { id: 't-exec', user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: 'execute_node' });
  const event = approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: RUN, taskId: 't-exec', userId: ASSISTANT });
  expect((await sendLarkEvent(`${app.url}/api/v1/lark/callback`, event, { encryptKey: ENCRYPT_KEY })).status).toBe(200);
  const run = await waitFor(async () => {
    await app.deps.engine!.idle();
    const r = await app.deps.engine!.findRun(RUN);
    return r?.status === 'failed' && r.cardMessageId ? r : undefined;
  });
  cardMessageId = run.cardMessageId!;
});

afterAll(async () => {
  agent.destroy();
  await app?.stop();
  await lark?.close();
  await business?.close();
  await upstream?.close();
  await removeDir(app.dataDir);
  await removeDir(flowsDir);
});

/** What each route would do something with, were it reached: a body that is valid but for the credentials. */
function bodyFor(path: string): string {
  if (path === '/api/task-sync') return JSON.stringify({ webhookUrl: `${upstream.url}/hooks/x`, records: ['forged'] });
  if (path === '/api/endpoint') return JSON.stringify({ summaryText: 'forged summary' });
  if (path === '/api/v1/lark/callback') {
    const ev = approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: RUN, taskId: 't-forged', userId: ASSISTANT });
    return JSON.stringify({ encrypt: larkEncrypt(JSON.stringify(ev), ENCRYPT_KEY) });
  }
  if (path === '/api/v1/lark/card') {
    const press = cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: RETRY_USER, messageId: cardMessageId, chatId: PROGRESS_CHAT, value: { action: 'retry', runId: RUN, stage: 'execute' } });
    return JSON.stringify({ encrypt: larkEncrypt(JSON.stringify(press), ENCRYPT_KEY) });
  }
  if (/^\/api\/v1\/lark\/(check|execute)\/callback$/.test(path)) return JSON.stringify({ ticket_id: RUN, result: true, msg: 'forged' });
  if (path.startsWith('/field/')) return JSON.stringify({ user_id: 'u1', locale: 'zh_cn' });
  return '{}';
}

/** Spellings of a path that a lax router, a decoding proxy or a normaliser might take for it. */
function variants(path: string): string[] {
  const out = new Set<string>([path]);
  const letters = [...path].map((c, i) => (/[a-z]/i.test(c) ? i : -1)).filter((i) => i >= 0);
  const swap = (i: number) => path.slice(0, i) + (path[i] === path[i]!.toUpperCase() ? path[i]!.toLowerCase() : path[i]!.toUpperCase()) + path.slice(i + 1);
  const hex = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  const segments = path.split('/').slice(1);
  out.add(path.toUpperCase());
  out.add([...path].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join(''));
  if (letters.length) out.add(swap(letters[0]!)).add(swap(letters.at(-1)!));
  out.add(`${path}/`).add(`${path}//`).add(`/${path}`).add(path.replace(/\//g, '//')).add(`${path}/.`).add(`${path}/..`);
  out.add(`/.${path}`).add(path.replace('/', '/./')).add(`/${segments[0]}/./${segments.slice(1).join('/')}`);
  out.add(`/x/..${path}`).add(`/${segments[0]}/x/../${segments.slice(1).join('/')}`).add(`/%2e${path}`).add(`/x/%2e%2e${path}`);
  out.add(`${path}?`).add(`${path}?a=1`).add(`${path}?token=wrong-token&a=1`).add(`${path};a=1`).add(`${path}%00`).add(`${path}%20`).add(`${path}.`);
  out.add(path.replace(/-/g, '%2D')).add(path.replace(/-/g, '%2d')).add(path.replace(/a/, '%61')).add(path.replace(/[a-z]/g, (c) => hex(c)));
  out.add(path.replace(/\/(?=.)/g, (m, i: number) => (i === 0 ? m : '%2F'))).add(path.replace(/\//g, '%2F')).add(path.replace(/\/(?=.)/g, (m, i: number) => (i === 0 ? m : '%5C')));
  out.add(path.replace(/^\/([a-z])/i, (_m, c: string) => `/${hex(c)}`));
  return [...out];
}

function send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(app.url);
    const req = request(
      { host: url.hostname, port: url.port, method, path, agent, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Plausible but wrong credentials of every scheme, sent at once. */
function wrongCredentials(): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  return {
    authorization: 'Bearer not-a-configured-token',
    'x-lark-request-timestamp': ts,
    'x-lark-request-nonce': 'nonce',
    'x-lark-signature': '0'.repeat(64),
    'x-bridge-timestamp': ts,
    'x-bridge-signature': '0'.repeat(64),
  };
}

async function sideEffects() {
  const jobs = app.deps.store.collection<Job>('jobs');
  const runs = app.deps.store.collection<Run>('runs');
  return {
    upstreamCalls: upstream.calls.length,
    businessCalls: business.calls.length,
    larkWrites: lark.calls.filter((c) => c.method !== 'GET' && !c.path.startsWith('/open-apis/auth/')).length,
    larkMessages: lark.messages.size,
    liveJobs: (await jobs.live()).length,
    archivedJobs: await jobs.archivedCount(),
    run: JSON.stringify(await runs.get(RUN)),
    liveRuns: (await runs.live()).length,
    seenEvents: await app.deps.store.keys('lark-events').size(),
  };
}

describe('the route table', () => {
  it('registers every kind of route, each with a named guard', () => {
    const byPath = Object.fromEntries(app.routes.map((r) => [`${r.method} ${r.path}`, r.guard]));
    expect(byPath).toEqual({
      'GET /healthz': 'public',
      'GET /readyz': 'public',
      'GET /api/status': 'bearer',
      'GET /metrics': 'metrics-token',
      'POST /api/task-sync': 'bearer',
      'GET /api/task-sync/status/:jobId': 'bearer',
      'POST /api/endpoint': 'bearer',
      'GET /field/:uri': 'options-token',
      'POST /field/:uri': 'options-token',
      'POST /api/v1/lark/callback': 'lark-signature',
      'POST /api/v1/lark/card': 'lark-signature',
      'POST /api/v1/lark/check/callback': 'business-hmac',
      'POST /api/v1/lark/execute/callback': 'business-hmac',
      'GET /api/pollers': 'bearer',
      'POST /api/pollers/:id/run': 'bearer',
    });
  });

  it('answers no route, under any spelling or method, with a 2xx or a side effect without credentials', async () => {
    await app.deps.engine!.idle();
    const before = await sideEffects();
    const problems: string[] = [];
    let requests = 0;
    for (const r of app.routes) {
      const concrete = r.path.replace(':jobId', jobId).replace(':uri', OPTIONS_URI);
      for (const path of variants(concrete)) {
        for (const method of METHODS) {
          for (const headers of [{}, wrongCredentials()]) {
            const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? bodyFor(concrete) : undefined;
            const res = await send(method, path, headers, body);
            requests++;
            const exactPublic = r.guard === 'public' && path.split('?')[0] === concrete && (method === 'GET' || method === 'HEAD');
            const ok = exactPublic ? res.status === 200 : res.status >= 400 && res.status < 500;
            if (!ok) problems.push(`${method} ${path} (${r.guard}, ${Object.keys(headers).length ? 'wrong credentials' : 'none'}) → ${res.status} ${res.text.slice(0, 120)}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(requests).toBeGreaterThan(2000);
    await app.deps.engine!.idle();
    await app.deps.store.flush();
    expect(await sideEffects()).toEqual(before);
  });

  it('still serves the same routes to the right credentials (the probes above were not refused for another reason)', async () => {
    expect((await api(app.url, `/api/task-sync/status/${jobId}`)).status).toBe(200);
    const options = await api(app.url, `/field/${OPTIONS_URI}`, { token: null, body: { token: 'options-token', locale: 'zh_cn' } });
    expect(options.status).toBe(200);
    expect(business.calls.filter((c) => c.path === '/options')).toHaveLength(1);
  });
});

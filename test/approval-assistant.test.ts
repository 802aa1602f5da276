import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import { ApprovalEngine } from '../src/flows/approval-engine.js';
import { FlowRegistry } from '../src/flows/flow-registry.js';
import { RunInbox, type CallbackResult, type InboxItem } from '../src/flows/run-inbox.js';
import type { Run } from '../src/flows/run.js';
import type { ApprovalApi } from '../src/lark/approval.js';
import type { Messenger } from '../src/lark/messages.js';
import { silentLogger } from '../src/log.js';
import { openJournalStore } from '../src/store/open-store.js';
import type { UpstreamClient } from '../src/upstream/client.js';
import { ApprovalEmulation } from './lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import { APP_ID, APP_SECRET, APPROVAL_CODE, approvalEnv, ASSISTANT, BUSINESS_SECRET, ENCRYPT_KEY, flowFile, startApprovalApp, VERIFICATION_TOKEN } from './helpers/approval-harness.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { removeDir, tempDir, waitFor, type TestApp } from './helpers/test-app.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function flowsDirWithFlow(): Promise<string> {
  const dir = await tempDir('lark-bridge-flows-');
  cleanups.push(() => removeDir(dir));
  await writeFile(join(dir, 'admin-permission.json'), JSON.stringify(flowFile('https://admin.example.com')));
  return dir;
}

describe('LARK_ASSISTANT_USER_ID is required when approval flows are loaded', () => {
  it('refuses to start, in one line naming the variable and the file, exit 2', async () => {
    const flowsDir = await flowsDirWithFlow();
    const dataDir = await tempDir();
    cleanups.push(() => removeDir(dataDir));
    const env = { ...approvalEnv('http://127.0.0.1:9', flowsDir, { LARK_ASSISTANT_USER_ID: undefined }), DATA_DIR: dataDir, TEST_BUSINESS_SECRET: BUSINESS_SECRET, LOG_LEVEL: 'silent' };
    const { code, output } = await runToExit(env);
    expect(code).toBe(2);
    const lines = output.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^lark-bridge: cannot start, LARK_ASSISTANT_USER_ID is not set, but admin-permission\.json declare approval flows: set it to /);
  });

  it('refuses an approval flow hot-loaded while it is unset, naming the variable; the event is not acted on', async () => {
    process.env.TEST_BUSINESS_SECRET = BUSINESS_SECRET;
    const lark: LarkEmulator = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    cleanups.push(() => lark.close());
    const approval = new ApprovalEmulation(lark);
    const flowsDir = await tempDir('lark-bridge-flows-');
    cleanups.push(() => removeDir(flowsDir));
    const app: TestApp = await startApprovalApp(approvalEnv(lark.url, flowsDir, { LARK_ASSISTANT_USER_ID: undefined }));
    cleanups.push(async () => {
      await app.stop();
      await removeDir(app.dataDir);
    });
    await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify(flowFile('https://admin.example.com')));
    const problem = await waitFor(() => app.deps.flows.problems()[0]);
    expect(problem).toMatchObject({ file: 'admin-permission.json', path: 'kind', needsEnv: 'LARK_ASSISTANT_USER_ID' });
    expect(problem.message).toMatch(/^LARK_ASSISTANT_USER_ID is not set/);
    expect(app.deps.flows.all()).toHaveLength(0);

    approval.createInstance({ approval_code: APPROVAL_CODE, instance_code: 'INST-1', user_id: 'u', open_id: 'ou_u', form: '[]', task_list: [] });
    approval.addTask('INST-1', { id: 't1', user_id: 'someone-else', status: 'PENDING', node_name: 'check_node' });
    const res = await sendLarkEvent(
      `${app.url}/api/v1/lark/callback`,
      approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: 'INST-1', taskId: 't1', userId: 'someone-else' }),
      { encryptKey: ENCRYPT_KEY },
    );
    expect(res.status).toBe(200);
    await app.deps.engine!.idle();
    expect(await app.deps.engine!.findRun('INST-1')).toBeUndefined();
    expect(lark.callsTo('GET', '/open-apis/approval/v4/instances')).toHaveLength(0);
  });

  it('the engine itself never acts without it, even with a flow loaded', async () => {
    process.env.TEST_BUSINESS_SECRET = BUSINESS_SECRET;
    const flowsDir = await flowsDirWithFlow();
    const dir = await tempDir();
    cleanups.push(() => removeDir(dir));
    const store = await openJournalStore({ dir, clock: systemClock });
    const flows = new FlowRegistry(flowsDir, process.env, silentLogger(), undefined, ASSISTANT);
    await flows.loadAll();
    expect(flows.all()).toHaveLength(1);
    const refuse = () => {
      throw new Error('must not be called');
    };
    const engine = new ApprovalEngine({
      runs: store.collection<Run>('runs'),
      locks: store,
      wakeups: store.collection('run-wakeups'),
      inbox: new RunInbox(store.collection<InboxItem>('run-inbox'), store.keys<CallbackResult>('run-callbacks'), systemClock),
      flows,
      approvals: { getInstance: refuse, approve: refuse, reject: refuse, subscribe: refuse } as unknown as ApprovalApi,
      messenger: { sendToChat: refuse, patchCard: refuse } as unknown as Messenger,
      upstream: { postJson: refuse, close: async () => undefined } as unknown as UpstreamClient,
      clock: systemClock,
      logger: silentLogger(),
      assistantUserId: undefined,
      publicBaseUrl: 'https://bridge.example.test',
      templatesDir: flowsDir,
      approvalLink: (c) => c,
    });
    for (const userId of ['someone-else', ASSISTANT, '']) {
      expect(await engine.acceptTaskEvent({ approvalCode: APPROVAL_CODE, instanceCode: 'INST-2', taskId: 't1', status: 'PENDING', userId })).toBe('ignored');
    }
    await engine.idle();
    expect(await store.collection('run-inbox').live()).toHaveLength(0);
    expect(await store.collection('runs').live()).toHaveLength(0);
  });
});

/** Runs `src/main.ts` until it exits; a process still running after 15 s is killed (the guard is gone). */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: fileURLToPath(new URL('..', import.meta.url)), env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

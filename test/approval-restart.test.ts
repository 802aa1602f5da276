import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { signBody } from '../src/flows/business-call.js';
import { ApprovalEmulation, registerCardPatch } from './lark-emulator/approval.js';
import { larkError, startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent, cardActionEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import {
  APP_ID,
  APP_SECRET,
  APPROVAL_CODE,
  approvalEnv,
  ASSISTANT,
  BUSINESS_SECRET,
  ENCRYPT_KEY,
  flowFile,
  FORM,
  PROGRESS_CHAT,
  RETRY_USER,
  VERIFICATION_TOKEN,
} from './helpers/approval-harness.js';
import { FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

/**
 * The real process, killed with SIGKILL at the worst moments and started again on the same
 * DATA_DIR: nothing a client was told is lost.
 */
let lark: LarkEmulator;
let approval: ApprovalEmulation;
let business: FakeUpstream;
let env: Record<string, string>;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];
const holds: Array<() => void> = [];
/** A business answer that never comes before the kill (released after the test). */
const heldAnswer = () => new Promise<void>((resolve) => holds.push(resolve));

afterEach(async () => {
  for (const release of holds.splice(0)) release();
  for (const g of Object.values(approval?.gates ?? {})) g.open();
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await lark?.close();
  await business?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

async function setUp(flow: (url: string) => unknown): Promise<void> {
  lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  approval = new ApprovalEmulation(lark);
  registerCardPatch(lark, []);
  business = await new FakeUpstream((c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'ok' } })).start();
  const flowsDir = await tempDir('lark-bridge-flows-');
  const dataDir = await tempDir();
  dirs.push(flowsDir, dataDir);
  await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify(flow(business.url)));
  env = { ...approvalEnv(lark.url, flowsDir), DATA_DIR: dataDir, TEST_BUSINESS_SECRET: BUSINESS_SECRET };
}

async function start(): Promise<ServiceProcess> {
  const p = await spawnService(env);
  procs.push(p);
  return p;
}

function pendingAt(service: ServiceProcess, instanceCode: string, taskId: string, node: string) {
  approval.addTask(instanceCode, { id: taskId, user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: node });
  return sendLarkEvent(
    `${service.url}/api/v1/lark/callback`,
    approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode, taskId, userId: ASSISTANT }),
    { encryptKey: ENCRYPT_KEY },
  );
}

const cardText = () => [...lark.messages.values()].filter((m) => m.msg_type === 'interactive').map((m) => m.content).join('\n');
const newInstance = (code: string) =>
  approval.createInstance({ approval_code: APPROVAL_CODE, instance_code: code, user_id: 'applicant1', open_id: 'ou_applicant1', form: FORM, task_list: [] });

describe('kill -9 and start again', () => {
  it('Retry → SIGKILL → restart: the run brought back from the archive completes (business called, Lark task approved)', async () => {
    await setUp((url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'sync', timeoutMs: 2000, retries: 0 } }));
    newInstance('INST-R');
    // Lark refuses the approve for good: the run fails with the reason and a Retry button.
    lark.failNext('POST /open-apis/approval/v4/tasks/approve', larkError(400, 1390001, 'param is invalid: comment'));
    const first = await start();
    expect((await pendingAt(first, 'INST-R', 't-exec', 'execute_node')).status).toBe(200);
    await waitFor(() => cardText().includes('Lark refused to approve the task'));
    expect(cardText()).toContain('Retry execute');
    expect(business.calls).toHaveLength(1);
    expect(approval.task('INST-R', 't-exec').status).toBe('PENDING');

    // Retry, and the process dies while the retried step waits on Lark.
    approval.gates.get.hold((code) => code === 'INST-R');
    const msg = [...lark.messages.values()].find((m) => m.msg_type === 'interactive')!;
    const press = await sendLarkEvent(
      `${first.url}/api/v1/lark/card`,
      cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: RETRY_USER, messageId: msg.message_id, chatId: PROGRESS_CHAT, value: { action: 'retry', runId: 'INST-R', stage: 'execute' } }),
      { encryptKey: ENCRYPT_KEY },
    );
    expect(press.body).toEqual({ toast: { type: 'success', content: 'Retrying: approve the task…' } });
    await waitFor(() => approval.gates.get.waiting > 0);
    expect(await first.kill('SIGKILL')).toBeNull();
    approval.gates.get.open();

    const second = await start();
    expect(second.output()).toMatch(/"resumedRuns":1/);
    await waitFor(() => approval.task('INST-R', 't-exec').status === 'APPROVED');
    await waitFor(() => cardText().includes('🎉 Done'));
    expect(business.calls).toHaveLength(1); // the business had answered: only the Lark step was retried
    expect(lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve')).toHaveLength(2);
  });

  it('a run whose business call failed: Retry → SIGKILL before anything else → restart → the business is called again', async () => {
    await setUp((url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'sync', timeoutMs: 2000, retries: 0 } }));
    business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'LDAP down' } });
    newInstance('INST-B');
    const first = await start();
    await pendingAt(first, 'INST-B', 't-exec', 'execute_node');
    await waitFor(() => cardText().includes('LDAP down') && cardText().includes('Retry execute'));
    business.handler = async () => {
      await heldAnswer();
      return { status: 503 };
    };
    const msg = [...lark.messages.values()].find((m) => m.msg_type === 'interactive')!;
    const press = await sendLarkEvent(
      `${first.url}/api/v1/lark/card`,
      cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: RETRY_USER, messageId: msg.message_id, chatId: PROGRESS_CHAT, value: { action: 'retry', runId: 'INST-B', stage: 'execute' } }),
      { encryptKey: ENCRYPT_KEY },
    );
    expect(press.body.toast.type).toBe('success');
    await waitFor(() => business.calls.length === 2); // the retried call is in flight…
    expect(await first.kill('SIGKILL')).toBeNull(); // …when the process dies
    business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'granted on retry' } });
    await start();
    await waitFor(() => cardText().includes('granted on retry') && cardText().includes('🎉 Done'));
    // The retry's call went out again with the same Idempotency-Key, so the API can drop it.
    expect(business.calls.map((c) => c.headers['idempotency-key'])).toEqual(['INST-B:execute:t-exec:0', 'INST-B:execute:t-exec:1', 'INST-B:execute:t-exec:1']);
  });

  it('an early callback, then SIGKILL during our call: after restart the result is used and the API is not called again', async () => {
    await setUp((url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'async', timeoutMs: 10_000, retries: 0 } }));
    let service!: ServiceProcess;
    let calledBack = 0;
    business.handler = async (call) => {
      const raw = JSON.stringify({ ticket_id: call.body.ticket_id, result: true, msg: 'granted, told you first' });
      const ts = String(Math.floor(Date.now() / 1000));
      const res = await fetch(`${service.url}/api/v1/lark/execute/callback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-bridge-timestamp': ts, 'x-bridge-signature': signBody(BUSINESS_SECRET, ts, raw) },
        body: raw,
      });
      calledBack = res.status;
      await heldAnswer(); // our call is never answered before the kill
      return { status: 202 };
    };
    newInstance('INST-K');
    service = await start();
    await pendingAt(service, 'INST-K', 't-exec', 'execute_node');
    await waitFor(() => calledBack === 200);
    expect(await service.kill('SIGKILL')).toBeNull();
    service = await start();
    await waitFor(() => approval.task('INST-K', 't-exec').status === 'APPROVED');
    expect(business.calls).toHaveLength(1);
    expect(approval.instances.get('INST-K')!.comments[0]!.comment).toBe('granted, told you first');
  });

  it('SIGKILL right after Lark got its 200: the event is not lost', async () => {
    await setUp((url) => flowFile(url, { execute: undefined }));
    approval.gates.get.hold(); // nothing gets past the first look-up before the kill
    newInstance('INST-F');
    const first = await start();
    expect((await pendingAt(first, 'INST-F', 't-check', 'check_node')).status).toBe(200);
    expect(await first.kill('SIGKILL')).toBeNull();
    approval.gates.get.open();
    await start();
    await waitFor(() => approval.task('INST-F', 't-check').status === 'APPROVED');
    expect(business.calls).toHaveLength(1);
  });
});

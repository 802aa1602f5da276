import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ApprovalEmulation, registerCardPatch } from './lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent, cardActionEvent } from './lark-emulator/event-sender.js';
import { LongConnection } from './lark-emulator/long-connection.js';
import { APP_ID, APP_SECRET, APPROVAL_CODE, ASSISTANT, BUSINESS_SECRET, FORM, flowFile, RETRY_USER, VERIFICATION_TOKEN } from './helpers/approval-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

let lark: LarkEmulator;
let lc: LongConnection;
let business: FakeUpstream;
let svc: ServiceProcess | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await svc?.kill('SIGKILL');
  lc?.close();
  await lark?.close();
  await business?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

/** The real service process in ws mode, its long connection to the emulator open. */
async function startWsService(flow: (businessUrl: string) => unknown, business0: Parameters<typeof startFakeUpstream>[0]): Promise<ApprovalEmulation> {
  lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  lc = new LongConnection(lark, { [APP_ID]: APP_SECRET });
  const approval = new ApprovalEmulation(lark);
  registerCardPatch(lark, []);
  business = await startFakeUpstream(business0);
  const flowsDir = await tempDir('lark-bridge-ws-flows-');
  const dataDir = await tempDir('lark-bridge-ws-data-');
  dirs.push(flowsDir, dataDir);
  await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify(flow(business.url)));
  svc = await spawnService({
    DATA_DIR: dataDir,
    FLOWS_DIR: flowsDir,
    TEMPLATES_DIR: fileURLToPath(new URL('../templates', import.meta.url)),
    LARK_APP_ID: APP_ID,
    LARK_APP_SECRET: APP_SECRET,
    LARK_DOMAIN: lark.url,
    LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
    LARK_ASSISTANT_USER_ID: ASSISTANT,
    LARK_EVENT_MODE: 'ws',
    TEST_BUSINESS_SECRET: BUSINESS_SECRET,
  });
  await waitFor(() => lc.clients.size === 1, 15_000).catch((e) => {
    throw new Error(`${e.message}\n${svc!.output()}\nendpoint calls: ${JSON.stringify(lc.endpointCalls)}`);
  });
  expect(lc.endpointCalls).toEqual([{ AppID: APP_ID }]);
  return approval;
}

describe('LARK_EVENT_MODE=ws', () => {
  it('receives approval events over the SDK long connection and runs the same pipeline', async () => {
    const approval = await startWsService(
      (url) => flowFile(url, { execute: undefined }),
      (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'ok over ws' } }),
    );

    approval.createInstance({
      approval_code: APPROVAL_CODE,
      instance_code: 'WS-1',
      user_id: 'applicant1',
      open_id: 'ou_applicant1',
      form: FORM,
      task_list: [{ id: 'ws-task', user_id: ASSISTANT, status: 'PENDING', node_name: 'check_node' }],
    });
    const event = approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: 'WS-1', taskId: 'ws-task', userId: ASSISTANT });
    expect(await lc.pushEvent(event)).toMatchObject({ code: 200 });
    await waitFor(() => lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve').length === 1, 10_000);
    expect(lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve')[0]!.body).toMatchObject({ instance_code: 'WS-1', task_id: 'ws-task', comment: 'ok over ws' });

    // Redelivered over the connection: acknowledged, not acted on again.
    expect(await lc.pushEvent(event)).toMatchObject({ code: 200 });
    await new Promise((r) => setTimeout(r, 200));
    expect(business.calls).toHaveLength(1);
    expect(lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve')).toHaveLength(1);

    expect(await svc!.kill('SIGTERM')).toBe(0);
  });

  it('answers a Retry press (card.action.trigger) over the connection with a toast, and retries once', async () => {
    const approval = await startWsService(
      (url) => flowFile(url, { check: undefined, execute: { url: `${url}/grant`, mode: 'sync', retries: 0 } }),
      (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'quota exceeded' } }),
    );
    approval.createInstance({
      approval_code: APPROVAL_CODE,
      instance_code: 'WS-2',
      user_id: 'applicant1',
      open_id: 'ou_applicant1',
      form: FORM,
      task_list: [{ id: 'ws-exec', user_id: ASSISTANT, status: 'PENDING', node_name: 'execute_node' }],
    });
    const event = approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: 'WS-2', taskId: 'ws-exec', userId: ASSISTANT });
    expect(await lc.pushEvent(event)).toMatchObject({ code: 200 });
    await waitFor(() => lark.callsTo('POST', '/open-apis/approval/v4/tasks/reject').length === 1, 10_000);
    const card = [...lark.messages.values()].find((m) => m.msg_type === 'interactive')!;
    await waitFor(() => card.content.includes('Retry'), 10_000);

    business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'granted over ws' } });
    const retry = (operator: string) =>
      cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: operator, messageId: card.message_id, chatId: card.chat_id, value: { action: 'retry', runId: 'WS-2', stage: 'execute' } });
    expect(await lc.pushEvent(retry('ou_intern'))).toEqual({ code: 200, data: { toast: { type: 'error', content: 'You are not allowed to retry this request.' } } });
    const press = retry(RETRY_USER);
    expect(await lc.pushEvent(press)).toEqual({ code: 200, data: { toast: { type: 'success', content: 'Retrying execute…' } } });
    await waitFor(() => business.calls.length === 2 && card.content.includes('Done'), 10_000);
    // The same press delivered again: nothing to show, nothing done.
    expect(await lc.pushEvent(press)).toEqual({ code: 200, data: {} });
    await new Promise((r) => setTimeout(r, 200));
    expect(business.calls).toHaveLength(2);

    expect(await svc!.kill('SIGTERM')).toBe(0);
  });
});

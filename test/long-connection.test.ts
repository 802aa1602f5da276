import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ApprovalEmulation, registerCardPatch } from './lark-emulator/approval.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent } from './lark-emulator/event-sender.js';
import { LongConnection } from './lark-emulator/long-connection.js';
import { APP_ID, APP_SECRET, APPROVAL_CODE, ASSISTANT, BUSINESS_SECRET, FORM, flowFile, VERIFICATION_TOKEN } from './helpers/approval-harness.js';
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

describe('LARK_EVENT_MODE=ws', () => {
  it('receives approval events over the SDK long connection and runs the same pipeline', async () => {
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    lc = new LongConnection(lark, { [APP_ID]: APP_SECRET });
    const approval = new ApprovalEmulation(lark);
    registerCardPatch(lark, []);
    business = await startFakeUpstream((c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'ok over ws' } }));
    const flowsDir = await tempDir('lark-bridge-ws-flows-');
    const dataDir = await tempDir('lark-bridge-ws-data-');
    dirs.push(flowsDir, dataDir);
    await writeFile(join(flowsDir, 'admin-permission.json'), JSON.stringify(flowFile(business.url, { execute: undefined })));

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

    expect(await svc.kill('SIGTERM')).toBe(0);
  });
});

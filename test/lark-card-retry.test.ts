import { afterEach, describe, expect, it } from 'vitest';
import { approvalTaskEvent, legacyCardAction, postSigned, signedRequest } from './lark-emulator/event-sender.js';
import { APP_ID, APPROVAL_CODE, ASSISTANT, ENCRYPT_KEY, flowFile, RETRY_USER, startHarness, VERIFICATION_TOKEN, type Harness } from './helpers/approval-harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const failingExecute = (url: string) => flowFile(url, { check: undefined, execute: { url: `${url}/grant`, mode: 'sync', retries: 0 } });

describe('Retry through a legacy card callback, against the real engine', () => {
  it('re-runs the stage for a verified press once; a replay or a forged presser does nothing', async () => {
    h = await startHarness({ flow: failingExecute });
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'quota exceeded' } });
    h.newInstance('LEG-1');
    await h.pendingAt('LEG-1', 't-exec', 'execute_node');
    const failed = await h.waitForRun('LEG-1', (r) => r.status === 'failed');
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'granted on retry' } });
    const url = `${h.app.url}/api/v1/lark/card`;
    const value = { action: 'retry', runId: 'LEG-1', stage: 'execute' };

    // A presser not in retryBy, with a genuine signature, then that press re-signed as the boss by a forger.
    const intern = signedRequest(legacyCardAction({ operatorOpenId: 'ou_intern', messageId: failed.cardMessageId!, value }), { legacyToken: VERIFICATION_TOKEN });
    expect((await postSigned(url, intern)).body).toEqual({ toast: { type: 'error', content: 'You are not allowed to retry this request.' } });
    expect((await postSigned(url, { raw: intern.raw.replace('ou_intern', RETRY_USER), headers: intern.headers })).status).toBe(401);
    expect(h.business.calls).toHaveLength(1);

    const boss = signedRequest(legacyCardAction({ operatorOpenId: RETRY_USER, messageId: failed.cardMessageId!, value }), { legacyToken: VERIFICATION_TOKEN });
    expect(await postSigned(url, boss)).toEqual({ status: 200, body: { toast: { type: 'success', content: 'Retrying execute…' } } });
    await h.waitForRun('LEG-1', (r) => r.status === 'done');
    // The same press replayed: answered, not acted on.
    expect(await postSigned(url, boss)).toEqual({ status: 200, body: {} });
    await h.app.deps.engine!.idle();
    expect(h.business.calls).toHaveLength(2);
  });
});

describe('two concurrent deliveries of one approval event', () => {
  it('call the business API once', async () => {
    h = await startHarness();
    h.newInstance('CONC-1');
    h.approval.addTask('CONC-1', { id: 't-check', user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: 'check_node' });
    const req = signedRequest(
      approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: 'CONC-1', taskId: 't-check', userId: ASSISTANT }),
      { encryptKey: ENCRYPT_KEY },
    );
    const answers = await Promise.all([postSigned(`${h.app.url}/api/v1/lark/callback`, req), postSigned(`${h.app.url}/api/v1/lark/callback`, req)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    await h.waitForRun('CONC-1', (r) => r.stages.check?.state === 'acted');
    await h.app.deps.engine!.idle();
    expect(h.business.calls).toHaveLength(1);
    expect(h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve')).toHaveLength(1);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { bodySignatureMatches } from '../src/flows/business-call.js';
import { approvalTaskEvent, cardActionEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import { APP_ID, APPROVAL_CODE, ASSISTANT, BUSINESS_SECRET, ENCRYPT_KEY, flowFile, PROGRESS_CHAT, RETRY_USER, startHarness, VERIFICATION_TOKEN, type Harness } from './helpers/approval-harness.js';
import { waitFor } from './helpers/test-app.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const approves = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve');
const rejects = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/reject');
const cardSends = () => h.lark.callsTo('POST', '/open-apis/im/v1/messages').filter((c) => c.body.msg_type === 'interactive');
const lastCard = () => {
  const msg = [...h.lark.messages.values()].find((m) => m.msg_type === 'interactive')!;
  return JSON.parse(msg.content);
};
const cardText = () => JSON.stringify(lastCard());

describe('an approval run, end to end', () => {
  it('goes submit → check → approvers → execute (async) → done with one card updated in place', async () => {
    h = await startHarness();
    h.newInstance('INST-1');
    const first = await h.pendingAt('INST-1', 'task-check', 'check_node');
    expect(first.status).toBe(200);

    // check: sync call, signed, with the mapped fields
    await h.waitForRun('INST-1', (r) => r.stages.check?.state === 'acted');
    const checkCall = h.business.calls.find((c) => c.path === '/perm/check')!;
    expect(checkCall.body).toEqual({
      ticket_id: 'INST-1',
      flow: 'admin-permission',
      stage: 'check',
      fields: { account: 'alice', role: 'admin', until: '2026-12-31' },
      applicant: { user_id: 'applicant1', open_id: 'ou_applicant1' },
    });
    expect(
      bodySignatureMatches(BUSINESS_SECRET, checkCall.headers['x-bridge-timestamp'] as string, checkCall.headers['x-bridge-signature'] as string, Buffer.from(JSON.stringify(checkCall.body))),
    ).toBe(true);
    expect(approves()).toHaveLength(1);
    expect(approves()[0]!.body).toMatchObject({ approval_code: APPROVAL_CODE, instance_code: 'INST-1', task_id: 'task-check', user_id: ASSISTANT, comment: 'ok' });
    expect(cardText()).toContain('Waiting for approvers');

    // human approvers act in Lark; then execute_node becomes PENDING for the assistant
    await h.pendingAt('INST-1', 'task-exec', 'execute_node');
    const run = await h.waitForRun('INST-1', (r) => r.stages.execute?.state === 'waiting_callback');
    const execCall = h.business.calls.find((c) => c.path === '/perm/grant')!;
    expect(execCall.body).toMatchObject({ stage: 'execute', callback_url: 'https://bridge.example.test/api/v1/lark/execute/callback' });
    expect(approves()).toHaveLength(1); // nothing approved before the callback
    expect(run.status).toBe('active');

    const cb = await h.callback('execute', { ticket_id: 'INST-1', result: true, msg: 'granted admin until 2026-12-31' });
    expect(cb).toEqual({ status: 200, body: { status: 'accepted', ticket_id: 'INST-1', stage: 'execute' } });
    const done = await h.waitForRun('INST-1', (r) => r.status === 'done');
    expect(done.steps.map((s) => s.step)).toEqual(['submitted', 'checking', 'check_passed', 'waiting_approvers', 'executing', 'done']);
    expect(approves()).toHaveLength(2);
    expect(approves()[1]!.body).toMatchObject({ task_id: 'task-exec', comment: 'granted admin until 2026-12-31' });

    // one card, sent updatable, then patched at every step
    expect(cardSends()).toHaveLength(1);
    expect(cardSends()[0]!.body.receive_id).toBe(PROGRESS_CHAT);
    expect(JSON.parse(cardSends()[0]!.body.content).config.update_multi).toBe(true);
    expect(h.patches.length).toBeGreaterThanOrEqual(4);
    expect(new Set(h.patches.map((p) => p.messageId)).size).toBe(1);
    const card = lastCard();
    expect(card.header.template).toBe('green');
    expect(JSON.stringify(card)).toContain('Done');
    expect(JSON.stringify(card)).toContain('**account**: alice');
    expect(JSON.stringify(card)).not.toContain('Retry');
    // approval events were subscribed for the flow's approval code
    expect(h.approval.subscriptions.has(APPROVAL_CODE)).toBe(true);
  });

  it('rejects at submit time when the check refuses, with the business reason as comment', async () => {
    h = await startHarness({ business: (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, msg: 'denied', error: 'alice already has admin' } }) });
    h.newInstance('INST-2');
    await h.pendingAt('INST-2', 't1', 'check_node');
    const run = await h.waitForRun('INST-2', (r) => r.status === 'failed');
    expect(run.error).toBe('alice already has admin');
    expect(approves()).toHaveLength(0);
    expect(rejects()).toHaveLength(1);
    expect(rejects()[0]!.body).toMatchObject({ task_id: 't1', comment: 'alice already has admin' });
    expect(h.approval.instances.get('INST-2')!.status).toBe('REJECTED');
    expect(lastCard().header.template).toBe('red');
    expect(cardText()).toContain('Check failed');
  });

  it('rejects when execution fails, and shows a Retry button', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'sync', timeoutMs: 1000, retries: 0 } }) });
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'LDAP write failed' } });
    h.newInstance('INST-3');
    await h.pendingAt('INST-3', 't-exec', 'execute_node');
    const run = await h.waitForRun('INST-3', (r) => r.status === 'failed');
    expect(run.steps.map((s) => s.step)).toEqual(['submitted', 'executing', 'failed']);
    expect(rejects()[0]!.body.comment).toBe('LDAP write failed');
    expect(approves()).toHaveLength(0);
    expect(cardText()).toContain('Retry execute');
    expect(cardText()).toContain('LDAP write failed');
  });

  it('rejects, never approves, when the business API cannot be reached', async () => {
    h = await startHarness();
    h.business.handler = () => ({ status: 503, body: { error: 'maintenance' } });
    h.newInstance('INST-4');
    await h.pendingAt('INST-4', 't1', 'check_node');
    const run = await h.waitForRun('INST-4', (r) => r.status === 'failed');
    expect(h.business.calls).toHaveLength(2); // retries: 1 → two tries
    expect(approves()).toHaveLength(0);
    expect(rejects()[0]!.body.comment).toMatch(/The check service could not be reached \(2 tries\).*HTTP 503.*Nothing was approved/);
    expect(run.error).toMatch(/service unreachable/);
  });

  it('rejects naming the field when a required widget is missing or a value does not map', async () => {
    h = await startHarness();
    h.newInstance('INST-5', JSON.stringify([{ id: 'w2', name: 'Role', type: 'radioV2', value: 'Superuser' }]));
    await h.pendingAt('INST-5', 't1', 'check_node');
    await h.waitForRun('INST-5', (r) => r.status === 'failed');
    const comment = rejects()[0]!.body.comment as string;
    expect(comment).toContain('field account ("Account") is required');
    expect(comment).toContain('field role ("Role"): "Superuser" is not one of "Read only", "Admin"');
    expect(h.business.calls).toHaveLength(0);
  });
});

describe('approvals that end without us', () => {
  it('closes the run and its card when an approver rejects after the check passed', async () => {
    h = await startHarness();
    h.newInstance('INST-14');
    await h.pendingAt('INST-14', 't-check', 'check_node');
    await h.waitForRun('INST-14', (r) => r.steps.at(-1)?.step === 'waiting_approvers');
    // A manager rejects in Lark: Lark pushes that task's REJECTED status.
    const inst = h.approval.instances.get('INST-14')!;
    inst.task_list.push({ id: 't-manager', user_id: 'manager1', status: 'REJECTED', node_name: 'Manager' });
    inst.status = 'REJECTED';
    const { approvalTaskEvent, sendLarkEvent } = await import('./lark-emulator/event-sender.js');
    await sendLarkEvent(
      `${h.app.url}/api/v1/lark/callback`,
      approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: 'INST-14', taskId: 't-manager', userId: 'manager1', status: 'REJECTED' }),
      { encryptKey: ENCRYPT_KEY },
    );
    const run = await h.waitForRun('INST-14', (r) => r.status === 'failed');
    expect(run.steps.at(-1)).toMatchObject({ step: 'failed', detail: 'rejected by an approver' });
    expect(await h.app.deps.store.collection('runs').live()).toHaveLength(0); // archived, not live
    expect(cardText()).toContain('rejected by an approver');
    expect(cardText()).not.toContain('Retry');
    expect(h.business.calls).toHaveLength(1); // execute never ran
  });
});

describe('nodes', () => {
  it('ignores assistant tasks at other nodes, then handles the instance at its execute node', async () => {
    h = await startHarness();
    h.newInstance('INST-13');
    await h.pendingAt('INST-13', 't-manager', 'manager_review');
    await h.waitForRun('INST-13', (r) => r.status === 'ignored');
    expect(h.business.calls).toHaveLength(0);
    expect(approves()).toHaveLength(0);
    await h.pendingAt('INST-13', 't-exec', 'execute_node');
    await h.waitForRun('INST-13', (r) => r.stages.execute?.state === 'waiting_callback');
    expect(h.business.calls.map((c) => c.path)).toEqual(['/perm/grant']);
  });
});

describe('answering Lark in time', () => {
  it('answers the event at once even when the business API is slow; the work runs after', async () => {
    h = await startHarness();
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'slow ok' }, delayMs: 800 }); // the flow's timeout is 1000 ms
    h.newInstance('INST-15');
    const started = Date.now();
    const res = await h.pendingAt('INST-15', 't1', 'check_node');
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(500); // Lark redelivers after ~3 s without a 200
    expect(approves()).toHaveLength(0);
    await h.waitForRun('INST-15', (r) => r.stages.check?.state === 'acted');
    expect(approves()[0]!.body.comment).toBe('slow ok');
  });
});

describe('idempotency', () => {
  it('calls the business API once and approves once when Lark redelivers an event 5 times', async () => {
    h = await startHarness();
    h.newInstance('INST-6');
    h.approval.addTask('INST-6', { id: 't1', user_id: ASSISTANT, status: 'PENDING', node_name: 'check_node' });
    const uuid = 'redelivered-event-uuid';
    const answers = await Promise.all(Array.from({ length: 5 }, () => h.sendTaskEvent('INST-6', 't1', { uuid })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    // the same task under a new event id is recognised too
    await h.sendTaskEvent('INST-6', 't1');
    await h.waitForRun('INST-6', (r) => r.stages.check?.state === 'acted');
    await h.sendTaskEvent('INST-6', 't1', { uuid });
    await h.app.deps.engine!.idle();
    expect(h.business.calls).toHaveLength(1);
    expect(approves()).toHaveLength(1);
    expect(cardSends()).toHaveLength(1);
  });

  it('resumes after a restart while waiting for an async callback, without calling again', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined }) });
    h.newInstance('INST-7');
    await h.pendingAt('INST-7', 't-exec', 'execute_node');
    await h.waitForRun('INST-7', (r) => r.stages.execute?.state === 'waiting_callback');
    await h.restart();
    expect((await h.run('INST-7'))!.stages.execute!.state).toBe('waiting_callback');
    const cb = await h.callback('execute', { ticket_id: 'INST-7', result: true, msg: 'done' });
    expect(cb.status).toBe(200);
    await h.waitForRun('INST-7', (r) => r.status === 'done');
    expect(h.business.calls).toHaveLength(1);
    expect(approves()).toHaveLength(1);
    expect(cardSends()).toHaveLength(1); // the restarted app patched the same card
    // a duplicate callback changes nothing
    const again = await h.callback('execute', { ticket_id: 'INST-7', result: false, error: 'late' });
    expect(again.status).toBe(409);
    expect(rejects()).toHaveLength(0);
  });

  it('rejects when no async callback arrives in time', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/grant`, mode: 'async', callbackTimeoutMs: 1000, retries: 0 } }) });
    h.newInstance('INST-8');
    await h.pendingAt('INST-8', 't-exec', 'execute_node');
    const run = await h.waitForRun('INST-8', (r) => r.status === 'failed');
    expect(run.error).toBe('no callback in time');
    expect(rejects()[0]!.body.comment).toMatch(/did not report back within 1 s/);
  });
});

describe('security of the Lark and business callbacks', () => {
  it('answers the url_verification challenge (it carries no signature)', async () => {
    h = await startHarness();
    const res = await sendLarkEvent(`${h.app.url}/api/v1/lark/callback`, { challenge: 'ch-123', token: VERIFICATION_TOKEN, type: 'url_verification' }, { encryptKey: ENCRYPT_KEY, noSignature: true });
    expect(res).toEqual({ status: 200, body: { challenge: 'ch-123' } });
    const wrongToken = await sendLarkEvent(`${h.app.url}/api/v1/lark/callback`, { challenge: 'x', token: 'nope', type: 'url_verification' }, { encryptKey: ENCRYPT_KEY, noSignature: true });
    expect(wrongToken.status).toBe(401);
  });

  it('refuses forged, stale, unsigned and wrongly keyed events with 401, and does nothing', async () => {
    h = await startHarness();
    h.newInstance('INST-9');
    h.approval.addTask('INST-9', { id: 't1', user_id: ASSISTANT, status: 'PENDING', node_name: 'check_node' });
    const ev = approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: APPROVAL_CODE, instanceCode: 'INST-9', taskId: 't1', userId: ASSISTANT });
    const url = `${h.app.url}/api/v1/lark/callback`;
    const forged = await sendLarkEvent(url, ev, { encryptKey: ENCRYPT_KEY, signature: 'ab'.repeat(32) });
    expect(forged.status).toBe(401);
    expect(forged.body.error.message).toBe('request signature does not verify');
    expect((await sendLarkEvent(url, ev, { encryptKey: ENCRYPT_KEY, timestampSec: Math.floor(Date.now() / 1000) - 13 * 3600 })).status).toBe(401);
    expect((await sendLarkEvent(url, ev, { encryptKey: ENCRYPT_KEY, noSignature: true })).status).toBe(401);
    expect((await sendLarkEvent(url, ev, { encryptKey: 'another-key' })).status).toBe(401);
    expect((await sendLarkEvent(url, { ...ev, token: 'wrong' }, { encryptKey: ENCRYPT_KEY })).status).toBe(401);
    expect((await sendLarkEvent(url, ev)).status).toBe(401); // plain body, signed with an empty key
    await new Promise((r) => setTimeout(r, 100));
    expect(await h.run('INST-9')).toBeUndefined();
    expect(h.lark.callsTo('GET', '/open-apis/approval/v4/instances')).toHaveLength(0);
  });

  it('refuses unsigned, badly signed, stale, unknown and wrong-stage callbacks', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined }) });
    h.newInstance('INST-10');
    await h.pendingAt('INST-10', 't-exec', 'execute_node');
    await h.waitForRun('INST-10', (r) => r.stages.execute?.state === 'waiting_callback');
    const body = { ticket_id: 'INST-10', result: true, msg: 'ok' };
    expect((await h.callback('execute', body, { unsigned: true })).status).toBe(401);
    expect((await h.callback('execute', body, { secret: 'not-the-flow-secret-000' })).status).toBe(401);
    expect((await h.callback('execute', body, { timestampSec: Math.floor(Date.now() / 1000) - 3600 })).status).toBe(401);
    const unknown = await h.callback('execute', { ...body, ticket_id: 'NOPE' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toBe('unknown ticket NOPE');
    expect((await h.callback('check', body)).status).toBe(400); // this flow has no check stage
    expect((await h.callback('execute', { ticket_id: 'INST-10', result: 'yes' })).status).toBe(400);
    expect((await h.run('INST-10'))!.stages.execute!.state).toBe('waiting_callback');
    expect(approves()).toHaveLength(0);
  });
});

describe('Retry button', () => {
  it('re-runs the failed stage for a user in retryBy, and refuses anyone else with a toast', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/grant`, mode: 'sync', retries: 0 } }) });
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'quota exceeded' } });
    h.newInstance('INST-11');
    await h.pendingAt('INST-11', 't-exec', 'execute_node');
    const failed = await h.waitForRun('INST-11', (r) => r.status === 'failed');
    const press = (operator: string) =>
      sendLarkEvent(
        `${h.app.url}/api/v1/lark/card`,
        cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: operator, messageId: failed.cardMessageId!, chatId: PROGRESS_CHAT, value: { action: 'retry', runId: 'INST-11', stage: 'execute' } }),
        { encryptKey: ENCRYPT_KEY },
      );

    const denied = await press('ou_intern');
    expect(denied).toEqual({ status: 200, body: { toast: { type: 'error', content: 'You are not allowed to retry this request.' } } });
    expect(h.business.calls).toHaveLength(1);

    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'granted on retry' } });
    const allowed = await press(RETRY_USER);
    expect(allowed.body).toEqual({ toast: { type: 'success', content: 'Retrying execute…' } });
    const run = await h.waitForRun('INST-11', (r) => r.status === 'done');
    expect(h.business.calls).toHaveLength(2);
    expect(run.steps.at(-1)).toMatchObject({ step: 'done', detail: 'granted on retry' });
    // The approval was already rejected in Lark: the retry does not approve it behind anyone's back.
    expect(approves()).toHaveLength(0);
    expect(cardText()).toContain('Done');
  });
});

describe('attempt ids on async callbacks', () => {
  it('refuses a callback echoing an attempt a Retry replaced (late or replayed), and takes the current one', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/grant`, mode: 'async', retries: 0, callbackTimeoutMs: 60_000 } }) });
    h.newInstance('INST-A1');
    await h.pendingAt('INST-A1', 't-exec', 'execute_node');
    await h.waitForRun('INST-A1', (r) => r.stages.execute?.state === 'waiting_callback');
    const first = h.business.calls[0]!;
    // The attempt id is the call's Idempotency-Key, in the signed body.
    expect(first.body.attempt_id).toBe('INST-A1:execute:t-exec:0');
    expect(first.headers['idempotency-key']).toBe(first.body.attempt_id);

    const refusal = { ticket_id: 'INST-A1', result: false, error: 'quota exceeded', attempt_id: first.body.attempt_id };
    expect((await h.callback('execute', refusal)).status).toBe(200);
    const failed = await h.waitForRun('INST-A1', (r) => r.status === 'failed');
    const retried = await sendLarkEvent(
      `${h.app.url}/api/v1/lark/card`,
      cardActionEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, operatorOpenId: RETRY_USER, messageId: failed.cardMessageId!, chatId: PROGRESS_CHAT, value: { action: 'retry', runId: 'INST-A1', stage: 'execute' } }),
      { encryptKey: ENCRYPT_KEY },
    );
    expect(retried.body).toEqual({ toast: { type: 'success', content: 'Retrying execute…' } });
    await waitFor(() => h.business.calls.length === 2);
    await h.waitForRun('INST-A1', (r) => r.status === 'active' && r.stages.execute?.state === 'waiting_callback');
    const second = h.business.calls[1]!;
    expect(second.body.attempt_id).toBe('INST-A1:execute:t-exec:1');

    // The first attempt's refusal, sent again (late, or replayed within the signature window): refused, nothing changes.
    const replay = await h.callback('execute', refusal);
    expect(replay.status).toBe(409);
    expect(replay.body.error.message).toContain('another attempt of the execute stage');
    expect((await h.app.deps.engine!.findRun('INST-A1'))!.status).toBe('active');

    const granted = await h.callback('execute', { ticket_id: 'INST-A1', result: true, msg: 'granted on retry', attempt_id: second.body.attempt_id });
    expect(granted.status).toBe(200);
    const done = await h.waitForRun('INST-A1', (r) => r.status === 'done');
    expect(done.steps.at(-1)).toMatchObject({ step: 'done', detail: 'granted on retry' });
  });

  it('takes a callback without attempt_id as before (the stage’s first result wins)', async () => {
    h = await startHarness();
    h.newInstance('INST-A2');
    await h.pendingAt('INST-A2', 'task-check', 'check_node');
    await h.pendingAt('INST-A2', 'task-exec', 'execute_node');
    await h.waitForRun('INST-A2', (r) => r.stages.execute?.state === 'waiting_callback');
    expect((await h.callback('execute', { ticket_id: 'INST-A2', result: true, msg: 'granted' })).status).toBe(200);
    await h.waitForRun('INST-A2', (r) => r.status === 'done');
  });
});

describe('flow files', () => {
  it('keeps serving the last good flow when an invalid file is hot-swapped in', async () => {
    h = await startHarness();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${h.flowsDir}/admin-permission.json`, '{"kind": "approval", "id": "admin-permission", "secret": 5');
    await waitFor(async () => {
      const r = (await fetch(`${h.app.url}/readyz`).then((x) => x.json())) as any;
      return r.checks.flows.invalid.length ? r : undefined;
    });
    expect(h.app.deps.flows.problems()[0]).toMatchObject({ file: 'admin-permission.json', path: '(file)' });
    h.newInstance('INST-12');
    await h.pendingAt('INST-12', 't1', 'check_node');
    await h.waitForRun('INST-12', (r) => r.stages.check?.state === 'acted');
    expect(approves()).toHaveLength(1);

    // A valid change is swapped in.
    const next = flowFile(h.business.url, { name: 'Renamed flow' });
    await writeFile(`${h.flowsDir}/admin-permission.json`, JSON.stringify(next));
    await waitFor(() => h.app.deps.flows.byId('admin-permission')?.name === 'Renamed flow');
    expect(h.app.deps.flows.problems()).toEqual([]);
  });

  it('serves external options for select widgets in Lark’s format', async () => {
    h = await startHarness({
      flow: (url) => flowFile(url, { options: { roles: { token: 'opt-token', items: [{ id: 'viewer', text: 'Read only' }, { id: 'admin', text: 'Admin' }] } } }),
    });
    const res = await fetch(`${h.app.url}/field/roles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: 'u1', token: 'opt-token', locale: 'zh-CN', linkage_params: {} }),
    });
    expect(await res.json()).toEqual({
      code: 0,
      msg: 'success!',
      data: {
        result: {
          options: [
            { id: 'viewer', value: '@i18n@1', isDefault: false },
            { id: 'admin', value: '@i18n@2', isDefault: false },
          ],
          i18nResources: [{ locale: 'zh_cn', isDefault: true, texts: { '@i18n@1': 'Read only', '@i18n@2': 'Admin' } }],
          hasMore: false,
          nextPageToken: '',
        },
      },
    });
    const wrong = await fetch(`${h.app.url}/field/roles`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":"x"}' });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${h.app.url}/field/unknown`)).status).toBe(404);
  });
});

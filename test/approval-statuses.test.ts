import { afterEach, describe, expect, it } from 'vitest';
import { ASSISTANT, flowFile, startHarness, type Harness } from './helpers/approval-harness.js';
import { waitFor } from './helpers/test-app.js';

/**
 * Task statuses of the approval_task event beyond PENDING / APPROVED / REJECTED / DONE:
 * https://open.feishu.cn/document/server-docs/approval-v4/event/common-event/approval-task-event
 */
let h: Harness;
afterEach(async () => {
  await h?.close();
});

const approves = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve');
const rejects = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/reject');
const cardText = async (code: string) => h.lark.messages.get((await h.run(code))!.cardMessageId!)!.content;

describe('ROLLBACK: an approver returns the approval to an earlier node', () => {
  it('acts on the new PENDING task at check_node again, and the card records the return', async () => {
    h = await startHarness();
    h.newInstance('INST-1');
    await h.pendingAt('INST-1', 't-check', 'check_node');
    await h.waitForRun('INST-1', (r) => r.steps.at(-1)?.step === 'waiting_approvers');
    h.approval.addTask('INST-1', { id: 't-mgr', user_id: 'manager1', status: 'PENDING', node_name: 'Manager' });

    // The manager returns it to check_node: their task ROLLBACK, a new PENDING task for the assistant.
    h.approval.rollback('INST-1', 't-mgr', { id: 't-check-2', user_id: ASSISTANT, status: 'PENDING', node_name: 'check_node' });
    expect((await h.sendTaskEvent('INST-1', 't-mgr', { status: 'ROLLBACK', userId: 'manager1' })).status).toBe(200);
    expect((await h.sendTaskEvent('INST-1', 't-check-2')).status).toBe(200);

    const run = await h.waitForRun('INST-1', (r) => r.stages.check?.taskId === 't-check-2' && r.stages.check.state === 'acted');
    expect(run.stages.check).toMatchObject({ taskId: 't-check-2', rounds: 1 });
    expect(h.business.calls.filter((c) => c.path === '/perm/check')).toHaveLength(2);
    expect(approves().map((c) => c.body.task_id)).toEqual(['t-check', 't-check-2']);
    expect(run.steps.map((s) => s.step)).toEqual(['submitted', 'checking', 'check_passed', 'waiting_approvers', 'returned', 'checking', 'check_passed', 'waiting_approvers']);
    expect(run.steps.find((s) => s.step === 'checking' && s.detail)?.detail).toBe('round 2');
    expect(await cardText('INST-1')).toContain('↩️ Returned');
    expect(run.status).toBe('active');
  });

  it('brings a finished run back when the approval is returned to its node', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { execute: undefined }) });
    h.newInstance('INST-2');
    await h.pendingAt('INST-2', 't-check', 'check_node');
    await h.waitForRun('INST-2', (r) => r.status === 'done');
    expect(await h.app.deps.store.collection('runs').live()).toHaveLength(0); // archived
    h.approval.addTask('INST-2', { id: 't-mgr', user_id: 'manager1', status: 'PENDING', node_name: 'Manager' });
    h.approval.rollback('INST-2', 't-mgr', { id: 't-check-2', user_id: ASSISTANT, status: 'PENDING', node_name: 'check_node' });
    await h.sendTaskEvent('INST-2', 't-check-2'); // the PENDING event may come first
    await h.sendTaskEvent('INST-2', 't-mgr', { status: 'ROLLBACK', userId: 'manager1' });
    const run = await h.waitForRun('INST-2', (r) => r.stages.check?.taskId === 't-check-2' && r.status === 'done');
    expect(approves().map((c) => c.body.task_id)).toEqual(['t-check', 't-check-2']);
    expect(run.steps.filter((s) => s.step === 'returned')).toHaveLength(1);
  });
});

describe('OVERTIME_CLOSE and OVERTIME_RECOVER', () => {
  it('closes the run when its task timed out in Lark; the card says so; a late callback changes nothing', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined }) });
    h.newInstance('INST-3');
    await h.pendingAt('INST-3', 't-exec', 'execute_node');
    await h.waitForRun('INST-3', (r) => r.stages.execute?.state === 'waiting_callback');
    h.approval.timeOut('INST-3', 't-exec');
    expect((await h.sendTaskEvent('INST-3', 't-exec', { status: 'OVERTIME_CLOSE' })).status).toBe(200);
    const run = await h.waitForRun('INST-3', (r) => r.status === 'closed');
    expect(run.error).toBe('the approval task timed out in Lark and was closed');
    expect(run.steps.at(-1)).toMatchObject({ step: 'closed' });
    expect(await h.app.deps.store.collection('runs').live()).toHaveLength(0);
    const card = JSON.parse(await cardText('INST-3'));
    expect(card.header.template).toBe('grey');
    expect(JSON.stringify(card)).toContain('timed out in Lark and was closed');
    expect(JSON.stringify(card)).not.toContain('Retry');
    const late = await h.callback('execute', { ticket_id: 'INST-3', result: true, msg: 'too late' });
    expect(late.status).toBe(409);
    expect(late.body.error.message).toBe('ticket INST-3 is not waiting for a execute callback (state: closed)');
    expect(approves()).toHaveLength(0);
    expect(rejects()).toHaveLength(0);
  });

  it('reopens the run when the timed-out task is recovered, and finishes it', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined }) });
    h.newInstance('INST-4');
    await h.pendingAt('INST-4', 't-exec', 'execute_node');
    await h.waitForRun('INST-4', (r) => r.stages.execute?.state === 'waiting_callback');
    h.approval.timeOut('INST-4', 't-exec');
    await h.sendTaskEvent('INST-4', 't-exec', { status: 'OVERTIME_CLOSE' });
    await h.waitForRun('INST-4', (r) => r.status === 'closed');

    h.approval.recover('INST-4', 't-exec');
    await h.sendTaskEvent('INST-4', 't-exec', { status: 'OVERTIME_RECOVER' });
    const reopened = await h.waitForRun('INST-4', (r) => r.status === 'active');
    expect(reopened.steps.at(-1)).toMatchObject({ step: 'recovered' });
    expect(await cardText('INST-4')).toContain('Reopened');
    expect((await h.callback('execute', { ticket_id: 'INST-4', result: true, msg: 'granted after all' })).status).toBe(200);
    await h.waitForRun('INST-4', (r) => r.status === 'done');
    expect(approves().map((c) => c.body.comment)).toEqual(['granted after all']);
    expect(h.business.calls).toHaveLength(1);
  });

  it('ignores statuses for instances it never ran', async () => {
    h = await startHarness();
    h.newInstance('INST-5');
    h.approval.addTask('INST-5', { id: 't-x', user_id: 'manager1', status: 'PENDING', node_name: 'Manager' });
    for (const status of ['ROLLBACK', 'OVERTIME_CLOSE', 'OVERTIME_RECOVER', 'REJECTED', 'DONE', 'TRANSFERRED', 'REVERTED']) {
      expect((await h.sendTaskEvent('INST-5', 't-x', { status, userId: 'manager1' })).status).toBe(200);
    }
    await h.app.deps.engine!.idle();
    expect(await h.run('INST-5')).toBeUndefined();
    expect(await h.app.deps.store.collection('run-inbox').live()).toEqual([]);
    expect(h.lark.callsTo('GET', '/open-apis/approval/v4/instances')).toHaveLength(0);
  });
});

describe('a task event that comes before the task is visible in the instance', () => {
  it('reads the instance again and acts on the task once Lark lists it', async () => {
    h = await startHarness();
    h.newInstance('INST-LAG');
    // The event first; the task shows up in instance get about 1.5 s later.
    expect((await h.sendTaskEvent('INST-LAG', 't-check')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_500));
    h.approval.addTask('INST-LAG', { id: 't-check', user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: 'check_node' });
    const run = await h.waitForRun('INST-LAG', (r) => r.stages.check?.state === 'acted', 15_000);
    expect(run.status).toBe('active');
    expect(approves().map((c) => c.body.task_id)).toEqual(['t-check']);
    expect(h.lark.callsTo('GET', '/open-apis/approval/v4/instances/INST-LAG').length).toBeGreaterThanOrEqual(2);
  });

  it('stops without waiting out the re-reads: the task item stays in the inbox for the next start', async () => {
    h = await startHarness();
    h.newInstance('INST-STOP');
    expect((await h.sendTaskEvent('INST-STOP', 't-check')).status).toBe(200);
    const reads = () => h.lark.callsTo('GET', '/open-apis/approval/v4/instances/INST-STOP').length;
    await waitFor(() => reads() === 1);
    await new Promise((r) => setTimeout(r, 100)); // inside the 1 s wait before the second read
    await h.app.deps.engine!.stop();
    // Stopped during the wait: no read after it, and the event's task is not dropped as "not found".
    expect(reads()).toBe(1);
    const items = (await h.app.deps.store.collection('run-inbox').live()) as unknown as Array<{ runId: string; kind: string }>;
    expect(items.filter((i) => i.runId === 'INST-STOP' && i.kind === 'task')).toHaveLength(1);
    expect(approves()).toHaveLength(0);
    // The turn ended before saving: no half-made run, no card sent while stopping.
    expect(await h.run('INST-STOP')).toBeUndefined();
    expect(h.lark.callsTo('POST', '/open-apis/im/v1/messages')).toHaveLength(0);

    // The next start takes the event up: the task is listed now, and acted on once.
    h.approval.addTask('INST-STOP', { id: 't-check', user_id: ASSISTANT, open_id: `ou_${ASSISTANT}`, status: 'PENDING', node_name: 'check_node' });
    await h.restart();
    const run = await h.waitForRun('INST-STOP', (r) => r.stages.check?.state === 'acted', 15_000);
    expect(run.status).toBe('active');
    expect(approves().map((c) => c.body.task_id)).toEqual(['t-check']);
  });
});

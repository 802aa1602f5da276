import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '../src/flows/run.js';
import { larkError } from './lark-emulator/emulator.js';
import { flowFile, PROGRESS_CHAT, startHarness, type Harness } from './helpers/approval-harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const DAY = 86_400_000;
const approves = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve');
const cards = () => [...h.lark.messages.values()].filter((m) => m.msg_type === 'interactive');
const cardText = (messageId: string) => h.lark.messages.get(messageId)!.content;

describe('a Lark call refused mid-step', () => {
  it('approve refused for good: the run fails with the reason and a Retry that re-attempts only the approve', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { execute: undefined }) });
    h.lark.failNext('POST /open-apis/approval/v4/tasks/approve', larkError(400, 1390009, 'user is not the task approver'));
    h.newInstance('INST-1');
    await h.pendingAt('INST-1', 't1', 'check_node');
    const failed = await h.waitForRun('INST-1', (r) => r.status === 'failed');
    expect(failed.error).toBe('Lark refused to approve the task: user is not the task approver (code 1390009)');
    expect(failed.larkFailure).toMatchObject({ stage: 'check', step: 'approve the task' });
    expect(await h.app.deps.store.collection('runs').live()).toHaveLength(0); // not left active
    const card = cardText(failed.cardMessageId!);
    expect(card).toContain('Lark refused to approve the task');
    expect(card).toContain('Retry check');
    expect(JSON.parse(card).header.template).toBe('red');

    const press = await h.pressRetry('INST-1', 'check');
    expect(press.body).toEqual({ toast: { type: 'success', content: 'Retrying: approve the task…' } });
    const done = await h.waitForRun('INST-1', (r) => r.status === 'done');
    expect(h.business.calls).toHaveLength(1); // the business had answered: not called again
    expect(approves()).toHaveLength(2);
    expect(h.approval.task('INST-1', 't1').status).toBe('APPROVED');
    expect(done.larkFailure).toBeUndefined();
    expect(cardText(done.cardMessageId!)).not.toContain('Retry');
    // a second press finds nothing to retry
    expect((await h.pressRetry('INST-1', 'check')).body.toast.type).toBe('error');
  });

  it('approve failing with 5xx on every try: the run ends failed, not active forever', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { execute: undefined }) });
    h.lark.failNext('POST /open-apis/approval/v4/tasks/approve', larkError(500, 1, 'internal error'), 4);
    h.newInstance('INST-2');
    await h.pendingAt('INST-2', 't1', 'check_node');
    const failed = await h.waitForRun('INST-2', (r) => r.status === 'failed', 15_000);
    expect(failed.error).toMatch(/^Lark refused to approve the task: internal error/);
    expect(approves()).toHaveLength(4);
  });

  it('instance look-up refused: the new run fails with the reason; Retry looks it up again and the run goes on', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { execute: undefined }) });
    h.newInstance('INST-3');
    h.lark.failNext('GET /open-apis/approval/v4/instances/INST-3', larkError(400, 1390002, 'approval code not found'));
    await h.pendingAt('INST-3', 't1', 'check_node');
    const failed = await h.waitForRun('INST-3', (r) => r.status === 'failed');
    expect(failed.error).toBe('Lark refused to look up the approval: approval code not found (code 1390002)');
    expect(cardText(failed.cardMessageId!)).toContain('Retry check');
    expect(h.business.calls).toHaveLength(0);

    expect((await h.pressRetry('INST-3', 'check')).body.toast.content).toBe('Retrying: look up the approval…');
    await h.waitForRun('INST-3', (r) => r.status === 'done');
    expect(h.business.calls).toHaveLength(1);
    expect(h.approval.task('INST-3', 't1').status).toBe('APPROVED');
  });
});

describe('cards older than 14 days', () => {
  it('sends a new card when Lark refuses to update the old one (230031), and keeps updating the new one', async () => {
    h = await startHarness();
    h.newInstance('INST-4');
    await h.pendingAt('INST-4', 't-check', 'check_node');
    const waiting = await h.waitForRun('INST-4', (r) => r.steps.at(-1)?.step === 'waiting_approvers');
    const first = waiting.cardMessageId!;
    // The approvers took 15 days: the card was sent longer ago than Lark allows updates.
    h.lark.messages.get(first)!.create_time = String(Date.now() - 15 * DAY);
    const patchesBefore = h.patches.length;

    await h.pendingAt('INST-4', 't-exec', 'execute_node');
    const executing = await h.waitForRun('INST-4', (r) => r.stages.execute?.state === 'waiting_callback');
    const second = executing.cardMessageId!;
    expect(second).not.toBe(first);
    expect(executing.cardCount).toBe(2);
    expect(cards().map((m) => m.chat_id)).toEqual([PROGRESS_CHAT, PROGRESS_CHAT]);
    expect(JSON.parse(cardText(second)).config.update_multi).toBe(true);
    expect(cardText(second)).toContain('Executing');
    expect(h.lark.callsTo('PATCH', `/open-apis/im/v1/messages/${first}`).length).toBeGreaterThan(0); // tried, refused

    await h.callback('execute', { ticket_id: 'INST-4', result: true, msg: 'granted' });
    await h.waitForRun('INST-4', (r) => r.status === 'done');
    expect(h.patches.slice(patchesBefore).every((p) => p.messageId === second)).toBe(true);
    expect(cardText(second)).toContain('🎉 Done');
    expect(cards()).toHaveLength(2);
  });

  it('does not even try to update a card it knows was sent more than 14 days ago', async () => {
    h = await startHarness();
    h.newInstance('INST-5');
    await h.pendingAt('INST-5', 't-check', 'check_node');
    const waiting = await h.waitForRun('INST-5', (r) => r.steps.at(-1)?.step === 'waiting_approvers');
    const runs = h.app.deps.store.collection<Run>('runs');
    await runs.put({ ...structuredClone(waiting), cardSentAt: new Date(Date.now() - 15 * DAY).toISOString() });
    const patchesOfFirst = h.lark.callsTo('PATCH', `/open-apis/im/v1/messages/${waiting.cardMessageId}`).length;

    await h.pendingAt('INST-5', 't-exec', 'execute_node');
    const executing = await h.waitForRun('INST-5', (r) => r.stages.execute?.state === 'waiting_callback');
    expect(executing.cardMessageId).not.toBe(waiting.cardMessageId);
    expect(h.lark.callsTo('PATCH', `/open-apis/im/v1/messages/${waiting.cardMessageId}`)).toHaveLength(patchesOfFirst);
    expect(Date.parse(executing.cardSentAt!)).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('Retry after a refused check', () => {
  it('re-runs the check; the approval stays rejected in Lark and the run ends instead of waiting for approvers', async () => {
    h = await startHarness();
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'no budget' } });
    h.newInstance('INST-6');
    await h.pendingAt('INST-6', 't1', 'check_node');
    await h.waitForRun('INST-6', (r) => r.status === 'failed');
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: true, msg: 'budget found' } });
    expect((await h.pressRetry('INST-6', 'check')).body.toast.content).toBe('Retrying check…');
    const run = await h.waitForRun('INST-6', (r) => r.status !== 'active' && r.stages.check?.retries === 1);
    expect(run.status).toBe('done');
    expect(run.steps.at(-1)).toMatchObject({ step: 'check_passed', detail: 'budget found' });
    expect(approves()).toHaveLength(0); // never approved behind anyone's back
    expect(await h.app.deps.store.collection('runs').live()).toHaveLength(0);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ASSISTANT, flowFile, startHarness, watchUnhandledRejections, type Harness } from './helpers/approval-harness.js';
import { waitFor } from './helpers/test-app.js';

/** Every change to a run goes through its chain, while intake answers without waiting for it. */
let h: Harness;
let rejections: ReturnType<typeof watchUnhandledRejections>;
beforeEach(() => {
  rejections = watchUnhandledRejections();
});
afterEach(async () => {
  await h?.close();
  rejections.stop();
  expect(rejections.errors).toEqual([]); // one of these ends the real process
});

const approves = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve');
const rejects = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/reject');
const addTask = (code: string, id: string, node: string) => h.approval.addTask(code, { id, user_id: ASSISTANT, status: 'PENDING', node_name: node });

describe('one chain per run', () => {
  it('keeps both of two first events for a new instance that arrive at once', async () => {
    h = await startHarness();
    h.newInstance('INST-1');
    addTask('INST-1', 't-check', 'check_node');
    addTask('INST-1', 't-exec', 'execute_node');
    const answers = await Promise.all([h.sendTaskEvent('INST-1', 't-check'), h.sendTaskEvent('INST-1', 't-exec')]);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    const run = await h.waitForRun('INST-1', (r) => r.stages.check?.state === 'acted' && r.stages.execute?.state === 'waiting_callback');
    expect(run.stages.check!.taskId).toBe('t-check');
    expect(run.stages.execute!.taskId).toBe('t-exec');
    expect(h.business.calls.map((c) => c.path).sort()).toEqual(['/perm/check', '/perm/grant']);
  });

  it('keeps both of two first events handed to the engine in the same tick', async () => {
    h = await startHarness();
    h.newInstance('INST-1B');
    addTask('INST-1B', 't-check', 'check_node');
    addTask('INST-1B', 't-exec', 'execute_node');
    const engine = h.app.deps.engine!;
    const ev = (taskId: string) => ({ approvalCode: h.approval.instances.get('INST-1B')!.approval_code, instanceCode: 'INST-1B', taskId, status: 'PENDING', userId: ASSISTANT });
    expect(await Promise.all([engine.acceptTaskEvent(ev('t-check')), engine.acceptTaskEvent(ev('t-exec'))])).toEqual(['queued', 'queued']);
    const run = await h.waitForRun('INST-1B', (r) => r.stages.check?.state === 'acted' && r.stages.execute?.state === 'waiting_callback');
    expect([run.stages.check!.taskId, run.stages.execute!.taskId]).toEqual(['t-check', 't-exec']);
  });

  it('keeps an event that arrives while the chain is looking up the instance', async () => {
    h = await startHarness();
    h.newInstance('INST-2');
    h.approval.gates.get.hold();
    await h.pendingAt('INST-2', 't-check', 'check_node');
    await waitFor(() => h.approval.gates.get.waiting === 1); // the chain is in its instance look-up (Lark has answered without the next task)
    const second = await h.pendingAt('INST-2', 't-exec', 'execute_node');
    expect(second.status).toBe(200); // answered while the chain is still held
    h.approval.gates.get.open();
    const run = await h.waitForRun('INST-2', (r) => r.stages.check?.state === 'acted' && r.stages.execute?.state === 'waiting_callback');
    expect(run.stages.execute!.taskId).toBe('t-exec');
    expect(await h.app.deps.store.collection('run-inbox').live()).toEqual([]);
  });

  it('answers a callback at once while the chain is held in a card update, and applies it', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined }) });
    h.newInstance('INST-3');
    h.cardGate.hold(); // card updates wait; the first card (a send) goes out
    await h.pendingAt('INST-3', 't-exec', 'execute_node');
    // the chain patches the card ("executing") before calling the business API: held there
    await waitFor(() => h.cardGate.waiting === 1);
    expect((await h.run('INST-3'))!.stages.execute!.state).toBe('calling');
    const cb = await h.callback('execute', { ticket_id: 'INST-3', result: true, msg: 'granted while you were busy' });
    expect(cb.status).toBe(200);
    expect(h.cardGate.waiting).toBe(1); // still held: the answer did not wait for the chain
    h.cardGate.open();
    const run = await h.waitForRun('INST-3', (r) => r.status === 'done');
    expect(run.steps.at(-1)).toMatchObject({ step: 'done', detail: 'granted while you were busy' });
    expect(approves()).toHaveLength(1);
  });

  it('settles an expiry racing a callback one way, consistently with what the caller was told', async () => {
    h = await startHarness({ flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'async', timeoutMs: 1000, retries: 0, callbackTimeoutMs: 1000 } }) });
    const codes = ['RACE-1', 'RACE-2', 'RACE-3', 'RACE-4', 'RACE-5', 'RACE-6'];
    for (const code of codes) {
      h.newInstance(code);
      await h.pendingAt(code, `t-${code}`, 'execute_node');
    }
    const deadlines = new Map<string, number>();
    for (const code of codes) deadlines.set(code, (await h.waitForRun(code, (r) => r.stages.execute?.callbackDeadline !== undefined)).stages.execute!.callbackDeadline!);
    // Each callback is sent around its deadline: some before, some after the timer fires.
    const answers = await Promise.all(
      codes.map(async (code, i) => {
        const at = deadlines.get(code)! + (i - 3) * 4;
        await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
        return h.callback('execute', { ticket_id: code, result: true, msg: `in time ${code}` });
      }),
    );
    for (const [i, code] of codes.entries()) {
      const run = await h.waitForRun(code, (r) => r.status !== 'active');
      if (answers[i]!.status === 200) {
        expect(run.status, code).toBe('done');
        expect(approves().some((c) => c.body.instance_code === code)).toBe(true);
      } else {
        expect(answers[i]!.status, code).toBe(409);
        expect(run.error, code).toBe('no callback in time');
        expect(rejects().some((c) => c.body.instance_code === code)).toBe(true);
      }
    }
    expect(approves().length + rejects().length).toBe(codes.length);
  });
});

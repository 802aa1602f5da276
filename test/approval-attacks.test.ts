import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, watchUnhandledRejections, type Harness } from './helpers/approval-harness.js';

/** Inputs an attacker (or an unusual tenant) controls: ids that are object keys, non-ASCII codes, replays. */
let h: Harness;
let rejections: ReturnType<typeof watchUnhandledRejections>;
afterEach(async () => {
  await h?.close();
  rejections?.stop();
  expect(rejections?.errors ?? []).toEqual([]);
});

const approves = () => h.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve');

describe('instance codes that are not plain ASCII words', () => {
  it('runs instances coded "__proto__", "constructor" and in Chinese like any other, end to end', async () => {
    rejections = watchUnhandledRejections();
    h = await startHarness();
    const codes = ['__proto__', 'constructor', '审批-实例-001'];
    for (const code of codes) {
      h.newInstance(code);
      expect((await h.pendingAt(code, `check-${code}`, 'check_node')).status).toBe(200);
      expect((await h.pendingAt(code, `exec-${code}`, 'execute_node')).status).toBe(200);
    }
    for (const code of codes) await h.waitForRun(code, (r) => r.stages.execute?.state === 'waiting_callback');
    for (const code of codes) {
      expect((await h.callback('execute', { ticket_id: code, result: true, msg: `granted ${code}` })).status).toBe(200);
    }
    for (const code of codes) {
      const run = await h.waitForRun(code, (r) => r.status === 'done');
      expect(run.id).toBe(code);
      expect(run.steps.at(-1)).toMatchObject({ step: 'done', detail: `granted ${code}` });
    }
    expect(approves().map((c) => c.body.instance_code).sort()).toEqual([...codes, ...codes].sort());
    expect(Object.prototype).not.toHaveProperty('flowId'); // nothing leaked onto the prototype
  });

  it('answers a Retry press for a prototype-named or unknown run with a toast, and does nothing', async () => {
    rejections = watchUnhandledRejections();
    h = await startHarness();
    for (const runId of ['__proto__', 'constructor', 'NO-SUCH-RUN', '']) {
      const res = await h.pressRetry(runId, 'check');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ toast: { type: 'error', content: 'This request is no longer known to lark-bridge.' } });
    }
    expect(await h.app.deps.store.collection('run-inbox').live()).toEqual([]);
  });
});

describe('replays', () => {
  it('does nothing new when a finished run’s events and result are delivered again', async () => {
    rejections = watchUnhandledRejections();
    h = await startHarness();
    h.newInstance('INST-R');
    await h.pendingAt('INST-R', 't-check', 'check_node', { uuid: 'ev-check' });
    await h.pendingAt('INST-R', 't-exec', 'execute_node', { uuid: 'ev-exec' });
    await h.waitForRun('INST-R', (r) => r.stages.execute?.state === 'waiting_callback');
    const result = { ticket_id: 'INST-R', result: true, msg: 'granted' };
    expect((await h.callback('execute', result)).status).toBe(200);
    await h.waitForRun('INST-R', (r) => r.status === 'done');
    const calls = h.business.calls.length;
    // Lark redelivers with the same event ids and with new ones; the business replays its callback.
    await Promise.all([
      h.sendTaskEvent('INST-R', 't-check', { uuid: 'ev-check' }),
      h.sendTaskEvent('INST-R', 't-exec', { uuid: 'ev-exec' }),
      h.sendTaskEvent('INST-R', 't-check'),
      h.sendTaskEvent('INST-R', 't-exec'),
    ]);
    expect((await h.callback('execute', result)).status).toBe(409);
    await h.app.deps.engine!.idle();
    expect(h.business.calls).toHaveLength(calls);
    expect(approves()).toHaveLength(2);
    expect((await h.run('INST-R'))!.status).toBe('done');
  });
});

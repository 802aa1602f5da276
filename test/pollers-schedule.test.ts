import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { guanceFlow, startPollerHarness, TestClock, type PollerHarness } from './helpers/poller-harness.js';
import { waitFor } from './helpers/test-app.js';

/** node-cron on real time: schedules, hot reload, overlap and backoff as an operator sees them. */
let h: PollerHarness;
afterEach(async () => h?.close());

const now = () => Math.floor(Date.now() / 1000);
const titles = () => h.cardsIn().map((c) => c.card.header.title.content as string);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('poller schedules', () => {
  it('a one-second schedule posts issues as they arrive, each once', async () => {
    h = await startPollerHarness();
    await h.writeFlow(guanceFlow(h.guance.url, { schedule: '* * * * * *' }));
    h.guance.addIssue({ name: 'first', createAt: now() });
    await waitFor(() => h.cardsIn().length === 1, 5_000);
    h.guance.addIssue({ name: 'second', createAt: now() });
    await waitFor(() => h.cardsIn().length === 2, 5_000);
    const runs = (await h.pollers())[0].counts.runs;
    await waitFor(async () => (await h.pollers())[0].counts.runs >= runs + 2, 5_000); // more ticks, nothing new
    expect(titles()).toEqual(['[P1] first', '[P1] second']);
    expect((await h.pollers())[0].lastRun.trigger).toBe('schedule');
  });

  it('a changed schedule is picked up from the file without a restart; removing the file unschedules', async () => {
    h = await startPollerHarness();
    const file = join(h.flowsDir, 'guance-issues.json');
    await writeFile(file, JSON.stringify(guanceFlow(h.guance.url, { schedule: '0 0 1 1 *' })));
    await waitFor(async () => (await h.pollers()).length === 1, 5_000); // the watcher loads it
    h.guance.addIssue({ name: 'waiting', createAt: now() });
    await pause(1_500);
    expect(h.guance.callsTo('POST', '/api/v1/issue/list')).toHaveLength(0); // once a year: not now

    await writeFile(file, JSON.stringify(guanceFlow(h.guance.url, { schedule: '* * * * * *' })));
    await waitFor(() => h.cardsIn().length === 1, 5_000);
    const [p] = await h.pollers();
    expect(p.schedule).toBe('* * * * * *');
    expect(new Date(p.nextRunAt).getTime() - Date.now()).toBeLessThanOrEqual(1_000);

    await rm(file);
    await waitFor(async () => (await h.pollers()).length === 0, 5_000);
    await pause(300); // a tick already under way may finish
    const calls = h.guance.callsTo('POST', '/api/v1/issue/list').length;
    await pause(2_000);
    expect(h.guance.callsTo('POST', '/api/v1/issue/list')).toHaveLength(calls);
    const ran = await h.runNow();
    expect(ran.status).toBe(404);
  });

  it('every second with a slow Lark: a tick during a run is skipped, not doubled, and counted', async () => {
    h = await startPollerHarness();
    h.lark.latencyMs = 1_200;
    for (let i = 0; i < 2; i++) h.guance.addIssue({ name: `slow ${i}`, createAt: now() - 5 + i });
    await h.writeFlow(guanceFlow(h.guance.url, { schedule: '* * * * * *' }));
    await waitFor(() => h.cardsIn().length === 2, 15_000);
    await waitFor(async () => !(await h.pollers())[0].running, 5_000);
    h.lark.latencyMs = 0;
    const [p] = await h.pollers();
    expect(p.counts.skippedTicks).toBeGreaterThanOrEqual(2);
    // Each run lists once; runs never overlap, so there were fewer runs than seconds.
    const lists = h.guance.callsTo('POST', '/api/v1/issue/list');
    expect(lists.length).toBe(p.counts.runs);
    expect(titles()).toEqual(['[P1] slow 0', '[P1] slow 1']);
  });

  it('a tick while a run asked for by the API is going is skipped: no item is sent twice', async () => {
    h = await startPollerHarness();
    for (let i = 0; i < 3; i++) h.guance.addIssue({ name: `m${i}`, createAt: now() - 5 + i });
    await h.writeFlow(guanceFlow(h.guance.url, { schedule: '0 0 1 1 *' }));
    h.lark.latencyMs = 700;
    const manual = h.runNow();
    await waitFor(() => h.lark.callsTo('POST', '/open-apis/im/v1/messages').length === 1, 5_000);
    await h.writeFlow(guanceFlow(h.guance.url, { schedule: '* * * * * *' })); // now it ticks every second too
    const report = (await manual).json;
    h.lark.latencyMs = 0;
    expect(report.posted).toHaveLength(3);
    await waitFor(async () => (await h.pollers())[0].counts.runs >= 2, 5_000);
    expect((await h.pollers())[0].counts.skippedTicks).toBeGreaterThanOrEqual(1);
    expect(h.lark.callsTo('POST', '/open-apis/im/v1/messages')).toHaveLength(3);
    expect(titles()).toEqual(['[P1] m0', '[P1] m1', '[P1] m2']);
  });

  it('a failing source backs off: ticks are skipped until the backoff has passed', async () => {
    const clock = new TestClock();
    h = await startPollerHarness({ clock });
    h.guance.failNext('POST /api/v1/issue/list', { status: 500, body: { code: 500, errorCode: 'ft.Internal', message: 'down', success: false } }, 100);
    await h.writeFlow(guanceFlow(h.guance.url, { schedule: '* * * * * *' }));
    await waitFor(() => h.guance.callsTo('POST', '/api/v1/issue/list').length === 1, 5_000);
    // The clock the backoff is measured with stands still: every tick now is within it.
    await waitFor(async () => (await h.pollers())[0].counts.skippedTicks >= 2, 5_000);
    expect(h.guance.callsTo('POST', '/api/v1/issue/list')).toHaveLength(1);
    const [p] = await h.pollers();
    expect(p.lastError.message).toContain('HTTP 500');
    expect(new Date(p.backoffUntil).getTime()).toBeGreaterThan(clock.now());

    clock.advance(10 * 60_000); // past any backoff (capped at 5 minutes)
    await waitFor(() => h.guance.callsTo('POST', '/api/v1/issue/list').length === 2, 5_000);
    const [after] = await h.pollers();
    expect(after.counts.failedRuns).toBe(2);
    // The second failure in a row waits longer: base 1 s doubling, with equal jitter.
    expect(new Date(after.backoffUntil).getTime() - clock.now()).toBeGreaterThanOrEqual(1_000);
  });

  it('stopping waits for the card in hand (bounded), leaves the rest for the next start, loses nothing', async () => {
    h = await startPollerHarness();
    for (let i = 0; i < 4; i++) h.guance.addIssue({ name: `s${i}`, createAt: now() - 10 + i });
    await h.writeFlow(guanceFlow(h.guance.url));
    h.lark.latencyMs = 400;
    const running = h.runNow();
    await waitFor(() => h.lark.callsTo('POST', '/open-apis/im/v1/messages').length === 1, 5_000);
    const started = Date.now();
    await h.app.deps.pollers!.stop(5_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    const report = (await running).json;
    expect(report.posted.map((p: any) => p.title)).toEqual(['s0']);
    expect(report.deferred).toBe(3);
    h.lark.latencyMs = 0;
    await h.restart();
    const again = await h.runNow();
    expect(again.json.posted.map((p: any) => p.title)).toEqual(['s1', 's2', 's3']);
    expect(titles()).toEqual(['[P1] s0', '[P1] s1', '[P1] s2', '[P1] s3']);
  });

  it('stop is bounded even when Lark does not answer', async () => {
    h = await startPollerHarness();
    h.guance.addIssue({ name: 'hangs', createAt: now() - 5 });
    await h.writeFlow(guanceFlow(h.guance.url));
    h.lark.latencyMs = 2_000;
    void h.runNow();
    await waitFor(() => h.lark.callsTo('POST', '/open-apis/im/v1/messages').length === 1, 5_000);
    const started = Date.now();
    await h.app.deps.pollers!.stop(300);
    expect(Date.now() - started).toBeLessThan(1_500);
    h.lark.latencyMs = 0;
  });
});

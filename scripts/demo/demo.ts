import type { FakeIssue } from '../../test/fake-guance/fake-guance.js';
import { businessApi, type BusinessLog } from './business-api.js';
import { approvalStep } from './step-approval.js';
import type { StepContext } from './step-context.js';
import { pollerStep, replyStep } from './step-issues.js';
import { taskSyncStep } from './step-task-sync.js';
import { Transcript } from './transcript.js';
import { startWorld, tail, type World } from './world.js';

/**
 * `npm run demo`: the real service against local fakes, walking one of each job, printed as a
 * transcript. Resolves with the exit code: 0 when every step worked, 1 when one failed (the
 * message names the step and what did not happen), 130 when interrupted. Whatever happens, the
 * service is stopped, the fakes closed and the temp dir removed before it resolves.
 */
export interface DemoOptions {
  write: (line: string) => void;
  /** How long one awaited outcome may take (DEMO_STEP_TIMEOUT_MS; raise it on a slow machine). */
  stepTimeoutMs: number;
  /** Resolves (with the signal's name) when the user interrupts (Ctrl-C). */
  interrupted: Promise<string>;
}

export async function runDemo(o: DemoOptions): Promise<number> {
  const t = new Transcript(o.write);
  const business: BusinessLog = { calls: [], callbacks: [] };
  let world: World | undefined;
  let dir: string | undefined;
  let current = 'start-up';
  const interrupted = o.interrupted.then((signal) => ({ signal }));
  const starting = startWorld(businessApi(business), (d) => (dir = d));
  // Raced against an interrupt: whichever loses may still settle later, and must not crash the process.
  starting.catch(() => undefined);
  try {
    t.plain('lark-bridge demo: the real service against local stand-ins for Lark, a business API,');
    t.plain('an Anycross trigger and Guance. Everything runs on 127.0.0.1; nothing leaves this machine.');
    const started = await Promise.race([starting, interrupted]);
    if ('signal' in started) return await stopped(t, started.signal);
    world = started;
    t.plain(`service: src/main.ts, pid ${world.service.pid}, at ${world.service.url}; temp dir ${world.dir}`);
    t.plain(`Lark emulator ${world.lark.url} · business API ${world.business.url} · Anycross ${world.anycross.url} · Guance ${world.guance.url}`);
    t.plain('→ a request to the service   ← its answer   ↔ both   · what happens around it   ✓ an outcome');
    const ctx: StepContext = { w: world, t, business, timeoutMs: o.stepTimeoutMs };

    let issues: FakeIssue[] = [];
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['1/4 An approval through its check and execute nodes', () => approvalStep(ctx)],
      ['2/4 A task-sync batch, polled until done', () => taskSyncStep(ctx)],
      ['3/4 A poller bringing Guance issues into a chat', async () => (issues = await pollerStep(ctx))],
      ['4/4 An @bot reply in a card thread, back to Guance', () => replyStep(ctx, issues[0]!)],
    ];
    for (const [name, run] of steps) {
      current = name;
      t.heading(name);
      const running = run().then(() => undefined);
      running.catch(() => undefined);
      const outcome = await Promise.race([running, interrupted]);
      if (outcome) return await stopped(t, outcome.signal);
    }

    current = 'stopping the service';
    t.heading('Done');
    const code = await world.service.stop();
    if (code !== 0) throw new Error(`the service exited with ${code} on SIGTERM`);
    t.line('✓', 'every job worked; the service stopped cleanly on SIGTERM (exit 0)');
    t.plain('');
    t.plain('Each job above is declared in a flow file (flows/*.json, see the README), not in code.');
    t.plain('To run it against your own Feishu/Lark app, follow the README "Quick start".');
    return 0;
  } catch (err) {
    t.plain('');
    t.line('✗', `demo failed in step "${current}": ${(err as Error)?.message ?? String(err)}`);
    const log = world?.service.log();
    if (log) {
      t.plain('last lines the service logged:');
      t.block(tail(log).split('\n'));
    }
    return 1;
  } finally {
    // Interrupted during start-up: the world is closed once it has started (or failed to).
    world ??= await starting.catch(() => undefined);
    await world?.close();
    if (dir) t.plain(`cleaned up: service stopped, fakes closed, ${dir} removed`);
  }
}

async function stopped(t: Transcript, signal: string): Promise<number> {
  t.plain('');
  t.line('✗', `interrupted (${signal}): stopping the service and cleaning up`);
  return 130;
}

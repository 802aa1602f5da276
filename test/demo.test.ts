import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/test-app.js';

/**
 * `npm run demo` as a newcomer runs it: a clean environment (no Lark credentials, no .env), the
 * real service in a child process, a transcript on stdout. It must show every job working, exit
 * 0 and leave nothing behind — and fail loudly, or stop on Ctrl-C, cleaning up all the same.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface DemoProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const running: DemoProcess[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) {
    if (d.child.exitCode === null) d.child.kill('SIGKILL');
    await d.exited;
  }
});

function startDemo(command: string, args: string[], env: Record<string, string> = {}): DemoProcess {
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? ROOT, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const d = { child, output: () => out, exited };
  running.push(d);
  return d;
}

/** The demo's temp dir and service pid, as its transcript names them; both must be gone after it. */
function leftovers(output: string): { dir: string; pid: number } {
  const m = /service: src\/main\.ts, pid (\d+), at \S+; temp dir (\S+)/.exec(output);
  expect(m, output).not.toBeNull();
  return { pid: Number(m![1]), dir: m![2]! };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run demo', () => {
  it('walks every job against the fakes, prints the transcript with the cards, exits 0 and cleans up', async () => {
    const demo = startDemo('npm', ['run', '--silent', 'demo']);
    const code = await Promise.race([demo.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 100_000).unref())]);
    const out = demo.output();
    expect(code, out).toBe(0);
    for (const line of [
      '→ Lark → POST /api/v1/lark/callback: approval_task, the assistant\'s task at check_node is PENDING (signed, AES-encrypted)',
      '· service → business API: POST /api/perm/check (signature verified)',
      '✓ service → Lark: approve the check_node task, comment "alice is not admin yet: the request may go on"',
      '← 200 {"status":"accepted","ticket_id":"DEMO-INSTANCE-0001","stage":"execute"}',
      '✓ service → Lark: approve the execute_node task, comment "granted admin to alice until 2026-12-31"',
      '┌─ Admin console permission request · Done (green)',
      '│ 🎉 Done',
      '← 202 {"jobId":',
      'success (3/3 done)',
      '✓ job success: 3 records synced',
      '┌─ [P1] Disk usage 91% on db-1 (orange)',
      '┌─ [P0] Checkout 5xx rate above 2% (red)',
      '✓ each issue is in the chat exactly once',
      '"content":"Alice Zhang (Lark): freed 40 GB of old WAL, disk at 51% now"',
      '✓ the bot, in the thread: ✅ Comment added to "Disk usage 91% on db-1"',
      '✓ every job worked; the service stopped cleanly on SIGTERM (exit 0)',
    ]) {
      expect(out).toContain(line);
    }
    const { dir, pid } = leftovers(out);
    expect(out).toContain(`cleaned up: service stopped, fakes closed, ${dir} removed`);
    expect(existsSync(dir)).toBe(false);
    expect(alive(pid)).toBe(false);
  }, 120_000);

  it('on Ctrl-C stops the service, removes its temp dir and exits 130', async () => {
    const demo = startDemo(process.execPath, ['--import', 'tsx', 'scripts/demo/run.ts']);
    await waitFor(() => demo.output().includes('━━ 1/4'), 60_000);
    const { dir, pid } = leftovers(demo.output());
    expect(alive(pid)).toBe(true);
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(130);
    expect(demo.output()).toContain('✗ interrupted (SIGINT): stopping the service and cleaning up');
    expect(existsSync(dir)).toBe(false);
    expect(alive(pid)).toBe(false);
  }, 90_000);

  it('a step that does not complete in time fails the demo with exit 1, naming the step and what was awaited, and cleans up', async () => {
    const demo = startDemo(process.execPath, ['--import', 'tsx', 'scripts/demo/run.ts'], { DEMO_STEP_TIMEOUT_MS: '1' });
    expect(await demo.exited).toBe(1);
    const out = demo.output();
    expect(out).toMatch(/✗ demo failed in step "1\/4 An approval through its check and execute nodes": no sign of .+ after 1 ms \(each wait is bounded by DEMO_STEP_TIMEOUT_MS\)/);
    expect(out).toContain('last lines the service logged:');
    const { dir, pid } = leftovers(out);
    expect(existsSync(dir)).toBe(false);
    expect(alive(pid)).toBe(false);
  }, 90_000);
});

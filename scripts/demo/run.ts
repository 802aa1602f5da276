import { runDemo } from './demo.js';

/**
 * `npm run demo`: see what lark-bridge does in about a minute, without a Feishu tenant.
 * DEMO_STEP_TIMEOUT_MS (default 20000) bounds each awaited outcome; raise it on a slow machine.
 */
const stepTimeoutMs = Number(process.env.DEMO_STEP_TIMEOUT_MS ?? 20_000);
if (!Number.isFinite(stepTimeoutMs) || stepTimeoutMs <= 0) {
  process.stderr.write(`demo: DEMO_STEP_TIMEOUT_MS must be a positive number of milliseconds, got "${process.env.DEMO_STEP_TIMEOUT_MS}"\n`);
  process.exit(2);
}

// Ctrl-C (or a supervisor's SIGTERM): clean up first, then exit; a second one exits at once.
let stopping = false;
const interrupted = new Promise<string>((resolve) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130);
      stopping = true;
      resolve(signal);
    });
  }
});

const code = await runDemo({ write: (line) => process.stdout.write(`${line}\n`), stepTimeoutMs, interrupted });
process.exit(code);

import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnService } from './helpers/service-process.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

// A name with a 64-character label cannot be put in a DNS query: getaddrinfo fails at once with
// ENOTFOUND and no packet leaves the machine (an unresolvable name that needs no network).
const UNRESOLVABLE = `${'a'.repeat(64)}.example`;

let dir: string;
let aFile: string;
beforeAll(async () => {
  dir = await tempDir('lark-bridge-start-');
  aFile = join(dir, 'not-a-dir');
  await writeFile(aFile, 'x');
  await writeFile(join(dir, 'garbage.pem'), 'this is not a certificate\n');
});
afterAll(async () => {
  await removeDir(dir);
});

/** What an operator sees: the lines of the output, and whether any is a stack frame. */
function refusal(output: string) {
  const lines = output.trim().split('\n').filter(Boolean);
  return { lines, stack: /\n\s+at /.test(output) };
}

const PREFIX = 'lark-bridge: cannot start, ';

/** Runs src/main.ts until it exits; one still running after 15 s (the check is gone) is killed. */
function runServiceExpectingExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

describe('operator errors are one line each, all at once, exit 2', () => {
  it('reports every bad variable of one start together: schema, cross-variable and what they name', async () => {
    const { code, output } = await runServiceExpectingExit({
      PORT: 'eighty',
      TASK_SYNC_DEFAULT_TIMEOUT: '200',
      TASK_SYNC_MAX_TIMEOUT: '100',
      TASK_SYNC_ALLOWED_URLS: 'https://hooks.example.com/ok/,https://exa mple.com/bad/',
      ANYCROSS_CA_BUNDLE: join(dir, 'missing-ca.pem'),
      DATA_DIR: aFile,
      TEMPLATES_DIR: join(dir, 'no-templates'),
      SENTRY_DSN: 'not a dsn',
      HOST: UNRESOLVABLE,
    });
    expect(code).toBe(2);
    const { lines, stack } = refusal(output);
    expect(stack).toBe(false);
    expect(lines.every((l) => l.startsWith(PREFIX))).toBe(true);
    expect(lines.map((l) => l.slice(PREFIX.length).split(':')[0]).sort()).toEqual(
      ['ANYCROSS_CA_BUNDLE', 'DATA_DIR', 'HOST', 'PORT', 'SENTRY_DSN', 'TASK_SYNC_ALLOWED_URLS', 'TASK_SYNC_DEFAULT_TIMEOUT', 'TEMPLATES_DIR'].sort(),
    );
  });

  it.each([
    ['an invalid URL in TASK_SYNC_ALLOWED_URLS', { TASK_SYNC_ALLOWED_URLS: 'https://exa mple.com/hooks/' }, /^TASK_SYNC_ALLOWED_URLS: "https:\/\/exa mple\.com\/hooks\/" is not a valid URL/],
    ['a missing ANYCROSS_CA_BUNDLE file', { ANYCROSS_CA_BUNDLE: '/nonexistent/corp-ca.pem' }, /^ANYCROSS_CA_BUNDLE: \/nonexistent\/corp-ca\.pem does not exist$/],
    ['an ANYCROSS_CA_BUNDLE that holds no certificate', { ANYCROSS_CA_BUNDLE: '<dir>/garbage.pem' }, /^ANYCROSS_CA_BUNDLE: .*garbage\.pem holds no PEM certificate/],
    ['a DATA_DIR that is a file', { DATA_DIR: '<dir>/not-a-dir' }, /^DATA_DIR: .*not-a-dir is a file, not a directory/],
    ['an unresolvable HOST', { HOST: UNRESOLVABLE }, new RegExp(`^HOST: cannot resolve "${UNRESOLVABLE}" \\(ENOTFOUND\\)`)],
    ['a missing TEMPLATES_DIR', { TEMPLATES_DIR: '<dir>/templatez' }, /^TEMPLATES_DIR: .*templatez does not exist \(the folder of the card templates/],
    ['a FLOWS_DIR that is a file', { FLOWS_DIR: '<dir>/not-a-dir' }, /^FLOWS_DIR: .*not-a-dir is a file, not the folder of the flow files$/],
    ['an invalid SENTRY_DSN (said in our words, not by the Sentry SDK)', { SENTRY_DSN: 'https://sentry.example.com/no-key' }, /^SENTRY_DSN: expected a DSN such as https:\/\/<public key>@/],
  ])('%s: one line naming the variable', async (_name, env, expected) => {
    const withDir = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace('<dir>', dir)]));
    const dataDir = join(dir, `data-${Object.keys(env)[0]}`);
    const { code, output } = await runServiceExpectingExit({ DATA_DIR: dataDir, PORT: '0', ...withDir });
    expect(code).toBe(2);
    const { lines, stack } = refusal(output);
    expect(stack).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.startsWith(PREFIX)).toBe(true);
    expect(lines[0]!.slice(PREFIX.length)).toMatch(expected);
  });

  describe('a port in use', () => {
    let holder: Server;
    let port: number;
    beforeAll(async () => {
      holder = createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      port = (holder.address() as { port: number }).port;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    });

    it('is one line naming HOST:PORT, and the data dir is left unlocked', async () => {
      const dataDir = join(dir, 'data-port');
      const { code, output } = await runServiceExpectingExit({ DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port) });
      expect(code).toBe(2);
      const { lines, stack } = refusal(output);
      expect(stack).toBe(false);
      expect(lines).toEqual([`${PREFIX}PORT: 127.0.0.1:${port} is already in use (another lark-bridge, or another service): stop it or choose another HOST/PORT`]);
      // The store was closed before exiting: the next start finds no stale lock to take over.
      const next = await spawnService({ DATA_DIR: dataDir });
      try {
        expect(next.output()).not.toMatch(/stale lock/);
      } finally {
        await next.kill('SIGTERM');
      }
    });
  });
});

describe('the out-of-the-box start (no environment at all)', () => {
  it('logs nothing at warn or above and says in one line which example flows wait for which variables', async () => {
    const service = await spawnService({ DATA_DIR: join(dir, 'data-fresh') });
    try {
      await waitFor(() => service.output().includes('"msg":"Flows: '));
      const lines = service.output().trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(lines.filter((l) => l.level >= 40)).toEqual([]);
      const flows = lines.find((l) => l.msg.startsWith('Flows: '))!;
      expect(flows.msg).toMatch(/^Flows: 0 loaded; \d+ not loaded until their variables are set: /);
      expect(flows.msg).toContain('admin-permission.json (ADMIN_API_SECRET, ADMIN_PERMISSION_CHAT_ID, ADMIN_OPTIONS_TOKEN)');
      expect(flows.msg).toContain('guance-issues.json (GUANCE_API_KEY, GUANCE_ISSUES_CHAT_ID)');
      expect(flows.msg).toContain('wifi-mac-whitelist.json (NETOPS_API_SECRET, NETOPS_CHAT_ID)');
    } finally {
      await service.kill('SIGTERM');
    }
  });
});

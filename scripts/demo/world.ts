import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeGuance, type FakeGuance } from '../../test/fake-guance/fake-guance.js';
import { ApprovalEmulation, registerCardPatch } from '../../test/lark-emulator/approval.js';
import { ChatEmulation } from '../../test/lark-emulator/chat.js';
import { startLarkEmulator, type LarkEmulator } from '../../test/lark-emulator/emulator.js';
import { FakeUpstream, type UpstreamHandler } from '../../test/helpers/fake-upstream.js';
import { demoFlows } from './flows.js';
import { DEMO } from './settings.js';

/**
 * Everything the demo runs against, all on 127.0.0.1 with free ports: the Lark emulator (with
 * approvals, card updates and people in chats), a fake business API, a fake Anycross trigger, a
 * fake Guance — and the real service, src/main.ts in a child process, with a temp data dir and
 * flows dir and an environment of its own (nothing from the caller's shell or a .env file).
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));


export interface World {
  lark: LarkEmulator;
  approval: ApprovalEmulation;
  chat: ChatEmulation;
  business: FakeUpstream;
  anycross: FakeUpstream;
  guance: FakeGuance;
  service: ServiceChild;
  dir: string;
  /** Stops the service (SIGTERM, then SIGKILL), closes the fakes, removes the temp dir. Safe to call twice. */
  close(): Promise<void>;
}

export interface ServiceChild {
  url: string;
  pid: number;
  child: ChildProcess;
  /** What the service logged so far (JSON lines). */
  log(): string;
  /** SIGTERM, then SIGKILL after `graceMs`: resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
}

/** Starts every fake, writes the demo flows, starts the service. `business` answers the business API; `onDir` learns the temp dir at once. */
export async function startWorld(business: UpstreamHandler, onDir: (dir: string) => void): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'lark-bridge-demo-'));
  onDir(dir);
  const closers: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })];
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    })());
  try {
    const lark = await startLarkEmulator({ apps: { [DEMO.appId]: DEMO.appSecret } });
    closers.push(() => lark.close());
    const approval = new ApprovalEmulation(lark);
    registerCardPatch(lark, []);
    const chat = new ChatEmulation(lark);
    const businessApi = await new FakeUpstream(business).start();
    closers.push(() => businessApi.close());
    const anycross = await new FakeUpstream(() => ({ status: 200, body: { code: 0, msg: 'synced' }, delayMs: 400 })).start();
    closers.push(() => anycross.close());
    const guance = await startFakeGuance(DEMO.guanceKey);
    closers.push(() => guance.close());

    const flowsDir = join(dir, 'flows');
    await mkdir(flowsDir);
    for (const [file, flow] of Object.entries(demoFlows({ business: businessApi.url, guance: guance.url }))) await writeFile(join(flowsDir, file), JSON.stringify(flow, null, 2));
    const port = await freePort();
    const service = await startService(dir, {
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
      DATA_DIR: join(dir, 'data'),
      FLOWS_DIR: flowsDir,
      TEMPLATES_DIR: join(ROOT, 'templates'),
      API_TOKENS: DEMO.apiToken,
      LARK_APP_ID: DEMO.appId,
      LARK_APP_SECRET: DEMO.appSecret,
      LARK_DOMAIN: lark.url,
      LARK_ENCRYPT_KEY: DEMO.encryptKey,
      LARK_VERIFICATION_TOKEN: DEMO.verificationToken,
      LARK_ASSISTANT_USER_ID: DEMO.assistant,
      TASK_SYNC_ALLOWED_URLS: `${anycross.url}/anycross/trigger/callback/`,
      DEMO_BUSINESS_SECRET: DEMO.businessSecret,
      DEMO_GUANCE_KEY: DEMO.guanceKey,
      LOG_LEVEL: 'info',
    });
    // Stopped first (closers run in reverse): it may still be talking to the fakes.
    closers.push(() => service.stop());
    return { lark, approval, chat, business: businessApi, anycross, guance, service, dir, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A port nobody listens on now (the service needs it before it starts, for PUBLIC_BASE_URL). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs src/main.ts (as `npm start` does) in `cwd`, with exactly `env`, and waits until it listens. */
async function startService(cwd: string, env: Record<string, string>): Promise<ServiceChild> {
  const tsx = import.meta.resolve('tsx');
  const child = spawn(process.execPath, ['--import', tsx, join(ROOT, 'src/main.ts')], {
    // The temp dir as working directory: a .env file in the checkout is not read.
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not start within 30 s:\n${tail(out)}`)), 30_000);
    const onData = () => {
      const m = /listening on (http:\/\/[^"\s]+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve(m[1]!);
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (code ${code}) before listening:\n${tail(out)}`));
    });
  }).catch(async (err: unknown) => {
    await stop(2_000);
    throw err;
  });
  return { url, pid: child.pid!, child, log: () => out, stop };
}

/** The last lines of a log, for an error message. */
export function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

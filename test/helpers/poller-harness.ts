import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { createDeps } from '../../src/deps.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { startFakeGuance, type FakeGuance } from '../fake-guance/fake-guance.js';
import { startLarkEmulator, type LarkEmulator, type StoredMessage } from '../lark-emulator/emulator.js';
import { api, removeDir, tempDir, TOKEN, type ApiAnswer, type TestApp } from './test-app.js';

export const POLLER_APP_ID = 'cli_b1b2c3d4e5f60010';
export const POLLER_APP_SECRET = 'poller-app-secret';
export const ONCALL_CHAT = 'oc_oncall';
export const GUANCE_KEY = 'test-guance-key-0123';
export const TEMPLATES = fileURLToPath(new URL('../../templates', import.meta.url));

/** A clock that stands still until told; sleeping moves it on (a rate limiter's wait passes at once). */
export class TestClock implements Clock {
  constructor(public t = Date.now()) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
    await new Promise((r) => setImmediate(r));
  }
}

/** A Guance poller flow for the harness; the schedule by default is once a year (runs are asked for). */
export function guanceFlow(guanceUrl: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    $schema: './flow.schema.json',
    kind: 'poller',
    id: 'guance-issues',
    name: 'Guance issues',
    schedule: '0 0 1 1 *',
    source: { type: 'guance', baseUrl: guanceUrl, apiKey: '${env:TEST_GUANCE_KEY}', channel: 'on-call' },
    notify: { chatId: ONCALL_CHAT },
    replies: true,
    ...overrides,
  };
}

export interface PollerHarnessOptions {
  clock?: Clock;
  /** Log lines (JSON) of the service, when a test looks at them. */
  logs?: string[];
  env?: Record<string, string | undefined>;
  customBots?: Record<string, { chatId: string; secret?: string }>;
}

export interface PollerHarness {
  lark: LarkEmulator;
  guance: FakeGuance;
  flowsDir: string;
  app: TestApp;
  writeFlow(flow: Record<string, unknown>, file?: string): Promise<void>;
  removeFlow(file: string): Promise<void>;
  runNow(id?: string): Promise<ApiAnswer>;
  pollers(): Promise<any[]>;
  /** The cards (as parsed JSON) in a chat, in the order Lark took them. */
  cardsIn(chatId?: string): Array<{ message: StoredMessage; card: any }>;
  /** Drops the app as a crash would and starts it again on the same data dir. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startPollerHarness(o: PollerHarnessOptions = {}): Promise<PollerHarness> {
  process.env.TEST_GUANCE_KEY = GUANCE_KEY;
  const lark = await startLarkEmulator({ apps: { [POLLER_APP_ID]: POLLER_APP_SECRET }, customBots: o.customBots });
  const guance = await startFakeGuance(GUANCE_KEY);
  const flowsDir = await tempDir('lark-bridge-poller-flows-');
  const env = Object.fromEntries(
    Object.entries({
      LARK_APP_ID: POLLER_APP_ID,
      LARK_APP_SECRET: POLLER_APP_SECRET,
      LARK_DOMAIN: lark.url,
      FLOWS_DIR: flowsDir,
      TEMPLATES_DIR: TEMPLATES,
      ...o.env,
    }).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const h: PollerHarness = {
    lark,
    guance,
    flowsDir,
    app: await startPollerApp(env, undefined, o),
    async writeFlow(flow, file = 'guance-issues.json') {
      await writeFile(join(flowsDir, file), JSON.stringify(flow, null, 2));
      await h.app.deps.flows.reload(file); // the watcher would too, 100 ms later
    },
    async removeFlow(file) {
      await rm(join(flowsDir, file), { force: true });
      await h.app.deps.flows.reload(file);
    },
    runNow: (id = 'guance-issues') => api(h.app.url, `/api/pollers/${encodeURIComponent(id)}/run`, { method: 'POST' }),
    async pollers() {
      const r = await api(h.app.url, '/api/pollers');
      if (r.status !== 200) throw new Error(`GET /api/pollers answered ${r.status}`);
      return r.json.pollers;
    },
    cardsIn(chatId = ONCALL_CHAT) {
      return [...lark.messages.values()].filter((m) => m.chat_id === chatId && m.msg_type === 'interactive').map((message) => ({ message, card: JSON.parse(message.content) }));
    },
    async restart() {
      await h.app.crash();
      h.app = await startPollerApp(env, h.app.dataDir, o);
    },
    async close() {
      await h.app.stop();
      await lark.close();
      await guance.close();
      await removeDir(h.app.dataDir);
      await removeDir(flowsDir);
    },
  };
  return h;
}

/** The real app as main.ts builds it (pollers started), with an injectable clock and log capture. */
export async function startPollerApp(env: Record<string, string>, dataDir: string | undefined, o: PollerHarnessOptions): Promise<TestApp> {
  const dir = dataDir ?? (await tempDir());
  await mkdir(join(dir, 'flows-for-test'), { recursive: true });
  const config = loadConfig({ DATA_DIR: dir, FLOWS_DIR: join(dir, 'flows-for-test'), API_TOKENS: TOKEN, LOG_LEVEL: o.logs ? 'debug' : 'silent', ...env });
  const logger = o.logs
    ? createLogger('debug', {
        write(line: string) {
          o.logs!.push(line);
          return true;
        },
      } as unknown as NodeJS.WritableStream)
    : silentLogger();
  const deps = await createDeps(config, logger, o.clock);
  const app = createApp(deps);
  deps.flows.watch();
  deps.pollers!.start();
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const shutDown = async (graceMs: number, flushStore: boolean) => {
    deps.flows.close();
    await deps.pollers!.stop(graceMs);
    await deps.worker.stop(graceMs);
    await new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    if (flushStore) await deps.store.close();
    await deps.upstream.close();
  };
  return { url, dataDir: dir, deps, routes: app.routes, stop: () => shutDown(5_000, true), crash: () => shutDown(0, false) };
}

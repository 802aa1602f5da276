import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeGuance, type FakeGuance } from './fake-guance/fake-guance.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { GUANCE_KEY, guanceFlow, ONCALL_CHAT, POLLER_APP_ID, POLLER_APP_SECRET, TEMPLATES } from './helpers/poller-harness.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

/**
 * The issue's "Done when": a fake Guance feed with issues arriving over time, the real service
 * (src/main.ts in a child process) polling it every second, killed with SIGKILL between runs and
 * in the middle of runs and started again: every issue is in the chat exactly once.
 */
let lark: LarkEmulator;
let guance: FakeGuance;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await lark?.close();
  await guance?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

const now = () => Math.floor(Date.now() / 1000);

async function setUp() {
  lark = await startLarkEmulator({ apps: { [POLLER_APP_ID]: POLLER_APP_SECRET } });
  guance = await startFakeGuance(GUANCE_KEY);
  const dataDir = await tempDir();
  const flowsDir = await tempDir('lark-bridge-poller-flows-');
  dirs.push(dataDir, flowsDir);
  await writeFile(join(flowsDir, 'guance-issues.json'), JSON.stringify(guanceFlow(guance.url, { schedule: '* * * * * *', maxPerRun: 3 })));
  const env = {
    DATA_DIR: dataDir,
    FLOWS_DIR: flowsDir,
    TEMPLATES_DIR: TEMPLATES,
    API_TOKENS: TOKEN,
    LARK_APP_ID: POLLER_APP_ID,
    LARK_APP_SECRET: POLLER_APP_SECRET,
    LARK_DOMAIN: lark.url,
    TEST_GUANCE_KEY: GUANCE_KEY,
  };
  return env;
}

const chatTitles = () =>
  [...lark.messages.values()].filter((m) => m.chat_id === ONCALL_CHAT).map((m) => JSON.parse(m.content).header.title.content.replace(/^\[P\d\] /, '') as string);
const creates = () => lark.callsTo('POST', '/open-apis/im/v1/messages').length;

describe('pollers across crashes', () => {
  it('issues arriving over time, a one-second schedule, SIGKILL between and in the middle of runs: each issue exactly once', async () => {
    const env = await setUp();
    const expected: string[] = [];
    let service = await spawnService(env);
    procs.push(service);
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 4; i++) {
        const name = `r${round}-i${i}`;
        guance.addIssue({ name, createAt: now() - 1 });
        expected.push(name);
      }
      const midRun = round % 2 === 1;
      // Mid-run: Lark answers slowly and the kill lands while a card is on its way (Lark keeps it;
      // the restarted service posts it again with the same uuid and Lark hands back the same message).
      lark.latencyMs = midRun ? 300 : 0;
      const before = creates();
      if (midRun) {
        await waitFor(() => creates() > before, 10_000, 5);
      } else {
        await waitFor(() => expected.every((n) => chatTitles().includes(n)), 15_000);
      }
      expect(await service.kill('SIGKILL')).toBeNull();
      lark.latencyMs = 0;
      service = await spawnService(env);
      procs.push(service);
    }
    await waitFor(() => expected.every((n) => chatTitles().includes(n)), 20_000);
    // A few more ticks: nothing more comes.
    const r = await api(service.url, '/api/pollers');
    const runs = r.json.pollers[0].counts.runs as number;
    await waitFor(async () => (await api(service.url, '/api/pollers')).json.pollers[0].counts.runs >= runs + 2, 10_000);
    const titles = chatTitles();
    expect(titles.sort()).toEqual([...expected].sort());
    expect(new Set(titles).size).toBe(titles.length);
    // Lark was asked more than once for some (the killed runs), always with the item's own uuid.
    const uuids = lark.callsTo('POST', '/open-apis/im/v1/messages').map((c) => c.body.uuid as string);
    expect(new Set(uuids).size).toBe(expected.length);
    expect(uuids.length).toBeGreaterThanOrEqual(expected.length + 3); // each mid-run kill left one card unmarked

    expect(await service.kill('SIGTERM')).toBe(0);
  }, 120_000);

  it('SIGTERM during a run: the service finishes the card in hand, saves the cursor and exits 0; the next start posts the rest', async () => {
    const env = await setUp();
    const service = await spawnService(env);
    procs.push(service);
    for (let i = 0; i < 3; i++) guance.addIssue({ name: `t${i}`, createAt: now() - 3 + i });
    lark.latencyMs = 500;
    await waitFor(() => creates() >= 1, 10_000, 5);
    expect(await service.kill('SIGTERM')).toBe(0);
    lark.latencyMs = 0;
    const posted = chatTitles();
    expect(posted.length).toBeGreaterThanOrEqual(1);
    const next = await spawnService(env);
    procs.push(next);
    await waitFor(() => chatTitles().length === 3, 10_000);
    expect(chatTitles().sort()).toEqual(['t0', 't1', 't2']);
    expect(service.output()).toContain('"msg":"stopped"');
  }, 60_000);
});

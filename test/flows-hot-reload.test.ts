import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

/**
 * The service as `npm start` runs it, its flow file edited while it runs: a save with an error
 * leaves the last good version running, and /readyz and the log say what is wrong and where.
 */
let service: ServiceProcess | undefined;
let feed: FakeUpstream | undefined;
let robot: FakeUpstream | undefined;
const dirs: string[] = [];
afterAll(async () => {
  await service?.kill('SIGTERM');
  await feed?.close();
  await robot?.close();
  for (const d of dirs) await removeDir(d);
});

describe('a flow file saved with an error while the service runs', () => {
  it('keeps the last good version running and reports the file, JSON path and reason in /readyz and the log', async () => {
    feed = await startFakeUpstream(() => ({ status: 200, body: [{ id: 'i-1', title: 'disk full', at: Date.now() - 1_000 }] }));
    robot = await startFakeUpstream(() => ({ status: 200, body: { errcode: 0, errmsg: 'ok' } }));
    const flowsDir = await tempDir('lark-bridge-reload-flows-');
    const dataDir = await tempDir('lark-bridge-reload-data-');
    dirs.push(flowsDir, dataDir);
    const flow = {
      kind: 'poller',
      id: 'feed',
      name: 'Ops feed',
      schedule: '0 0 1 1 *',
      source: { type: 'http', url: `${feed.url}/items`, id: 'id', title: 'title', createdAt: 'at' },
      notify: { type: 'wecom', webhook: `${robot.url}/cgi-bin/webhook/send?key=k` },
    };
    await writeFile(join(flowsDir, 'feed.json'), JSON.stringify(flow, null, 2));
    service = await spawnService({ DATA_DIR: dataDir, FLOWS_DIR: flowsDir, API_TOKENS: TOKEN });
    const ready = await api(service.url, '/readyz', { token: null });
    expect(ready.status).toBe(200);
    expect(ready.json.checks.flows).toMatchObject({ counts: { approval: 0, poller: 1 }, invalid: [] });

    // Saved with a typo in the schedule (and a new name that must not take effect).
    await writeFile(join(flowsDir, 'feed.json'), JSON.stringify({ ...flow, name: 'Renamed', schedule: '0 0 1 1 * * *' }, null, 2));
    const broken = await waitFor(async () => {
      const r = await api(service!.url, '/readyz', { token: null });
      return r.json.checks.flows.invalid.length ? r : undefined;
    });
    expect(broken.status).toBe(200); // the service goes on: the last good version runs
    expect(broken.json.checks.flows.counts).toEqual({ approval: 0, poller: 1 });
    expect(broken.json.checks.flows.invalid).toEqual([{ file: 'feed.json', path: 'schedule', reason: expect.stringContaining('invalid cron expression "0 0 1 1 * * *"'), keeps: 'feed' }]);
    await waitFor(() => service!.output().includes('keeping the last good version of this flow'));
    const log = service.output();
    expect(log).toMatch(/"file":"feed\.json","path":"schedule".*"msg":"invalid flow: feed\.json: schedule: invalid cron expression/);
    expect(log).toMatch(/"file":"feed\.json","flow":"feed".*keeping the last good version of this flow/);

    // The last good version is what runs.
    const pollers = await api(service.url, '/api/pollers');
    expect(pollers.json.pollers).toEqual([expect.objectContaining({ id: 'feed', name: 'Ops feed', schedule: '0 0 1 1 *', scheduled: true })]);
    const run = await api(service.url, '/api/pollers/feed/run', { method: 'POST' });
    expect(run.status).toBe(200);
    expect(run.json.posted).toEqual([expect.objectContaining({ itemId: 'i-1' })]);
    expect(robot.calls).toHaveLength(1);

    // Fixed: the problem is gone and the new version is in force.
    await writeFile(join(flowsDir, 'feed.json'), JSON.stringify({ ...flow, name: 'Renamed' }, null, 2));
    await waitFor(async () => ((await api(service!.url, '/readyz', { token: null })).json.checks.flows.invalid.length === 0 ? true : undefined));
    expect((await api(service.url, '/api/pollers')).json.pollers[0].name).toBe('Renamed');
  });
});

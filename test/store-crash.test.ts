import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

const TOTAL_JOBS = 2000;
const KILLS = 20;
const CLIENTS = 8;
const CONCURRENCY = 16;

let upstream: FakeUpstream;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await upstream?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

/** Small seeded PRNG (mulberry32): the kill points differ per run seed, and a failure names its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

describe('crash: SIGKILL during a burst of task-sync jobs', () => {
  it(`loses no 202-ed job over ${KILLS} kills in a ${TOTAL_JOBS}-job burst, and every record reaches the upstream`, async () => {
    const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100_000);
    const rand = random(seed);
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 2 }));
    const dataDir = await tempDir('lark-bridge-crash-');
    dirs.push(dataDir);
    await mkdir(`${dataDir}-flows`);
    dirs.push(`${dataDir}-flows`);
    const env = {
      DATA_DIR: dataDir,
      FLOWS_DIR: `${dataDir}-flows`,
      API_TOKENS: TOKEN,
      LOG_LEVEL: 'info', // spawnService waits for the 'listening on' line
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_CONCURRENCY: String(CONCURRENCY),
      // Calls run at full concurrency during the burst (no accept-first throttling): kills land
      // mid-call, and the live set stays small enough for compactions to keep coming.
      TASK_SYNC_BURST_CONCURRENCY: String(CONCURRENCY),
      TASK_SYNC_RETRY_BASE_MS: '5',
      STORE_COMPACT_KB: '16', // the least allowed: compactions every few dozen jobs, so kills land in them too
    };
    const accepted = new Map<string, string[]>(); // jobId -> records, for every 202
    const refused: number[] = [];
    let cursor = 0;
    const warnings = { staleLock: 0, cutTail: 0, other: 0 };

    /** Submits jobs until `killAfter` more have been accepted (then SIGKILL), or until the burst is done. */
    async function life(svc: ServiceProcess, killAfter: number | null): Promise<void> {
      let acceptedHere = 0;
      let killed = false;
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (cursor < TOTAL_JOBS && !killed) {
            const i = cursor++;
            const records = [`j${i}-a`, `j${i}-b`];
            try {
              const res = await api(svc.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/crash`, records } });
              if (res.status === 202) {
                accepted.set(res.json.jobId, records);
                acceptedHere++;
              } else refused.push(res.status);
            } catch {
              // in flight when the process died: no answer, so nothing was promised
            }
            if (killAfter !== null && acceptedHere >= killAfter && !killed) {
              killed = true;
              expect(await svc.kill('SIGKILL')).toBeNull();
            }
          }
        }),
      );
      if (killAfter !== null && !killed) expect(await svc.kill('SIGKILL')).toBeNull(); // the burst ran out first
    }

    for (let k = 0; k < KILLS; k++) {
      const before = [...accepted.keys()];
      const svc = await spawnService(env);
      procs.push(svc);
      // Every job accepted before the last kill is there after the restart.
      await inParallel(before.slice(-150), 16, async (id) => {
        const res = await waitFor(() => api(svc.url, `/api/task-sync/status/${id}`).catch(() => undefined), 10_000);
        expect(res.status, `seed ${seed}: job ${id} lost after kill ${k}`).toBe(200);
      });
      // A random point of this life's share of the burst (about a 21st of it).
      const share = (TOTAL_JOBS - cursor) / (KILLS + 1 - k);
      await life(svc, Math.max(5, Math.floor(share * (0.3 + rand() * 1.4))));
      for (const line of svc.output().split('\n').filter((l) => l.includes('"level":40'))) {
        if (line.includes('stale lock')) warnings.staleLock++;
        else if (line.includes('cut at byte')) warnings.cutTail++;
        else warnings.other++;
      }
    }
    const last = await spawnService(env);
    procs.push(last);
    await life(last, null);
    expect(refused, `seed ${seed}`).toEqual([]);
    expect(accepted.size).toBeGreaterThan(TOTAL_JOBS * 0.9);

    // Every accepted record reaches the upstream, and every job reaches a final state.
    const hits = () => {
      const byRecord = new Map<string, number>();
      for (const c of upstream.calls) byRecord.set(c.body.recordId, (byRecord.get(c.body.recordId) ?? 0) + 1);
      return byRecord;
    };
    await waitFor(() => [...accepted.values()].every((recs) => recs.every((r) => hits().has(r))), 60_000, 100);
    await inParallel([...accepted.keys()], 16, async (id) => {
      const job = await waitFor(async () => {
        // A pooled keep-alive connection the server is just closing fails once: ask again.
        const r = await api(last.url, `/api/task-sync/status/${id}`).catch(() => undefined);
        return r?.json?.completedAt ? r.json : undefined;
      }, 20_000);
      expect(job.status, `seed ${seed}: job ${id}`).toBe('success');
      expect(job.results.map((r: { recordId: string }) => r.recordId)).toEqual(accepted.get(id));
    });

    // Duplicates only for calls in flight (or just answered, result not yet durable) at a kill,
    // and a repeat carries the same idempotency key as the first call.
    const byRecord = hits();
    const idOf = new Map([...accepted].flatMap(([jobId, recs]) => recs.map((r) => [r, jobId] as const)));
    let duplicates = 0;
    for (const [record, jobId] of idOf) duplicates += byRecord.get(record)! - 1;
    for (const call of upstream.calls) {
      const jobId = idOf.get(call.body.recordId);
      if (jobId) expect(call.headers['idempotency-key']).toBe(`${jobId}:${call.body.recordId}`);
    }
    expect(duplicates, `seed ${seed}`).toBeLessThanOrEqual(KILLS * CONCURRENCY * 2);
    expect(warnings.other, `seed ${seed}`).toBe(0);
    // Compactions ran all along (the journal generation moved on many times), so kills landed in them too.
    // (A compaction waits for twice the snapshot's size, which grows with the live jobs: with the
    // accept-first throttling on, some seeds saw only 8 or 9 generations.)
    const snapshot = JSON.parse(await readFile(join(dataDir, 'snapshot.json'), 'utf8'));
    expect(snapshot.journal, `seed ${seed}`).toBeGreaterThan(10);
    console.log(
      `crash test (seed ${seed}): ${accepted.size} jobs accepted over ${KILLS} kills, ${upstream.calls.length} upstream calls, ${duplicates} repeated after a kill, journal generation ${snapshot.journal}, start-up warnings: ${JSON.stringify(warnings)}`,
    );
  }, 180_000);
});

/**
 * npx tsx scripts/bench/store.ts — what the embedded store writes per accepted job, and how long
 * a commit takes, with a small and a large history. Not a timed test: it prints figures.
 *
 * For each history size H (default 1,000 and 100,000): a data dir with H archived jobs, H seen
 * Lark event ids and H/10 live jobs is prepared through the store, compacted and reopened. Then
 * 5,000 jobs (after 5,000 not counted) go through the store as the service drives it, from 50 clients:
 *   accept  = put(job) + set(idempotency key) in one tick, awaited (what a 202 waits for);
 *   finish  = put(job with a result), then archive(job) (what the worker writes).
 * Every file operation goes through a counting file layer: bytes written, write calls, fdatasyncs.
 * Then one compaction is timed and counted, and its cost spread over the jobs that fill a journal.
 *
 * Figures are given per 1,000 jobs. Env: BENCH_HISTORY (default "1000,100000"), BENCH_JOBS (5000), BENCH_CLIENTS (50).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import type { Job } from '../../src/jobs/job.js';
import { nodeFileOps, type FileOps, type StoreFile } from '../../src/store/file-ops.js';
import type { JournalStore } from '../../src/store/journal-store.js';
import { openJournalStore } from '../../src/store/open-store.js';

const HISTORY = (process.env.BENCH_HISTORY ?? '1000,100000').split(',').map(Number);
const JOBS = Number(process.env.BENCH_JOBS ?? 5000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const COMPACT_AT = 32 * 1024 * 1024; // the default STORE_COMPACT_KB

interface Counts {
  bytes: number;
  writes: number;
  datasyncs: number;
  fsyncs: number;
}

/** The real disk, counted. */
class CountingFileOps implements FileOps {
  counts: Counts = { bytes: 0, writes: 0, datasyncs: 0, fsyncs: 0 };
  private wrap(f: StoreFile): StoreFile {
    const c = () => this.counts;
    return {
      path: f.path,
      write: (data, pos) => {
        c().bytes += data.length;
        c().writes++;
        return f.write(data, pos);
      },
      datasync: () => {
        c().datasyncs++;
        return f.datasync();
      },
      sync: () => {
        c().fsyncs++;
        return f.sync();
      },
      truncate: (n) => f.truncate(n),
      links: () => f.links(),
      read: (n, p) => f.read(n, p),
      close: () => f.close(),
    };
  }
  create = async (p: string) => this.wrap(await nodeFileOps.create(p));
  openExisting = async (p: string) => this.wrap(await nodeFileOps.openExisting(p));
  readFile = (p: string) => nodeFileOps.readFile(p);
  size = (p: string) => nodeFileOps.size(p);
  list = (d: string) => nodeFileOps.list(d);
  mkdir = (d: string) => nodeFileOps.mkdir(d);
  rename = (a: string, b: string) => nodeFileOps.rename(a, b);
  remove = (p: string) => nodeFileOps.remove(p);
  syncDir = (d: string) => {
    this.counts.fsyncs++;
    return nodeFileOps.syncDir(d);
  };
  take(): Counts {
    const c = this.counts;
    this.counts = { bytes: 0, writes: 0, datasyncs: 0, fsyncs: 0 };
    return c;
  }
}

const quiet = { warn: (m: string) => console.warn(m), info: () => undefined };

function job(id: string, status: Job['status']): Job {
  const now = new Date().toISOString();
  const done = status === 'success';
  return {
    id,
    mode: 'batch',
    webhookUrl: 'http://127.0.0.1:9/hooks/bench',
    records: [`rec-${id}`],
    timeoutSec: 15,
    status,
    results: [done ? { recordId: `rec-${id}`, status: 'success', httpStatus: 200, durationMs: 12, attempts: 1, response: '{"code":0}' } : null],
    createdAt: now,
    updatedAt: now,
    completedAt: done ? now : null,
    client: 'c0ffee',
  };
}

async function seed(dir: string, history: number): Promise<void> {
  const store = await openJournalStore({ dir, clock: systemClock, log: quiet });
  const jobs = store.collection<Job>('jobs');
  const events = store.keys<number>('lark-events');
  const exp = Date.now() + 12 * 3600_000;
  for (let start = 0; start < history; start += 1000) {
    const writes: Promise<void>[] = [];
    for (let i = start; i < Math.min(history, start + 1000); i++) {
      writes.push(jobs.archive(job(`old-${i}`, 'success')), events.set(`ev-${i}-${'x'.repeat(20)}`, i, exp));
      if (i % 10 === 0) writes.push(jobs.put(job(`live-${i}`, 'queued')));
    }
    await Promise.all(writes);
  }
  await store.compact();
  await store.close();
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function clients(work: (i: number) => Promise<void>, count = JOBS): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < count) await work(next++);
    }),
  );
  return performance.now() - t0;
}

function line(label: string, c: Counts, per: number): string {
  const k = 1000 / per;
  return `${label.padEnd(28)} ${(c.bytes * k / 1024).toFixed(1).padStart(8)} KiB  ${String(Math.round(c.writes * k)).padStart(5)} writes  ${String(Math.round(c.datasyncs * k)).padStart(5)} fdatasyncs  ${String(Math.round(c.fsyncs * k)).padStart(4)} fsyncs  per 1,000 jobs`;
}

async function measure(history: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lark-bridge-store-bench-'));
  try {
    const t0 = performance.now();
    self(['--seed', dir, String(history)]);
    const seeded = performance.now() - t0;
    const ops = new CountingFileOps();
    const rss0 = process.memoryUsage().rss;
    const t1 = performance.now();
    const store: JournalStore = await openJournalStore({ dir, clock: systemClock, log: quiet, fileOps: ops });
    const opened = performance.now() - t1;
    const jobs = store.collection<Job>('jobs');
    const idem = store.keys<{ jobId: string }>('idempotency');
    console.log(
      `\n[history ${history.toLocaleString('en')}: ${await jobs.archivedCount()} archived, ${(await jobs.live()).length} live, ${await store.keys('lark-events').size()} event ids] seeded in ${(seeded / 1000).toFixed(1)} s; start-up (snapshot + index of segments) ${opened.toFixed(0)} ms`,
    );
    const accept1 = async (prefix: string, i: number, latencies?: number[]) => {
      const start = performance.now();
      const j = job(`${prefix}-${i}`, 'queued');
      await Promise.all([jobs.put(j), idem.set(`c0ffee\u0000${prefix}-${i}`, { jobId: j.id }, Date.now() + 86_400_000)]);
      latencies?.push(performance.now() - start);
    };
    // Warm-up, not counted: JIT and first-touch costs are not the store's.
    await clients(async (i) => {
      await accept1('warm', i);
      await jobs.archive(job(`warm-${i}`, 'success'));
    });
    ops.take();

    const latencies: number[] = [];
    const commitsBefore = store.journalStats.commits;
    const acceptMs = await clients((i) => accept1('new', i, latencies));
    const accept = ops.take();
    const commits = store.journalStats.commits - commitsBefore;
    await clients(async (i) => {
      await jobs.put({ ...job(`new-${i}`, 'running') });
      await jobs.archive(job(`new-${i}`, 'success'));
    });
    const finish = ops.take();
    latencies.sort((a, b) => a - b);
    console.log(line('accept (put + key)', accept, JOBS));
    console.log(line('finish (put + archive)', finish, JOBS));
    console.log(
      `accept latency, ${CLIENTS} clients: p50 ${pct(latencies, 50).toFixed(2)} ms, p99 ${pct(latencies, 99).toFixed(2)} ms, max ${latencies.at(-1)!.toFixed(2)} ms; ${commits} group commits for ${JOBS} accepts; ${Math.round(JOBS / (acceptMs / 1000))} accepts/s`,
    );
    const alone: number[] = [];
    for (let i = 0; i < 300; i++) await accept1('alone', i, alone); // one client: each accept is its own commit
    alone.sort((a, b) => a - b);
    ops.take();
    console.log(`commit latency, 1 client (one write + one fdatasync each): p50 ${pct(alone, 50).toFixed(2)} ms, p99 ${pct(alone, 99).toFixed(2)} ms`);

    const journalPerJob = (accept.bytes + finish.bytes) / JOBS;
    const archivedSince = 2 * JOBS + 300; // warm-up, measured and 1-client jobs went to the archive since the seed's compaction
    await clients((i) => jobs.archive(job(`alone-${i}`, 'success')).then(() => undefined), 300);
    const journalBytes = store.journalStats.bytes;
    const t2 = performance.now();
    await store.compact();
    const compactMs = performance.now() - t2;
    const compaction = ops.take();
    // The store compacts when the journal reaches max(32 MiB, 2 x snapshot): spread the cost over the jobs that fill it.
    const snapshotBytes = (await nodeFileOps.size(join(dir, 'snapshot.json'))) ?? 0;
    const journalAtCompaction = Math.max(COMPACT_AT, 2 * snapshotBytes);
    const jobsPerCompaction = journalAtCompaction / journalPerJob;
    const segmentBytes = compaction.bytes - snapshotBytes;
    console.log(
      `compaction: ${(compaction.bytes / 1024 / 1024).toFixed(2)} MiB written in ${compactMs.toFixed(0)} ms (${compaction.datasyncs} fdatasyncs, ${compaction.fsyncs} fsyncs): snapshot ${(snapshotBytes / 1024 / 1024).toFixed(2)} MiB + segments ${(segmentBytes / 1024 / 1024).toFixed(2)} MiB for ${archivedSince} archived jobs`,
    );
    console.log(
      `  per 1,000 jobs: segments ${((segmentBytes / archivedSince) * 1000 / 1024).toFixed(1)} KiB (each archived record written once); snapshot ${((snapshotBytes / jobsPerCompaction) * 1000 / 1024).toFixed(1)} KiB (one every ${(journalAtCompaction / 1024 / 1024).toFixed(0)} MiB of journal, ~${Math.round(jobsPerCompaction).toLocaleString('en')} jobs; journal ${(journalBytes / 1024).toFixed(0)} KiB at this one)`,
    );
    console.log(`RSS of this process: ${Math.round(rss0 / 1024 / 1024)} MB before the store opened, ${Math.round(process.memoryUsage().rss / 1024 / 1024)} MB at the end`);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Each history size is measured in a process of its own, seeded by another: RSS shows the store alone.
const self = (args: string[]) => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', process.argv[1]!, ...args], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`${args[0]} failed (${child.status})`);
};
if (process.argv[2] === '--seed') {
  await seed(process.argv[3]!, Number(process.argv[4]));
} else if (process.argv[2] === '--measure') {
  await measure(Number(process.argv[3]));
} else {
  console.log(`store bench: ${JOBS} jobs from ${CLIENTS} clients, node ${process.version}, data in ${tmpdir()}`);
  for (const h of HISTORY) self(['--measure', String(h)]);
}

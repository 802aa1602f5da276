// One measured load: autocannon against a loopback URL, after a warm-up that is not counted.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  /** 2xx answers in the measured part. */
  ok: number;
  non2xx: number;
  errors: number;
  /** CPU time of the server process per 2xx answer, µs (user + system): steadier than req/s on a shared machine. */
  cpuUsPerOk?: number;
}

export interface LoadOptions {
  method?: 'GET' | 'POST';
  body?: string;
  headers?: Record<string, string>;
  /** Builds each request (a fresh event per request, for instance). */
  requests?: () => unknown[];
  /** The server's pid, to measure its CPU. */
  pid?: number;
  warmUpSeconds?: number;
}

/** User + system CPU time of a process so far, ms (from /proc; 0 where there is none). */
export function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

export function rssMb(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

export async function load(url: string, o: LoadOptions = {}): Promise<Load> {
  const base = { url, connections: CONNECTIONS, method: o.method ?? 'GET', body: o.body, headers: o.headers };
  await autocannon({ ...base, duration: o.warmUpSeconds ?? 2, ...(o.requests ? { requests: o.requests() as never } : {}) });
  const cpuBefore = o.pid ? cpuMs(o.pid) : 0;
  const r = await autocannon({ ...base, duration: SECONDS, ...(o.requests ? { requests: o.requests() as never } : {}) });
  const ok = r['2xx'];
  const cpu = o.pid ? cpuMs(o.pid) - cpuBefore : 0;
  return {
    rps: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    ok,
    non2xx: r.non2xx,
    errors: r.errors,
    ...(o.pid && ok ? { cpuUsPerOk: Math.round((cpu * 1000) / ok) } : {}),
  };
}

/** One line of the table: ours against bare Koa in the same run. */
export function row(name: string, ours: Load, bare: Load): string {
  const ratio = ours.rps / bare.rps;
  const side = (l: Load) => `${String(l.rps).padStart(6)} req/s p50 ${String(l.p50).padStart(3)} p99 ${String(l.p99).padStart(4)} ms`;
  const extra = [
    ours.cpuUsPerOk !== undefined ? `${ours.cpuUsPerOk} µs CPU/ok` : '',
    ours.non2xx || ours.errors ? `non-2xx ${ours.non2xx}, errors ${ours.errors}` : '',
  ].filter(Boolean);
  return `${name.padEnd(44)} ${side(ours)} | bare ${side(bare)} | ratio ${ratio.toFixed(2)}${extra.length ? `  (${extra.join('; ')})` : ''}`;
}

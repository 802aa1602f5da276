/**
 * A throwaway PostgreSQL cluster for tests: initdb in a temp directory, the server on a free
 * loopback port (TCP only, no Unix socket), each test its own database, everything removed at
 * the end. As root (CI containers), the server runs as the `postgres` user (or `nobody`): it
 * refuses to run as root.
 *
 * Binaries: PG_BIN_DIR, else the newest /usr/lib/postgresql/<v>/bin, else /usr/local/bin, else
 * PATH. Without them the PG suites skip with a message, unless LARK_BRIDGE_REQUIRE_POSTGRES=1 or
 * CI is set (.ci/run sets it): then they fail loudly.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresCluster {
  readonly host: string;
  readonly port: number;
  /** A connection URL to `database` (the superuser, no password: trust on loopback). */
  url(database?: string): string;
  /** Creates a fresh, empty database and answers its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Stops the server as an operator or a crash would (`fast`: SIGINT, `immediate`: SIGQUIT). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same directory and port (nothing when it runs). */
  start(): Promise<void>;
  /** The server's log, for a failure message. */
  log(): Promise<string>;
  dispose(): Promise<void>;
}

const MUST_RUN = process.env.LARK_BRIDGE_REQUIRE_POSTGRES === '1' || Boolean(process.env.CI);

function candidateBinDirs(): string[] {
  const dirs: string[] = [];
  if (process.env.PG_BIN_DIR) dirs.push(process.env.PG_BIN_DIR);
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(join(debian, v, 'bin'));
  }
  dirs.push('/usr/local/bin', '/usr/local/pgsql/bin');
  for (const p of (process.env.PATH ?? '').split(':')) if (p) dirs.push(p);
  return dirs;
}

/** The directory holding both initdb and postgres, or undefined. */
export function findPostgresBinaries(): string | undefined {
  return candidateBinDirs().find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'postgres')));
}

/**
 * Whether the PG suites can run here. Returns a reason to skip (a local run without binaries),
 * or throws when they must run (CI) and cannot.
 */
export function postgresSkipReason(): string | undefined {
  if (findPostgresBinaries()) return undefined;
  const why = `no PostgreSQL server binaries (initdb, postgres) found in ${candidateBinDirs().slice(0, 4).join(', ')} or PATH; install PostgreSQL (apt-get install -y postgresql) or set PG_BIN_DIR`;
  if (MUST_RUN) throw new Error(`PostgreSQL tests must run here (CI or LARK_BRIDGE_REQUIRE_POSTGRES=1): ${why}`);
  process.stderr.write(`\n[postgres tests SKIPPED] ${why}\n`);
  return why;
}

/** The unprivileged user the server runs as when we are root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid };
    } catch {
      // no such user: try the next
    }
  }
  throw new Error('running as root and neither a "postgres" nor a "nobody" user exists: PostgreSQL refuses to run as root');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function run(bin: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...user });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} exited with ${code}:\n${out}`))));
  });
}

export interface PostgresOptions {
  /** Serve TLS with this certificate and key (PEM), and refuse connections without TLS (pg_hba hostssl). */
  tls?: { cert: string; key: string };
  /** Keep fsync on (benchmarks: a commit costs what it costs in production). Tests turn it off. */
  durable?: boolean;
}

/** Starts a cluster; call `dispose()` in afterAll. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresCluster> {
  const binDir = findPostgresBinaries();
  if (!binDir) throw new Error(postgresSkipReason() ?? 'no PostgreSQL binaries');
  const user = serverUser();
  const root = await mkdtemp(join(tmpdir(), 'lark-bridge-pg-'));
  if (user) await chown(root, user.uid, user.gid);
  const dataDir = join(root, 'data');
  // --no-sync and fsync=off: the tests are about our code, not the disk; the benchmark keeps fsync on.
  await run(join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], user);
  const tlsArgs: string[] = [];
  if (options.tls) {
    const files = { cert: join(dataDir, 'server.crt'), key: join(dataDir, 'server.key') };
    await writeFile(files.cert, options.tls.cert);
    await writeFile(files.key, options.tls.key, { mode: 0o600 }); // the server refuses a key others can read
    // Loopback only, and only over TLS.
    await writeFile(join(dataDir, 'pg_hba.conf'), 'hostssl all all 127.0.0.1/32 trust\n');
    if (user) for (const f of [files.cert, files.key, join(dataDir, 'pg_hba.conf')]) await chown(f, user.uid, user.gid);
    tlsArgs.push('-c', 'ssl=on', '-c', `ssl_cert_file=${files.cert}`, '-c', `ssl_key_file=${files.key}`);
  }

  const host = '127.0.0.1';
  // Our own setup connections: encrypted when the server wants it, not checked (we made the cert).
  const adminTls = options.tls ? { ssl: { rejectUnauthorized: false } } : {};
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let databases = 0;
  let serverLog = '';
  const killOnExit = () => child?.kill('SIGQUIT');
  process.once('exit', killOnExit);

  const launch = async (): Promise<void> => {
    const args = ['-D', dataDir, '-p', String(port), '-c', `listen_addresses=${host}`, '-c', 'unix_socket_directories=', ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off']), '-c', 'max_connections=200', '-c', 'log_min_messages=warning', ...tlsArgs];
    const proc = spawn(join(binDir, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], ...user });
    child = proc;
    let log = '';
    proc.stderr!.on('data', (d) => {
      log += d;
      serverLog += d;
    });
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (gone) throw new Error(`postgres exited at start:\n${log}`);
      const client = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000, ...adminTls });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline) {
          proc.kill('SIGQUIT');
          throw new Error(`postgres did not accept connections within 20 s:\n${log}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };

  // A free port may be taken by someone else between the probe and the bind: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt >= 5) {
        await rm(root, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const url = (database = 'postgres') => `postgres://postgres@${host}:${port}/${database}`;
  const cluster: PostgresCluster = {
    host,
    port,
    url,
    async createDatabase(prefix = 'test') {
      const name = `${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${process.pid}_${++databases}`;
      const admin = new pg.Client({ connectionString: url(), ...adminTls });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
    async stop(mode = 'fast') {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
      await exited;
    },
    async start() {
      if (child && child.exitCode === null && child.signalCode === null) return; // running
      await launch();
    },
    log: async () => serverLog,
    async dispose() {
      process.off('exit', killOnExit);
      await cluster.stop('immediate');
      await rm(root, { recursive: true, force: true });
    },
  };
  return cluster;
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SITE_CONF = join(ROOT, 'nginx/lark-bridge.conf');
export const MAKE_CERT = join(ROOT, 'scripts/make-cert.sh');

/** The nginx binary (Debian puts it in /usr/sbin, often not in a user's PATH), or undefined. */
export function findNginx(): string | undefined {
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) if (existsSync(p)) return p;
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : undefined;
}

/** A free loopback port (bound and released; nginx takes it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface SitePorts {
  https: number;
  http: number;
  upstream: number;
  cert: string;
  key: string;
}

/**
 * The shipped site config with only what a test must change: loopback ports, the certificate
 * paths and the service's port. Each change must find its line, so a reworded config fails here
 * instead of being tested half-changed.
 */
export function templateSite(text: string, p: SitePorts): string {
  let out = text;
  const change = (pattern: RegExp, to: string) => {
    if (!pattern.test(out)) throw new Error(`nginx/lark-bridge.conf has no line matching ${pattern}`);
    out = out.replace(pattern, to);
  };
  change(/listen 443 ssl;/, `listen 127.0.0.1:${p.https} ssl;`);
  change(/\n[ \t]*listen \[::\]:443 ssl;/, '');
  change(/listen 80;/, `listen 127.0.0.1:${p.http};`);
  change(/\n[ \t]*listen \[::\]:80;/, '');
  change(/server 127\.0\.0\.1:9876;/, `server 127.0.0.1:${p.upstream};`);
  change(/ssl_certificate +\S+;/, `ssl_certificate ${p.cert};`);
  change(/ssl_certificate_key +\S+;/, `ssl_certificate_key ${p.key};`);
  // The redirect names the test's https port (the shipped one relies on 443 being the default).
  change(/return 308 https:\/\/\$host\$request_uri;/, `return 308 https://$host:${p.https}$request_uri;`);
  return out;
}

export interface Nginx {
  child: ChildProcess;
  prefix: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground with the templated site inside a minimal nginx.conf under `prefix`. */
export async function startNginx(binary: string, prefix: string, ports: SitePorts): Promise<Nginx> {
  await mkdir(join(prefix, 'tmp'), { recursive: true });
  await writeFile(join(prefix, 'lark-bridge.conf'), templateSite(await readFile(SITE_CONF, 'utf8'), ports));
  const main = [
    'daemon off;',
    'worker_processes 1;',
    // As root nginx would switch its workers to "nobody", who cannot enter the temp prefix.
    process.getuid?.() === 0 ? 'user root root;' : '',
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')} notice;`,
    'events { worker_connections 256; }',
    'http {',
    '  default_type application/octet-stream;',
    `  access_log ${join(prefix, 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(prefix, 'tmp', t)};`),
    `  include ${join(prefix, 'lark-bridge.conf')};`,
    '}',
  ].join('\n');
  const conf = join(prefix, 'nginx.conf');
  await writeFile(conf, main);
  const check = spawnSync(binary, ['-t', '-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
  const child = spawn(binary, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await portOpen(ports.https)) || !(await portOpen(ports.http))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start:\n${out}\n${await readFile(join(prefix, 'error.log'), 'utf8').catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    prefix,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM'); // fast shutdown of master and workers
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The TLS version negotiated (https only). */
  protocol?: string | null;
}

export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** PEM of the CA to trust; undefined: Node's built-in CA list. */
  ca?: string;
  timeoutMs?: number;
}

/** One request on its own connection (no agent: each TLS handshake is checked anew). */
export function call(url: string, o: CallOptions = {}): Promise<Answer> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      { method: o.method ?? (o.body !== undefined ? 'POST' : 'GET'), headers: o.headers, agent: false, ...(u.protocol === 'https:' ? { ca: o.ca } : {}) },
      (res) => {
        const protocol = u.protocol === 'https:' ? (res.socket as import('node:tls').TLSSocket).getProtocol() : undefined;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), protocol }));
        res.on('error', reject);
      },
    );
    req.setTimeout(o.timeoutMs ?? 20_000, () => req.destroy(new Error(`no answer from ${url} within ${o.timeoutMs ?? 20_000} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

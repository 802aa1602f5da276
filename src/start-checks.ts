import { X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { Env } from './config.js';

/**
 * What the variables name must exist before anything starts: the files and folders, the address
 * to listen on. Each problem is one line, "NAME: what is wrong", reported with the schema's.
 */
export async function checkStartEnvironment(v: Partial<Env>): Promise<string[]> {
  const found = await Promise.all([
    v.ANYCROSS_CA_BUNDLE ? caBundleProblem(v.ANYCROSS_CA_BUNDLE) : undefined,
    // With DATABASE_URL the store is PostgreSQL: DATA_DIR is not used.
    v.DATA_DIR && !v.DATABASE_URL ? dataDirProblem(v.DATA_DIR) : undefined,
    // A FLOWS_DIR that does not exist means no flows (the start-up banner warns); a file is a mistake.
    v.FLOWS_DIR ? folderProblem('FLOWS_DIR', v.FLOWS_DIR, 'the flow files', { mayBeMissing: true }) : undefined,
    v.TEMPLATES_DIR ? folderProblem('TEMPLATES_DIR', v.TEMPLATES_DIR, 'the card templates') : undefined,
    v.HOST !== undefined ? hostProblem(v.HOST) : undefined,
  ]);
  return found.filter((p): p is string => p !== undefined);
}

async function caBundleProblem(path: string): Promise<string | undefined> {
  const name = 'ANYCROSS_CA_BUNDLE';
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return `${name}: ${fileError(path, err)}`;
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) return `${name}: ${path} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)`;
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      return `${name}: certificate ${i + 1} of ${blocks.length} in ${path} cannot be read (damaged PEM)`;
    }
  }
  return undefined;
}

async function dataDirProblem(path: string): Promise<string | undefined> {
  const name = 'DATA_DIR';
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => err);
  if (!(info instanceof Error)) {
    if (!info.isDirectory()) return `${name}: ${path} is a file, not a directory: give the folder the store may keep its files in`;
    return (await writable(path)) ? undefined : `${name}: ${path} is not writable by this user (uid ${process.getuid?.() ?? '?'})`;
  }
  if (info.code !== 'ENOENT') return `${name}: ${fileError(path, info)}`;
  // Created at start: the nearest existing parent must be a folder we can write to.
  let parent = dirname(resolve(path));
  for (;;) {
    const p = await stat(parent).catch(() => undefined);
    if (p) {
      if (!p.isDirectory()) return `${name}: cannot create ${path}: ${parent} is a file`;
      return (await writable(parent)) ? undefined : `${name}: cannot create ${path}: ${parent} is not writable by this user`;
    }
    if (dirname(parent) === parent) return `${name}: cannot create ${path}`;
    parent = dirname(parent);
  }
}

async function folderProblem(name: string, path: string, what: string, o: { mayBeMissing?: boolean } = {}): Promise<string | undefined> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => err);
  if (info instanceof Error) {
    if (info.code === 'ENOENT' && o.mayBeMissing) return undefined;
    return info.code === 'ENOENT' ? `${name}: ${path} does not exist (the folder of ${what}; resolved from ${process.cwd()})` : `${name}: ${fileError(path, info)}`;
  }
  return info.isDirectory() ? undefined : `${name}: ${path} is a file, not the folder of ${what}`;
}

/**
 * HOST must resolve. Whether HOST:PORT is free is learnt by listening, once the data dir is
 * locked (main.ts): a second instance is told about the lock holder, not about the port.
 */
async function hostProblem(host: string): Promise<string | undefined> {
  if (isIP(host)) return undefined;
  try {
    await lookup(host);
    return undefined;
  } catch (err) {
    return `HOST: cannot resolve "${host}" (${(err as NodeJS.ErrnoException).code ?? 'lookup failed'}): give an address of this machine, e.g. 127.0.0.1`;
  }
}

/** One line for a failed listen: the port is taken, the address is not ours, or needs privileges. */
export function listenError(host: string, port: number, err: NodeJS.ErrnoException): string {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return `PORT: ${where} is already in use (another lark-bridge, or another service): stop it or choose another HOST/PORT`;
    case 'EADDRNOTAVAIL':
      return `HOST: ${host} is not an address of this machine (${where} cannot be listened on)`;
    case 'EACCES':
      return `PORT: ${where} needs privileges this user lacks: use a port above 1023 and let nginx listen on 80/443`;
    default:
      return `HOST/PORT: cannot listen on ${where} (${err.code ?? err.message})`;
  }
}

async function writable(path: string): Promise<boolean> {
  return access(path, constants.W_OK).then(
    () => true,
    () => false,
  );
}

function fileError(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `${path} does not exist`;
  if (code === 'EISDIR') return `${path} is a directory, not a file`;
  if (code === 'EACCES' || code === 'EPERM') return `${path} cannot be read by this user (${code})`;
  return `${path}: ${code ?? (err as Error).message}`;
}

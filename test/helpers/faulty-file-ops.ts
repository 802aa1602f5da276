import { basename } from 'node:path';
import { nodeFileOps, type FileOps, type StoreFile } from '../../src/store/file-ops.js';

export type FaultPoint = 'write' | 'datasync' | 'rename' | 'links';

export interface Fault {
  at: FaultPoint;
  code: 'EIO' | 'ENOSPC';
  /** Only files whose name matches (default: every file). */
  file?: RegExp;
}

function errnoError(code: string, op: string, path: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${code === 'ENOSPC' ? 'no space left on device' : 'i/o error'}, ${op} '${path}'`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

/**
 * The real disk, with a switch that makes writes, fdatasyncs or renames fail as a failing or full
 * disk does, and counters of what was written (bytes, syncs). Tests drive the store through it.
 */
export class FaultyFileOps implements FileOps {
  fault: Fault | null = null;
  /** Called before each write (a test can hold a write back with it). */
  beforeWrite: ((path: string) => Promise<void> | void) | null = null;
  readonly counts = { writes: 0, bytes: 0, datasyncs: 0, syncs: 0 };

  constructor(private readonly inner: FileOps = nodeFileOps) {}

  private check(at: FaultPoint, path: string): void {
    const f = this.fault;
    if (f && f.at === at && (!f.file || f.file.test(basename(path)))) throw errnoError(f.code, at, path);
  }

  private wrap(file: StoreFile): StoreFile {
    const ops = this;
    return {
      path: file.path,
      async write(data, position) {
        await ops.beforeWrite?.(file.path);
        ops.check('write', file.path);
        ops.counts.writes++;
        ops.counts.bytes += data.length;
        return file.write(data, position);
      },
      async datasync() {
        ops.check('datasync', file.path);
        ops.counts.datasyncs++;
        return file.datasync();
      },
      async sync() {
        ops.check('datasync', file.path);
        ops.counts.syncs++;
        return file.sync();
      },
      truncate: (n) => file.truncate(n),
      async links() {
        ops.check('links', file.path);
        return file.links();
      },
      read: (n, p) => file.read(n, p),
      close: () => file.close(),
    };
  }

  async create(path: string) {
    return this.wrap(await this.inner.create(path));
  }
  async openExisting(path: string) {
    return this.wrap(await this.inner.openExisting(path));
  }
  readFile(path: string) {
    return this.inner.readFile(path);
  }
  size(path: string) {
    return this.inner.size(path);
  }
  list(dir: string) {
    return this.inner.list(dir);
  }
  mkdir(dir: string) {
    return this.inner.mkdir(dir);
  }
  async rename(from: string, to: string) {
    this.check('rename', to);
    return this.inner.rename(from, to);
  }
  remove(path: string) {
    return this.inner.remove(path);
  }
  async syncDir(dir: string) {
    this.counts.syncs++;
    return this.inner.syncDir(dir);
  }
}

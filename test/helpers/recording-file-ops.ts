import { basename } from 'node:path';
import { nodeFileOps, type FileOps, type StoreFile } from '../../src/store/file-ops.js';

/**
 * The real disk, recording each operation as one short line (`create .snapshot.json.tmp`,
 * `write .snapshot.json.tmp @0 123`, `syncDir <dir name>`…) so that a test can check the order of
 * writes, syncs, renames and closes. `fail` makes one operation throw instead (by its line's prefix).
 */
export class RecordingFileOps implements FileOps {
  readonly log: string[] = [];
  /** When set, the first operation whose line starts with this throws `failWith` (once). */
  fail: { prefix: string; error: NodeJS.ErrnoException } | null = null;

  constructor(private readonly inner: FileOps = nodeFileOps) {}

  private record(line: string): void {
    this.log.push(line);
    const f = this.fail;
    if (f && line.startsWith(f.prefix)) {
      this.fail = null;
      throw f.error;
    }
  }

  private wrap(file: StoreFile): StoreFile {
    const name = basename(file.path);
    const rec = (line: string) => this.record(line);
    return {
      path: file.path,
      async write(data, position) {
        rec(`write ${name} @${position} ${data.length}`);
        return file.write(data, position);
      },
      async datasync() {
        rec(`datasync ${name}`);
        return file.datasync();
      },
      async sync() {
        rec(`sync ${name}`);
        return file.sync();
      },
      async truncate(n) {
        rec(`truncate ${name} ${n}`);
        return file.truncate(n);
      },
      links: () => file.links(),
      read: (n, p) => file.read(n, p),
      async close() {
        rec(`close ${name}`);
        return file.close();
      },
    };
  }

  async create(path: string) {
    this.record(`create ${basename(path)}`);
    return this.wrap(await this.inner.create(path));
  }
  async openExisting(path: string) {
    this.record(`open ${basename(path)}`);
    return this.wrap(await this.inner.openExisting(path));
  }
  async readFile(path: string) {
    this.record(`readFile ${basename(path)}`);
    return this.inner.readFile(path);
  }
  async size(path: string) {
    return this.inner.size(path);
  }
  async list(dir: string) {
    return this.inner.list(dir);
  }
  async mkdir(dir: string) {
    this.record(`mkdir ${basename(dir)}`);
    return this.inner.mkdir(dir);
  }
  async rename(from: string, to: string) {
    this.record(`rename ${basename(from)} ${basename(to)}`);
    return this.inner.rename(from, to);
  }
  async remove(path: string) {
    this.record(`remove ${basename(path)}`);
    return this.inner.remove(path);
  }
  async syncDir(dir: string) {
    this.record(`syncDir ${basename(dir)}`);
    return this.inner.syncDir(dir);
  }
}

export function errno(code: string, message = code): NodeJS.ErrnoException {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

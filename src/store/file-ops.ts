import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';

/**
 * The file operations the store uses, behind one small interface so that a test can make the
 * disk fail (EIO, ENOSPC on a write or an fdatasync) and a benchmark can count bytes and syncs.
 */
export interface StoreFile {
  readonly path: string;
  /** Writes every byte of data at position (a positional write: a retry rewrites the same bytes). */
  write(data: Uint8Array, position: number): Promise<void>;
  datasync(): Promise<void>;
  /** fsync: data and metadata (used for snapshot temp files). */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  /** Hard links to the open file: 0 once it was deleted under us. */
  links(): Promise<number>;
  read(length: number, position: number): Promise<Buffer>;
  close(): Promise<void>;
}

export interface FileOps {
  /** Creates a new file; fails with EEXIST when it exists. */
  create(path: string): Promise<StoreFile>;
  /** Opens an existing file for reading and writing. */
  openExisting(path: string): Promise<StoreFile>;
  /** The whole file, or undefined when it does not exist. */
  readFile(path: string): Promise<Buffer | undefined>;
  /** Size in bytes, or undefined when the file does not exist. */
  size(path: string): Promise<number | undefined>;
  /** Entries of a directory; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  mkdir(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** fsync of a directory, so that a created, renamed or removed entry survives a power cut. */
  syncDir(dir: string): Promise<void>;
}

class NodeStoreFile implements StoreFile {
  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  }

  datasync(): Promise<void> {
    return this.fh.datasync();
  }

  sync(): Promise<void> {
    return this.fh.sync();
  }

  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }

  async links(): Promise<number> {
    return (await this.fh.stat()).nlink;
  }

  async read(length: number, position: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** The real disk. */
export const nodeFileOps: FileOps = {
  async create(path) {
    return new NodeStoreFile(path, await open(path, 'wx+'));
  },
  async openExisting(path) {
    return new NodeStoreFile(path, await open(path, 'r+'));
  },
  async readFile(path) {
    try {
      return await readFile(path);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  },
  async size(path) {
    try {
      return (await stat(path)).size;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  },
  async list(dir) {
    try {
      return await readdir(dir);
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  },
  async mkdir(dir) {
    await mkdir(dir, { recursive: true });
  },
  rename,
  async remove(path) {
    await rm(path, { force: true, recursive: true });
  },
  async syncDir(dir) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } catch (err) {
      // Some filesystems refuse fsync on a directory; the rename is atomic all the same.
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL' && (err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
    } finally {
      await fh.close();
    }
  },
};

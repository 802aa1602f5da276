import { open, rename, mkdir, readFile, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import type { Adapter } from 'lowdb';

/**
 * lowdb adapter that writes a temp file, fsyncs it and renames it over the target, then fsyncs
 * the directory: a reader (or a restart after a crash or power cut) sees the old or the new
 * document, never half of one. steno (lowdb's default) skips the fsyncs.
 */
export class AtomicJsonFile<T> implements Adapter<T> {
  private readonly tmp: string;
  private dirReady = false;
  constructor(private readonly file: string) {
    this.tmp = join(dirname(file), `.${basename(file)}.tmp`);
  }

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return JSON.parse(text) as T;
  }

  async write(data: T): Promise<void> {
    // Serialise synchronously so the snapshot is the state at the moment write() was called.
    const text = JSON.stringify(data);
    if (!this.dirReady) {
      await mkdir(dirname(this.file), { recursive: true });
      this.dirReady = true;
    }
    const fh = await open(this.tmp, 'w');
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.file);
    await syncDir(dirname(this.file));
  }
}

// Open directory handles, reused across writes: an fsync per write, not an open/fsync/close.
const dirHandles = new Map<string, Promise<FileHandle>>();
const MAX_DIR_HANDLES = 16;

async function syncDir(dir: string): Promise<void> {
  let handle = dirHandles.get(dir);
  if (!handle) {
    handle = open(dir, 'r');
    dirHandles.set(dir, handle);
    if (dirHandles.size > MAX_DIR_HANDLES) {
      const [oldest, fh] = dirHandles.entries().next().value as [string, Promise<FileHandle>];
      dirHandles.delete(oldest);
      void fh.then((h) => h.close()).catch(() => undefined);
    }
  }
  try {
    await (await handle).sync();
  } catch {
    // Some filesystems refuse fsync on a directory, or the directory was removed (pruned day);
    // the rename is still atomic. Drop the handle so a later write opens a fresh one.
    dirHandles.delete(dir);
  }
}

import { open, rename, mkdir, readFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import type { Adapter } from 'lowdb';

/**
 * lowdb adapter that writes a temp file, fsyncs it and renames it over the target, then fsyncs
 * the directory: a reader (or a restart after a crash or power cut) sees the old or the new
 * document, never half of one. steno (lowdb's default) skips the fsyncs.
 */
export class AtomicJsonFile<T> implements Adapter<T> {
  private readonly tmp: string;
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
    await mkdir(dirname(this.file), { recursive: true });
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

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh.close();
  }
}

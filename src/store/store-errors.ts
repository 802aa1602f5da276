/**
 * The store cannot start with the files as they are (a damaged snapshot, another process holding
 * the data directory...). The message is one line for the operator: which file, and what to do.
 */
export class StoreRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreRefused';
  }
}

/** Short text of a file-system error for a log line: its code and message, no stack. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

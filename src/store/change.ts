import type { StoredRecord } from './store.js';

/**
 * One journal record: a small change, JSON-encoded as a tuple. Every change sets or drops one
 * thing whole, so replaying a change over a state that already holds it changes nothing.
 */
export type Change =
  | ['p', collection: string, record: StoredRecord]
  | ['a', collection: string, archivedAt: number, record: StoredRecord]
  | ['r', collection: string, id: string]
  | ['s', space: string, key: string, value: unknown, expiresAt: number]
  | ['d', space: string, key: string]
  | ['n'];

const q = JSON.stringify;

/** The record's JSON is made once by the caller and reused (archive keeps it as the record's copy). */
export const putChange = (collection: string, recordJson: string) => `["p",${q(collection)},${recordJson}]`;
export const archiveChange = (collection: string, at: number, recordJson: string) => `["a",${q(collection)},${at},${recordJson}]`;
export const removeChange = (collection: string, id: string) => `["r",${q(collection)},${q(id)}]`;
export const setKeyChange = (space: string, key: string, value: unknown, expiresAt: number) =>
  `["s",${q(space)},${q(key)},${value === undefined ? 'null' : q(value)},${expiresAt}]`;
export const deleteKeyChange = (space: string, key: string) => `["d",${q(space)},${q(key)}]`;
/** Written by the writability probe: proves the disk takes a commit, changes nothing. */
export const noChange = () => '["n"]';

/** Parses a journal payload; undefined when it is not a change this version knows. */
export function decodeChange(payload: Buffer): Change | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || typeof value[0] !== 'string') return undefined;
  const [op, a, b, c, d] = value as unknown[];
  const isRecord = (r: unknown): r is StoredRecord => typeof r === 'object' && r !== null && typeof (r as StoredRecord).id === 'string';
  switch (op) {
    case 'p':
      return typeof a === 'string' && isRecord(b) ? ['p', a, b] : undefined;
    case 'a':
      return typeof a === 'string' && typeof b === 'number' && isRecord(c) ? ['a', a, b, c] : undefined;
    case 'r':
      return typeof a === 'string' && typeof b === 'string' ? ['r', a, b] : undefined;
    case 's':
      return typeof a === 'string' && typeof b === 'string' && typeof d === 'number' ? ['s', a, b, c, d] : undefined;
    case 'd':
      return typeof a === 'string' && typeof b === 'string' ? ['d', a, b] : undefined;
    case 'n':
      return ['n'];
    default:
      return undefined;
  }
}

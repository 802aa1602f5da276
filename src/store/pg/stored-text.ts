/**
 * Ids and keys as PostgreSQL text. Text cannot hold NUL (U+0000), and ids come from clients, so
 * NUL is escaped as U+0001 "0" and U+0001 itself as U+0001 "1": a reversible, one-to-one mapping
 * that leaves every id without those two control characters exactly as it is (readable in psql).
 * Record bodies need nothing: they are json, where NUL is the escape \u0000.
 */
const ESCAPE = '\u0001';

export function toStoredText(s: string): string {
  return s.includes('\u0000') || s.includes(ESCAPE) ? s.replace(/[\u0000\u0001]/g, (c) => (c === '\u0000' ? `${ESCAPE}0` : `${ESCAPE}1`)) : s;
}

export function fromStoredText(s: string): string {
  return s.includes(ESCAPE) ? s.replace(/\u0001([01])/g, (_, d: string) => (d === '0' ? '\u0000' : ESCAPE)) : s;
}

/**
 * Reads "data.items.0.id" from parsed JSON. Only own properties are followed, so a path such as
 * "__proto__" or "constructor" finds nothing instead of Object.prototype.
 */
export function readPath(value: unknown, path: string | undefined): unknown {
  if (path === undefined) return value;
  let node = value;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A scalar as card text; objects and lists as JSON; nothing for null or undefined. */
export function asText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/**
 * A feed's time as ms since the epoch: numbers below 1e11 are seconds (1e11 s is the year 5138,
 * 1e11 ms is 1973), larger ones ms; numeric strings likewise; other strings as ISO 8601.
 */
export function asEpochMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? (value < 1e11 ? value * 1000 : value) : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    if (/^\d+(\.\d+)?$/.test(value.trim())) return asEpochMs(Number(value));
    const t = Date.parse(value);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

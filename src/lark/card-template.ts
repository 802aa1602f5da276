import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFound } from '../errors.js';

export type CardVars = Record<string, string | number | boolean | undefined>;

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;

/**
 * Renders `templates/<name>.json`: a Lark card whose string values may hold {{placeholders}}.
 * Placeholders are filled inside the parsed JSON (never by string-splicing JSON text), so a value
 * with quotes cannot break the card. An object with `"$if": "var"` is kept only when var is
 * truthy (the `$if` key itself is dropped). Cards always go out with `update_multi: true`:
 * Lark only lets a card be updated in place when it was sent that way.
 */
export async function renderCard(templatesDir: string, name: string, vars: CardVars): Promise<Record<string, unknown>> {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new NotFound(`card template name "${name}" is not valid`);
  let text: string;
  try {
    text = await readFile(join(templatesDir, `${name}.json`), 'utf8');
  } catch {
    throw new NotFound(`card template ${name}.json not found in ${templatesDir}`);
  }
  const card = fill(JSON.parse(text), vars) as Record<string, unknown>;
  const config = (card.config ?? {}) as Record<string, unknown>;
  card.config = { ...config, update_multi: true };
  return card;
}

function fill(node: unknown, vars: CardVars): unknown {
  if (typeof node === 'string') return node.replace(PLACEHOLDER, (_, key: string) => String(vars[key] ?? ''));
  if (Array.isArray(node)) return node.map((n) => fill(n, vars)).filter((n) => n !== DROP);
  if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    if (typeof obj.$if === 'string' && !vars[obj.$if]) return DROP;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (k === '$if') continue;
      const filled = fill(v, vars);
      if (filled !== DROP) out[k] = filled;
    }
    return out;
  }
  return node;
}

const DROP = Symbol('drop');

import { z } from 'zod';
import type { FieldSpec } from './flow-schema.js';

/** One widget of a Lark approval form (the instance's `form` is a JSON string of these). */
const widgetSchema = z
  .object({
    id: z.string().optional(),
    custom_id: z.string().optional(),
    name: z.string().optional(),
    type: z.string().optional(),
    value: z.unknown().optional(),
    open_ids: z.array(z.string()).optional(),
    ext: z.unknown().optional(),
    option: z.unknown().optional(),
  })
  .passthrough();
type Widget = z.infer<typeof widgetSchema>;
const formSchema = z.array(widgetSchema);

/** A field that could not be mapped: `field` is its path among the flow's fields ("role", "items[2].sku"). */
export interface FieldProblem {
  field?: string;
  widget?: string;
  /** missing: required and empty; invalid: a value that cannot be converted. */
  kind?: 'missing' | 'invalid';
  message: string;
}

export class FieldMappingError extends Error {
  readonly problems: string[];
  constructor(readonly fields: FieldProblem[]) {
    const problems = fields.map((p) => (p.field ? `field ${p.field} ("${p.widget}")${p.kind === 'missing' ? ' ' : ': '}${p.message}` : p.message));
    super(problems.join('; '));
    this.problems = problems;
    this.name = 'FieldMappingError';
  }
}

/** Parses the instance form and maps its widgets to the business API's fields. */
export function mapFormFields(formJson: string, specs: Record<string, FieldSpec>): Record<string, unknown> {
  let widgets: Widget[];
  try {
    widgets = formSchema.parse(JSON.parse(formJson));
  } catch {
    throw new FieldMappingError([{ message: 'the approval form could not be read (not a JSON array of widgets)' }]);
  }
  const problems: FieldProblem[] = [];
  const out = mapWidgets(widgets, specs, problems, '');
  if (problems.length) throw new FieldMappingError(problems);
  return out;
}

function mapWidgets(widgets: Widget[], specs: Record<string, FieldSpec>, problems: FieldProblem[], prefix: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [apiField, spec] of Object.entries(specs)) {
    const field = `${prefix}${apiField}`;
    const widget = widgets.find((w) => w.name === spec.widget || w.id === spec.widget || w.custom_id === spec.widget);
    if (!widget || isEmpty(widget.value)) {
      if (spec.default !== undefined) out[apiField] = spec.default;
      else if (spec.required) problems.push({ field, widget: spec.widget, kind: 'missing', message: 'is required but the form has no value for it' });
      continue;
    }
    try {
      out[apiField] = convert(widget, spec, problems, field);
    } catch (err) {
      problems.push({ field, widget: spec.widget, kind: 'invalid', message: (err as Error).message });
    }
  }
  return out;
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
}

function convert(w: Widget, spec: FieldSpec, problems: FieldProblem[], path: string): unknown {
  const v = w.value;
  switch (spec.type) {
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean') return String(v);
      throw new Error(`expected text, got ${describe(v)}`);
    case 'number': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isFinite(n)) throw new Error(`expected a number, got ${describe(v)}`);
      return n;
    }
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'false') return v === 'true';
      throw new Error(`expected true or false, got ${describe(v)}`);
    case 'date':
    case 'datetime': {
      // Lark sends RFC 3339 ("2019-10-01T08:12:01+08:00"); a date keeps the form's calendar day.
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw new Error(`expected a date, got ${describe(v)}`);
      if (spec.type === 'date') {
        const day = /^(\d{4}-\d{2}-\d{2})/.exec(v)?.[1];
        if (!day) throw new Error(`expected a date, got ${describe(v)}`);
        return day;
      }
      return new Date(v).toISOString();
    }
    case 'enum': {
      // A select fed by an external data source carries the option id as its value.
      const key = Array.isArray(v) && v.length === 1 ? v[0] : v;
      if (typeof key !== 'string') throw new Error(`expected one option, got ${describe(v)}`);
      const mapped = spec.map?.[key];
      if (mapped === undefined) throw new Error(`"${key}" is not one of ${Object.keys(spec.map ?? {}).map((k) => `"${k}"`).join(', ')}`);
      return mapped;
    }
    case 'strings': {
      const items = Array.isArray(v) ? v : typeof v === 'string' ? [v] : null;
      if (!items || !items.every((i) => typeof i === 'string')) throw new Error(`expected a list of options, got ${describe(v)}`);
      if (!spec.map) return items;
      return items.map((i) => {
        const mapped = spec.map![i as string];
        if (mapped === undefined) throw new Error(`"${i}" is not one of ${Object.keys(spec.map!).map((k) => `"${k}"`).join(', ')}`);
        return mapped;
      });
    }
    case 'users': {
      // contact widgets carry user ids in value and open ids alongside; the API gets open ids.
      if (w.open_ids?.length) return w.open_ids;
      if (Array.isArray(v) && v.every((i) => typeof i === 'string')) return v;
      throw new Error(`expected a contact selection, got ${describe(v)}`);
    }
    case 'attachments': {
      if (Array.isArray(v) && v.every((i) => typeof i === 'string')) return v;
      if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
      throw new Error(`expected attachment URLs, got ${describe(v)}`);
    }
    case 'table': {
      if (!Array.isArray(v) || !v.every(Array.isArray)) throw new Error(`expected table rows, got ${describe(v)}`);
      return v.map((row, i) => {
        const parsed = formSchema.safeParse(row);
        if (!parsed.success) throw new Error(`row ${i + 1} is not a list of widgets`);
        return mapWidgets(parsed.data, spec.fields ?? {}, problems, `${path}[${i + 1}].`);
      });
    }
  }
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

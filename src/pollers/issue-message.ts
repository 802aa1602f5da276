import type { PollerFlow } from '../flows/poller-flow-schema.js';
import type { IssueMessage, Severity } from '../notify/notifier.js';
import type { FeedItem } from './feed.js';

// Lark refuses a card body over 30 KB; these keep one item well below it on every platform.
const MAX_TITLE = 200;
const MAX_DESCRIPTION = 3000;
const MAX_VALUE = 500;
const MAX_FIELDS = 20;
/** All the extra lines together. */
const MAX_FIELDS_TEXT = 2000;
const WELL_KNOWN = new Set(['level', 'resource', 'description']);

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** How bad a level is, for colours: P0–P3 (Guance), or the usual words. */
export function severityOf(level: string | undefined): Severity {
  const l = (level ?? '').trim().toLowerCase();
  if (/^p0$|^(critical|fatal|emergency|sev0|sev1)$/.test(l)) return 'critical';
  if (/^p1$|^(error|high|major|sev2)$/.test(l)) return 'high';
  if (/^p2$|^(warning|warn|medium|minor|sev3)$/.test(l)) return 'medium';
  if (/^p3$|^(info|low|notice|ok|sev4)$/.test(l)) return 'low';
  return 'unknown';
}

/** Only http(s) links reach a card button or a markdown link. */
function safeLink(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : undefined;
  } catch {
    return undefined;
  }
}

function extraFields(fields: Record<string, string>): IssueMessage['fields'] {
  const out: IssueMessage['fields'] = [];
  let size = 0;
  for (const [label, value] of Object.entries(fields)) {
    if (WELL_KNOWN.has(label)) continue;
    const line = { label: cut(label, 60), value: cut(value, MAX_VALUE) };
    size += line.label.length + line.value.length;
    if (out.length >= MAX_FIELDS || size > MAX_FIELDS_TEXT) break;
    out.push(line);
  }
  return out;
}

/** A feed item as the notifiers show it: cut to size, the link checked. */
export function issueMessageOf(item: FeedItem, flow: PollerFlow): IssueMessage {
  const f = item.fields;
  const level = f.level ? cut(f.level, 40) : undefined;
  return {
    itemId: item.id,
    title: cut(item.title || item.id, MAX_TITLE),
    level,
    severity: severityOf(level),
    source: flow.name,
    resource: f.resource ? cut(f.resource, MAX_VALUE) : undefined,
    description: f.description ? cut(f.description, MAX_DESCRIPTION) : undefined,
    fields: extraFields(f),
    createdAt: item.createdAt,
    url: safeLink(item.url),
    repliesOn: flow.replies,
  };
}

import type { CardVars } from '../lark/card-template.js';
import { formatTime, type IssueMessage, type Severity } from './notifier.js';

// Among Lark's card header.template colours (blue, wathet, turquoise, green, yellow, orange, red, carmine, violet, purple, indigo, grey).
const HEADER_COLOR: Record<Severity, string> = { critical: 'red', high: 'orange', medium: 'yellow', low: 'blue', unknown: 'grey' };

/**
 * The {{placeholders}} of an issue card template (templates/issue-card.json). Every text comes
 * from the feed: the template shows them in plain_text elements, never lark_md, so a feed cannot
 * mention @all or inject links.
 */
export function issueCardVars(m: IssueMessage): CardVars {
  return {
    itemId: m.itemId,
    title: m.title,
    level: m.level ?? '—',
    levelTag: m.level ? `[${m.level}] ` : '',
    headerColor: HEADER_COLOR[m.severity],
    source: m.source,
    resource: m.resource,
    description: m.description,
    fieldsText: m.fields.map((f) => `${f.label}: ${f.value}`).join('\n') || undefined,
    time: formatTime(m.createdAt),
    createdAtMs: m.createdAt,
    url: m.url,
    repliesHint: m.repliesOn ? 'Reply in this thread and mention the bot to add a comment to the issue.' : undefined,
  };
}

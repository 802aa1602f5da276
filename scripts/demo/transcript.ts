/**
 * What the demo prints: a transcript a newcomer can read top to bottom — who sent what, what the
 * service answered, and the cards as a person would see them in the chat.
 */
export class Transcript {
  private readonly started = Date.now();

  constructor(private readonly write: (line: string) => void) {}

  private at(): string {
    return `[${((Date.now() - this.started) / 1000).toFixed(1).padStart(5)}s]`;
  }

  heading(text: string): void {
    this.write('');
    this.write(`━━ ${text} ${'━'.repeat(Math.max(3, 72 - text.length))}`);
  }

  /** One event: `→` sent to the service, `←` its answer, `↔` both, `·` what happened around it, `✓` an outcome. */
  line(mark: '→' | '←' | '↔' | '·' | '✓' | '✗', text: string): void {
    const [first, ...rest] = text.split('\n');
    this.write(`${this.at()} ${mark} ${first}`);
    for (const more of rest) this.write(`${' '.repeat(10)}${more}`);
  }

  /** A block shown as is, indented (a card, a JSON body). */
  block(lines: string[]): void {
    for (const l of lines) this.write(`          ${l}`);
  }

  plain(text = ''): void {
    this.write(text);
  }
}

/** JSON on one line, cut to `max` characters. */
export function brief(value: unknown, max = 160): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A Lark message card as text, the way the chat shows it: header, fields, notes, buttons. */
export function cardAsText(card: any): string[] {
  const lines: string[] = [];
  const title = textOf(card?.header?.title);
  const colour = typeof card?.header?.template === 'string' ? ` (${card.header.template})` : '';
  lines.push(`┌─ ${title}${colour}`);
  for (const el of Array.isArray(card?.elements) ? card.elements : []) {
    for (const l of elementLines(el)) lines.push(`│ ${l}`);
  }
  lines.push('└─');
  return lines;
}

function elementLines(el: any): string[] {
  switch (el?.tag) {
    case 'hr':
      return ['─'.repeat(40)];
    case 'div': {
      const out: string[] = [];
      if (el.text) out.push(...textOf(el.text).split('\n'));
      const fields = Array.isArray(el.fields) ? el.fields.map((f: any) => textOf(f.text).replace(/\n/g, ': ')) : [];
      if (fields.length) out.push(fields.join('   '));
      return out.filter((l) => l.trim() !== '');
    }
    case 'markdown':
      return String(el.content ?? '').split('\n').map(stripMarkdown);
    case 'note':
      return (Array.isArray(el.elements) ? el.elements : []).map((e: any) => `ℹ ${textOf(e)}`);
    case 'action':
      return [(Array.isArray(el.actions) ? el.actions : []).map((a: any) => `[${textOf(a.text)}]${a.url ? ` → ${shortUrl(a.url)}` : ''}`).join('  ')];
    default:
      return [];
  }
}

function textOf(t: any): string {
  if (!t) return '';
  const content = String(t.content ?? t.text ?? '');
  return t.tag === 'lark_md' ? content.split('\n').map(stripMarkdown).join('\n') : content;
}

// lark_md as the chat renders it: bold and links as their text, a mention as @ and its id.
const stripMarkdown = (line: string) =>
  line
    .replace(/\*\*(.*?)\*\*/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<at id=([^>]+)><\/at>/g, '@$1');

function shortUrl(url: string): string {
  return url.length > 60 ? `${url.slice(0, 57)}…` : url;
}

/** Builds the content of a Feishu `post` (rich text) message from plain text with @ou_xxx mentions. */
export type PostElement = { tag: 'text'; text: string } | { tag: 'at'; user_id: string };

export interface PostContent {
  zh_cn: { title: string; content: PostElement[][] };
}

// Open ids are "ou_" followed by hex/alphanumerics.
const MENTION = /@(ou_[A-Za-z0-9]+)/g;

export function summaryToPost(text: string, title = ''): PostContent {
  const paragraphs = text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((line) => lineToElements(line));
  return { zh_cn: { title, content: paragraphs } };
}

function lineToElements(line: string): PostElement[] {
  const out: PostElement[] = [];
  let last = 0;
  for (const m of line.matchAll(MENTION)) {
    if (m.index > last) out.push({ tag: 'text', text: line.slice(last, m.index) });
    out.push({ tag: 'at', user_id: m[1]! });
    last = m.index + m[0].length;
  }
  if (last < line.length || out.length === 0) out.push({ tag: 'text', text: line.slice(last) });
  return out;
}

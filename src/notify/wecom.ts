import type { UpstreamClient } from '../upstream/client.js';
import { cutToBytes, describeWebhook, formatTime, NotifyError, type IssueMessage, type Notifier, type Severity } from './notifier.js';
import { postToWebhook } from './webhook-call.js';

/**
 * A WeCom (企业微信) group robot (https://developer.work.weixin.qq.com/document/path/91770): POST
 * {msgtype: "markdown", markdown: {content}} to …/cgi-bin/webhook/send?key=…; the key in the URL
 * is the only credential (no signature). Markdown content is at most 4,096 bytes of UTF-8.
 */
const MAX_BYTES = 4096;
// errcode 45009: over the robot's 20 messages a minute.
const RATE_LIMITED = 45009;
// WeCom markdown knows three font colours: info (green), comment (grey), warning (orange-red).
const COLOR: Record<Severity, string> = { critical: 'warning', high: 'warning', medium: 'comment', low: 'info', unknown: 'comment' };

export function wecomNotifier(o: { webhook: string; upstream: UpstreamClient }): Notifier {
  return {
    type: 'wecom',
    target: describeWebhook(o.webhook),
    async post(message) {
      const answer = await postToWebhook(o.upstream, o.webhook, { msgtype: 'markdown', markdown: { content: wecomMarkdown(message) } });
      if (answer.errcode !== 0) {
        throw new NotifyError(`WeCom robot ${describeWebhook(o.webhook)} refused: ${String(answer.errcode ?? '?')} ${String(answer.errmsg ?? '')}`.trim(), answer.errcode === RATE_LIMITED);
      }
      return {};
    },
  };
}

/** "<@userid>" mentions someone in WeCom markdown: a feed's text must not. */
const quiet = (text: string) => text.replace(/<@/g, '<\u200b@');

export function wecomMarkdown(m: IssueMessage): string {
  const lines = [`### <font color="${COLOR[m.severity]}">${quiet(m.level ? `[${m.level}]` : '[issue]')}</font> ${quiet(m.title)}`];
  lines.push(`> Source: ${quiet(m.source)}`);
  if (m.resource) lines.push(`> Resource: ${quiet(m.resource)}`);
  lines.push(`> Time: ${formatTime(m.createdAt)}`);
  for (const f of m.fields) lines.push(`> ${quiet(f.label)}: ${quiet(f.value)}`);
  if (m.description) lines.push('', quiet(m.description));
  const link = m.url ? `\n[Open in source](${m.url})` : '';
  // The link goes last and is never cut: trim the text before it.
  return cutToBytes(lines.join('\n'), MAX_BYTES - Buffer.byteLength(link)) + link;
}

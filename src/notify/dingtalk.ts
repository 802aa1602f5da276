import { createHmac } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { UpstreamClient } from '../upstream/client.js';
import { cutToBytes, describeWebhook, formatTime, NotifyError, type IssueMessage, type Notifier, type Severity } from './notifier.js';
import { postToWebhook } from './webhook-call.js';

/**
 * A DingTalk group robot (https://open.dingtalk.com/document/group/custom-robot-access): POST
 * {msgtype: "markdown", markdown: {title, text}} to its webhook (…/robot/send?access_token=…).
 * With 加签 (signing) on, `timestamp` (ms, within an hour of DingTalk's clock) and `sign` go in
 * the query: base64 of an HMAC-SHA256 whose KEY is the secret, over timestamp + "\n" + secret,
 * then URL-encoded — unlike Lark's custom bot, where that string is the key.
 */
export function dingtalkSign(timestampMs: number, secret: string): string {
  return createHmac('sha256', secret).update(`${timestampMs}\n${secret}`).digest('base64');
}

// errcode 130101: "send too fast" (20 messages a minute per robot): worth trying again later.
const RATE_LIMITED = 130101;
const COLOR: Record<Severity, string> = { critical: '#D32F2F', high: '#F57C00', medium: '#FBC02D', low: '#1976D2', unknown: '#757575' };

export function dingtalkNotifier(o: { webhook: string; secret?: string; upstream: UpstreamClient; clock: Clock }): Notifier {
  return {
    type: 'dingtalk',
    target: describeWebhook(o.webhook),
    async post(message) {
      const url = new URL(o.webhook);
      if (o.secret) {
        const timestamp = o.clock.now();
        url.searchParams.set('timestamp', String(timestamp));
        url.searchParams.set('sign', dingtalkSign(timestamp, o.secret)); // URLSearchParams encodes it as DingTalk's urlEncode does
      }
      const title = cutToBytes(`${message.level ? `[${message.level}] ` : ''}${message.title}`, 200);
      const answer = await postToWebhook(o.upstream, url.toString(), { msgtype: 'markdown', markdown: { title, text: dingtalkMarkdown(message) } });
      if (answer.errcode !== 0) {
        throw new NotifyError(`DingTalk robot ${describeWebhook(o.webhook)} refused: ${String(answer.errcode ?? '?')} ${String(answer.errmsg ?? '')}`.trim(), answer.errcode === RATE_LIMITED);
      }
      return {};
    },
  };
}

export function dingtalkMarkdown(m: IssueMessage): string {
  const lines = [`#### <font color="${COLOR[m.severity]}">${m.level ? `[${m.level}]` : '[issue]'}</font> ${m.title}`, ''];
  lines.push(`**Source**: ${m.source}`, '');
  if (m.resource) lines.push(`**Resource**: ${m.resource}`, '');
  lines.push(`**Time**: ${formatTime(m.createdAt)}`, '');
  for (const f of m.fields) lines.push(`**${f.label}**: ${f.value}`, '');
  if (m.description) lines.push(`> ${m.description.replace(/\n/g, '\n> ')}`, '');
  if (m.url) lines.push(`[Open in source](${m.url})`);
  return cutToBytes(lines.join('\n'), 18_000);
}

import { createHmac } from 'node:crypto';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { renderCard } from '../lark/card-template.js';
import type { UpstreamClient } from '../upstream/client.js';
import { issueCardVars } from './issue-card-vars.js';
import { describeWebhook, NotifyError, type Notifier } from './notifier.js';
import { postToWebhook } from './webhook-call.js';

/**
 * A Lark group custom bot (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
 * POST {msg_type: "interactive", card} to its webhook. With signature verification on, the body
 * also carries `timestamp` (unix seconds, within an hour of Lark's clock) and `sign`: base64 of an
 * HMAC-SHA256 whose KEY is timestamp + "\n" + secret, over an empty message.
 */
export function larkCustomBotSign(timestampSec: number, secret: string): string {
  return createHmac('sha256', `${timestampSec}\n${secret}`).update('').digest('base64');
}

// Custom bots allow 100 messages a minute and 5 a second; 11232 says "frequency limited".
const RATE_LIMITED = 11232;

export function larkWebhookNotifier(o: { webhook: string; secret?: string; upstream: UpstreamClient; clock: Clock; templatesDir: string; template: string }): Notifier {
  return {
    type: 'lark-webhook',
    target: describeWebhook(o.webhook),
    async post(message) {
      let card: Record<string, unknown>;
      try {
        card = await renderCard(o.templatesDir, o.template, issueCardVars(message));
      } catch (err) {
        throw new NotifyError(err instanceof AppError || err instanceof SyntaxError ? `card template ${o.template}: ${err.message}` : String(err), false);
      }
      // A custom bot's card cannot be updated: it has no use for update_multi.
      delete (card.config as Record<string, unknown> | undefined)?.update_multi;
      const timestamp = Math.floor(o.clock.now() / 1000);
      const signed = o.secret ? { timestamp: String(timestamp), sign: larkCustomBotSign(timestamp, o.secret) } : {};
      const answer = await postToWebhook(o.upstream, o.webhook, { ...signed, msg_type: 'interactive', card });
      // Newer answers are {code, msg, data}; older ones {StatusCode, StatusMessage}.
      const code = typeof answer.code === 'number' ? answer.code : typeof answer.StatusCode === 'number' ? answer.StatusCode : undefined;
      if (code !== 0) {
        const msg = String(answer.msg ?? answer.StatusMessage ?? 'no code in the answer');
        throw new NotifyError(`Lark custom bot ${describeWebhook(o.webhook)} refused: ${code ?? '?'} ${msg}`, code === RATE_LIMITED);
      }
      return {};
    },
  };
}

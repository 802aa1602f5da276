import { createHash } from 'node:crypto';
import { z } from 'zod';
import { InvalidInput, Unavailable, UpstreamFailed } from '../errors.js';
import { idempotencyKeyOf } from '../http/idempotency-key.js';
import { route, type Guard, type Route } from '../http/route.js';
import { summaryToPost } from '../lark/post-content.js';
import type { ChatResult, createSummaryDelivery } from './summary-delivery.js';
import { splitPostToFit } from './split-post.js';

// The Flask bot's clients sent "true"/"false" strings as often as booleans.
const flag = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
  .optional()
  .transform((v) => v === true || v === 'true' || v === '1');

const summarySchema = z.object({
  summaryText: z.string({ error: 'is required: the text to send' }).trim().min(1, 'must not be empty').max(30_000, 'must be at most 30000 characters'),
  title: z.string().max(200).optional(),
  pd: flag,
  ops: flag,
});

export interface SummaryDeps {
  /** Absent when Lark is not configured. */
  delivery?: ReturnType<typeof createSummaryDelivery>;
  chats: { main?: string; pd?: string; ops?: string };
  bearer: Guard;
}

/**
 * POST /api/endpoint: a plain summary with @ou_xxx mentions → a rich-text post to the configured
 * chats, split into several posts when one would pass Lark's 30 KB. 200 when every chat got
 * every part; 502 with the per-chat results when any chat did not (retry with the same
 * Idempotency-Key: only what is missing is sent).
 */
export function summaryRoutes(d: SummaryDeps): Route[] {
  return [
    route({
      method: 'POST',
      path: '/api/endpoint',
      guard: d.bearer,
      body: summarySchema,
      async handler(ctx, body) {
        const wanted: Array<[string, string | undefined]> = [['CHAT_ID', d.chats.main]];
        if (body.pd) wanted.push(['PD_CHAT_ID', d.chats.pd]);
        if (body.ops) wanted.push(['OPS_CHAT_ID', d.chats.ops]);
        const missing = wanted.filter(([, id]) => !id).map(([name]) => name);
        if (missing.length) throw new InvalidInput(`${missing.join(', ')} not set on the server: no chat to send to`, { missing });
        if (!d.delivery) throw new Unavailable('Lark is not configured: set LARK_APP_ID and LARK_APP_SECRET');
        const key = idempotencyKeyOf(ctx);

        const targets = [...new Set(wanted.map(([, id]) => id!))];
        const longestChatId = targets.reduce((a, b) => (b.length > a.length ? b : a));
        const parts = splitPostToFit(summaryToPost(body.summaryText, body.title), longestChatId);
        const fingerprint = createHash('sha256').update(JSON.stringify([body.summaryText, body.title ?? null, body.pd, body.ops])).digest('hex');
        const { results, replayed } = await d.delivery.deliver({ chats: targets, parts, fingerprint, key: key?.scoped });

        const messages = results.flatMap((r) => r.messageIds.map((messageId) => ({ chatId: r.chatId, messageId })));
        const failed = results.filter((r) => r.status === 'failed');
        if (failed.length) {
          throw new UpstreamFailed(`${whyNotSent(failed)}; ${failed.length} of ${results.length} chat(s) not sent`, {
            status: failed.length === results.length ? 'failed' : 'partial',
            targets,
            parts: parts.length,
            chats: results,
          });
        }
        if (replayed) ctx.set('Idempotent-Replayed', 'true');
        ctx.body = { status: 'success', targets, parts: parts.length, chats: results, messages };
      },
    }),
  ];
}

/** Says whether Lark refused the message or was never reached (a domain that does not resolve is not a refusal). */
function whyNotSent(failed: ChatResult[]): string {
  const refused = failed.filter((r) => !r.unreachable);
  const unreached = failed.filter((r) => r.unreachable);
  const parts: string[] = [];
  if (refused.length) parts.push(`Lark refused the message to ${refused.map((r) => `${r.chatId} (${r.larkCode} ${r.larkMsg})`).join(', ')}`);
  if (unreached.length) parts.push(`could not reach Lark for ${unreached.map((r) => r.chatId).join(', ')}: ${[...new Set(unreached.map((r) => r.larkMsg))].join('; ')}`);
  return parts.join('; ');
}

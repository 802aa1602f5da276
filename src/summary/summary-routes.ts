import { z } from 'zod';
import { InvalidInput, Unavailable, UpstreamFailed } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
import { LarkApiError } from '../lark/lark-error.js';
import type { Messenger } from '../lark/messages.js';
import { summaryToPost } from '../lark/post-content.js';

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
  messenger?: Messenger;
  chats: { main?: string; pd?: string; ops?: string };
  bearer: Guard;
}

/** POST /api/endpoint: a plain summary with @ou_xxx mentions → a rich-text post to the configured chats. */
export function summaryRoutes(d: SummaryDeps): Route[] {
  return [route({ method: 'POST', path: '/api/endpoint', guard: d.bearer, body: summarySchema, handler: async (ctx, body) => {
    const wanted: Array<[string, string | undefined]> = [['CHAT_ID', d.chats.main]];
    if (body.pd) wanted.push(['PD_CHAT_ID', d.chats.pd]);
    if (body.ops) wanted.push(['OPS_CHAT_ID', d.chats.ops]);
    const missing = wanted.filter(([, id]) => !id).map(([name]) => name);
    if (missing.length) throw new InvalidInput(`${missing.join(', ')} not set on the server: no chat to send to`, { missing });
    if (!d.messenger) throw new Unavailable('Lark is not configured: set LARK_APP_ID and LARK_APP_SECRET');

    const post = summaryToPost(body.summaryText, body.title);
    const targets = [...new Set(wanted.map(([, id]) => id!))];
    const sent: Array<{ chatId: string; messageId: string }> = [];
    for (const chatId of targets) {
      try {
        sent.push({ chatId, ...(await d.messenger.sendToChat(chatId, 'post', post)) });
      } catch (err) {
        if (!(err instanceof LarkApiError)) throw err;
        throw new UpstreamFailed(`Lark refused the message to ${chatId}: ${err.code} ${err.larkMsg}`, {
          larkCode: err.code,
          larkMsg: err.larkMsg,
          chatId,
          sent,
        });
      }
    }
    ctx.body = { status: 'success', targets, messages: sent };
  } })];
}

import { validateDetailed } from 'node-cron';
import { z } from 'zod';

/** The poller branch of the flow file format (kind "poller"): schedule, source, where cards go. */

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** "data.items", "id", "labels.0": property names (or array indexes) joined by dots. */
export const dotPath = z
  .string()
  .regex(/^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$/, 'must be a dot path such as "data.items" or "id"');

const timeoutMs = z.number().int().min(100).max(60_000).default(10_000).describe('Deadline of one call to the source, the whole answer included');

export const guanceSourceSchema = z
  .object({
    type: z.literal('guance'),
    baseUrl: httpUrl.default('https://openapi.guance.com').describe('The OpenAPI base of your Guance site, e.g. https://openapi.guance.com'),
    apiKey: z
      .string({ error: 'the Guance API key is required: write "${env:GUANCE_API_KEY}"' })
      .min(1, 'the Guance API key is required: write "${env:GUANCE_API_KEY}"')
      .describe('The workspace API key (sent as DF-API-KEY); write "${env:NAME}"'),
    channel: z.string().min(1).describe('The channel whose issues are brought in: its name or its uuid (chan_…)'),
    issueUrl: z
      .string()
      .regex(/^https?:\/\/\S*\{id\}\S*$/, 'must be an http(s) URL containing {id}')
      .optional()
      .describe('A link to an issue in the Guance console, {id} replaced by the issue uuid'),
    pageSize: z.number().int().min(1).max(100).default(100).describe('Issues asked per page of issue/list'),
    timeoutMs,
  })
  .strict();

const sinceSchema = z
  .object({
    in: z.enum(['query', 'body']).describe('Where the cursor goes: a query parameter or a field of the JSON body (POST)'),
    name: z.string().min(1).describe('The parameter or field name, e.g. "since"'),
    format: z.enum(['ms', 's', 'iso']).default('ms').describe('ms or s since the epoch, or an ISO 8601 string'),
    until: z.string().min(1).optional().describe('Also pass the end of the window under this name'),
  })
  .strict();

const templateBody = z.record(z.string(), z.unknown());

export const httpSourceSchema = z
  .object({
    type: z.literal('http'),
    url: httpUrl.describe('The feed: answers JSON'),
    method: z.enum(['GET', 'POST']).default('GET'),
    headers: z.record(z.string(), z.string()).default({}).describe('Sent with every call, e.g. {"Authorization": "Bearer ${env:FEED_TOKEN}"}'),
    body: templateBody.optional().describe('POST: the JSON body (the cursor is added to it when since.in is "body")'),
    itemsPath: dotPath.optional().describe('Where the list of items is in the answer; absent: the answer is the list'),
    id: dotPath.describe("The item's unique id"),
    title: dotPath,
    createdAt: dotPath.describe('When the item was created: seconds or ms since the epoch, or an ISO 8601 string'),
    level: dotPath.optional().describe('Shown with a colour: P0–P3, critical/error/warning/info'),
    description: dotPath.optional(),
    link: dotPath.optional().describe('A link to the item (http(s) only)'),
    fields: z.record(z.string().min(1), dotPath).default({}).describe('More lines on the card: label → dot path'),
    since: sinceSchema.optional().describe('How to pass the cursor; absent: the feed is asked as is and items outside the window are ignored'),
    reply: z
      .object({
        url: httpUrl.describe('{{itemId}} in the URL is replaced (URL-encoded)'),
        method: z.enum(['POST', 'PUT']).default('POST'),
        headers: z.record(z.string(), z.string()).optional().describe("Absent: the feed's headers"),
        body: templateBody.describe('JSON body; "{{itemId}}", "{{text}}" and "{{author}}" in its strings are replaced'),
      })
      .strict()
      .optional()
      .describe('How a comment is added to an item (needed for replies: true)'),
    repliesFeed: z
      .object({
        url: httpUrl.describe('{{itemId}} in the URL is replaced (URL-encoded)'),
        itemsPath: dotPath.optional(),
        id: dotPath,
        author: dotPath,
        text: dotPath,
        createdAt: dotPath,
      })
      .strict()
      .optional()
      .describe("New comments of an item, posted into the item's card thread"),
    maxItems: z.number().int().min(1).max(10_000).default(10_000).describe('Items read from one answer at most'),
    timeoutMs,
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.body && s.method !== 'POST') ctx.addIssue({ code: 'custom', path: ['body'], message: 'a body needs method POST' });
    if (s.since?.in === 'body' && s.method !== 'POST') ctx.addIssue({ code: 'custom', path: ['since', 'in'], message: 'the cursor can go in the body only with method POST' });
  });

export const sourceSchema = z.discriminatedUnion('type', [guanceSourceSchema, httpSourceSchema], {
  error: 'unknown source type: expected "guance" or "http"',
});

/**
 * Where cards go. `{chatId}`: the app bot (the only form @bot replies work with); `{webhook,
 * secret?}`: a Lark group custom bot; `{type: "dingtalk" | "wecom", webhook, …}`: those robots.
 */
export const notifySchema = z
  .object({
    type: z.enum(['lark', 'dingtalk', 'wecom']).optional().describe('Absent: Lark (the app bot with chatId, a custom bot with webhook)'),
    chatId: z.string().min(1).optional().describe('A chat the app bot is in (oc_…)'),
    webhook: httpUrl.optional().describe('The group robot webhook URL; write "${env:NAME}", it carries a credential'),
    secret: z.string().min(1).optional().describe('The signing secret of a Lark custom bot or DingTalk robot; write "${env:NAME}"'),
  })
  .strict()
  .superRefine((n, ctx) => {
    const type = n.type ?? 'lark';
    if (n.chatId !== undefined && n.webhook !== undefined) ctx.addIssue({ code: 'custom', path: ['webhook'], message: 'give chatId (app bot) or webhook, not both' });
    if (n.chatId === undefined && n.webhook === undefined) ctx.addIssue({ code: 'custom', path: [], message: 'notify needs chatId (app bot) or webhook (group robot)' });
    if (n.chatId !== undefined && type !== 'lark') ctx.addIssue({ code: 'custom', path: ['chatId'], message: `${type} has no app bot: use webhook` });
    if (n.chatId !== undefined && n.secret !== undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'the app bot needs no secret (it is for webhooks)' });
    if (type === 'wecom' && n.secret !== undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'WeCom group robots are not signed: the key is in the webhook URL' });
  })
  .transform((n): NotifyTarget => {
    if (n.chatId !== undefined) return { type: 'lark-app', chatId: n.chatId };
    const webhook = n.webhook!;
    if (n.type === 'dingtalk') return { type: 'dingtalk', webhook, ...(n.secret ? { secret: n.secret } : {}) };
    if (n.type === 'wecom') return { type: 'wecom', webhook };
    return { type: 'lark-webhook', webhook, ...(n.secret ? { secret: n.secret } : {}) };
  });

export type NotifyTarget =
  | { type: 'lark-app'; chatId: string }
  | { type: 'lark-webhook'; webhook: string; secret?: string }
  | { type: 'dingtalk'; webhook: string; secret?: string }
  | { type: 'wecom'; webhook: string };

/** A problem with a cron expression, or undefined when node-cron accepts it (5 fields, or 6 with seconds). */
export function cronProblem(expression: string): string | undefined {
  const v = validateDetailed(expression);
  if (v.valid) return undefined;
  return `invalid cron expression "${expression}": ${v.errors.map((e) => e.message).join('; ')} (5 fields, or 6 with seconds first)`;
}

function timezoneProblem(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone "${tz}" (an IANA name such as Asia/Shanghai)`;
  }
}

export const pollerFlowSchema = z
  .object({
    $schema: z.string().optional(),
    kind: z.literal('poller'),
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, - and _ (at most 64)'),
    name: z.string().min(1).max(200),
    schedule: z.string().min(1).describe('A cron expression; 6 fields puts seconds first: "*/30 * * * * *" runs every 30 s'),
    timezone: z.string().min(1).optional().describe('IANA time zone of the schedule; absent: the host time zone'),
    source: sourceSchema,
    notify: notifySchema,
    template: z.string().regex(/^[A-Za-z0-9_-]+$/).default('issue-card').describe('Card template (templates/<name>.json) for Lark'),
    replies: z.boolean().default(false).describe('@bot replies to a card go back to the source as comments (needs notify.chatId)'),
    overlapSec: z.number().int().min(0).max(86_400).default(300).describe('Each run asks again for this much before the cursor: covers late and clock-skewed items'),
    maxCatchUpSec: z.number().int().min(60).max(30 * 86_400).default(86_400).describe('After downtime, look back at most this far'),
    maxPerRun: z.number().int().min(1).max(1_000).default(50).describe('Cards posted per run at most; the rest go in the next runs'),
    followRepliesSec: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .default(86_400)
      .describe("With a source.repliesFeed: a card's new comments are posted into its thread for this long after the card was posted; 0: never"),
    maxReplyChecksPerRun: z
      .number()
      .int()
      .min(1)
      .max(500)
      .default(20)
      .describe('With a source.repliesFeed: cards whose comments a run lists at most, those checked longest ago first'),
  })
  .strict()
  .superRefine((f, ctx) => {
    const cron = cronProblem(f.schedule);
    if (cron) ctx.addIssue({ code: 'custom', path: ['schedule'], message: cron });
    const tz = f.timezone === undefined ? undefined : timezoneProblem(f.timezone);
    if (tz) ctx.addIssue({ code: 'custom', path: ['timezone'], message: tz });
    // Read chatId, not type: when notify itself is invalid (an unset ${env:}) it is not transformed yet.
    if (f.replies && typeof (f.notify as { chatId?: unknown }).chatId !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['replies'], message: 'replies need notify.chatId (the app bot): a group robot webhook cannot receive @bot messages' });
    }
    if (f.replies && f.source.type === 'http' && !f.source.reply) {
      ctx.addIssue({ code: 'custom', path: ['replies'], message: 'replies need source.reply (how a comment is added to an item)' });
    }
  });

export type PollerFlow = z.output<typeof pollerFlowSchema>;
export type PollerSourceSpec = PollerFlow['source'];
export type GuanceSourceSpec = z.output<typeof guanceSourceSchema>;
export type HttpSourceSpec = z.output<typeof httpSourceSchema>;

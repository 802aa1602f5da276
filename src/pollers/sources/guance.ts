import { z } from 'zod';
import type { GuanceSourceSpec } from '../../flows/poller-flow-schema.js';
import type { UpstreamClient } from '../../upstream/client.js';
import { FeedError, type FeedItem, type FeedSource } from '../feed.js';
import { callFeed, shapeProblem } from './feed-call.js';

/**
 * Guance (DataFlux, 观测云) issues through its OpenAPI, as the scripts teams run today call it:
 * the channel by name or uuid from channel/quick_list, the issues of a time window from
 * issue/list (unix seconds), comments through issue/reply/create; the key in DF-API-KEY.
 * https://docs.guance.com/open-api/issue/get/ shows the answer envelope {code, content, errorCode, message, success}.
 */

const MAX_LIST_BYTES = 16 * 1024 * 1024;
/** Pages of issue/list read in one window at most (with pageSize 100: 10,000 issues). */
const MAX_PAGES = 100;

// A Guance error answer: {"code": 403, "errorCode": "ft.NoPermission", "message": "…", "success": false}.
const envelope = z.looseObject({
  success: z.boolean().optional(),
  errorCode: z.string().nullish(),
  message: z.string().nullish(),
});

const channelsAnswer = z.looseObject({
  content: z.array(z.looseObject({ uuid: z.string().min(1), name: z.string() })),
});

const issue = z.looseObject({
  uuid: z.string().min(1),
  name: z.string(),
  level: z.union([z.string(), z.number()]).nullish(),
  resource: z.string().nullish(),
  description: z.string().nullish(),
  createAt: z.number().nonnegative(),
});

const issuesAnswer = z.looseObject({
  content: z.array(issue),
  pageInfo: z.looseObject({ totalCount: z.number().optional() }).nullish(),
});

type Issue = z.infer<typeof issue>;

export function createGuanceSource(spec: GuanceSourceSpec, upstream: UpstreamClient): FeedSource {
  const base = spec.baseUrl.replace(/\/+$/, '');
  const headers = { 'DF-API-KEY': spec.apiKey };
  let channelUuid: string | undefined;

  async function call(method: 'GET' | 'POST', path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const answer = await callFeed(upstream, { method, url: `${base}${path}`, headers, body, timeoutMs: spec.timeoutMs, maxBytes: MAX_LIST_BYTES, signal });
    const env = envelope.safeParse(answer);
    if (env.success && (env.data.success === false || env.data.errorCode)) {
      throw new FeedError(`${method} ${path}: Guance refused: ${env.data.errorCode ?? 'error'} ${env.data.message ?? ''}`.trim(), false);
    }
    return answer;
  }

  /** The channel's uuid, asked once per source (a changed flow makes a new source). */
  async function channel(signal?: AbortSignal): Promise<string> {
    if (channelUuid) return channelUuid;
    const parsed = channelsAnswer.safeParse(await call('GET', '/api/v1/channel/quick_list', undefined, signal));
    if (!parsed.success) throw new FeedError(`GET /api/v1/channel/quick_list: unexpected answer: ${shapeProblem(parsed.error.issues)}`, false);
    const channels = parsed.data.content;
    const byUuid = channels.find((c) => c.uuid === spec.channel);
    const byName = channels.filter((c) => c.name === spec.channel);
    if (!byUuid && byName.length > 1) throw new FeedError(`${byName.length} Guance channels are named "${spec.channel}": write its uuid in source.channel`, false);
    const found = byUuid ?? byName[0];
    if (!found) {
      const names = channels.slice(0, 10).map((c) => `"${c.name}"`).join(', ');
      throw new FeedError(`no Guance channel named "${spec.channel}" (the API key sees ${channels.length}: ${names || 'none'})`, false);
    }
    channelUuid = found.uuid;
    return channelUuid;
  }

  return {
    async list(since, until, signal, options) {
      const channelUUID = await channel(signal);
      // Whole seconds that cover [since, until): the poller drops what falls outside.
      const startTime = Math.floor(since / 1000);
      const endTime = Math.ceil(until / 1000);
      const byId = new Map<string, Issue>();
      for (let pageIndex = 1; ; pageIndex++) {
        const answer = await call('POST', '/api/v1/issue/list', { channelUUID, startTime, endTime, pageIndex, pageSize: spec.pageSize }, signal);
        const parsed = issuesAnswer.safeParse(answer);
        if (!parsed.success) throw new FeedError(`POST /api/v1/issue/list: unexpected answer: ${shapeProblem(parsed.error.issues)}`, false);
        const before = byId.size;
        for (const i of parsed.data.content) if (!byId.has(i.uuid)) byId.set(i.uuid, i);
        const total = parsed.data.pageInfo?.totalCount;
        const lastPage = parsed.data.content.length < spec.pageSize || byId.size === before || (total !== undefined && byId.size >= total);
        if (lastPage || options?.onePage) break;
        if (pageIndex >= MAX_PAGES) {
          throw new FeedError(`more than ${MAX_PAGES * spec.pageSize} issues in one window: lower maxCatchUpSec or overlapSec`, false);
        }
      }
      return [...byId.values()].map((i) => toItem(i, spec)).sort((a, b) => a.createdAt - b.createdAt);
    },

    async addReply(itemId, text, author, signal) {
      // https://docs.guance.com/open-api/issue/createissuereply/ : {issueUUID, content (≤ 65,535), extend}
      const content = `${author} (Lark): ${text}`.slice(0, 65_535);
      await call('POST', '/api/v1/issue/reply/create', { issueUUID: itemId, content, extend: {} }, signal);
    },
  };
}

// Guance levels: system_level_0 … system_level_3 are P0–P3; custom levels (issl_…) show as given.
function levelOf(level: string | number | null | undefined): string | undefined {
  if (level === null || level === undefined || level === '') return undefined;
  const m = /^(?:system_level_)?([0-3])$/.exec(String(level));
  return m ? `P${m[1]}` : String(level);
}

function toItem(i: Issue, spec: GuanceSourceSpec): FeedItem {
  const fields = Object.create(null) as Record<string, string>;
  const level = levelOf(i.level);
  if (level) fields.level = level;
  if (i.resource) fields.resource = i.resource;
  if (i.description) fields.description = i.description;
  return {
    id: i.uuid,
    title: i.name,
    createdAt: i.createAt * 1000,
    fields,
    ...(spec.issueUrl ? { url: spec.issueUrl.replace('{id}', encodeURIComponent(i.uuid)) } : {}),
  };
}

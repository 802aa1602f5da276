import type { HttpSourceSpec } from '../../flows/poller-flow-schema.js';
import type { UpstreamClient } from '../../upstream/client.js';
import { FeedError, type FeedItem, type FeedReply, type FeedSource } from '../feed.js';
import { asEpochMs, asText, readPath } from './dot-path.js';
import { callFeed } from './feed-call.js';

/**
 * Any JSON feed: the flow says where the list is (itemsPath) and where each field is in an item
 * (dot paths), and how the cursor is passed (since). An item without an id, title or time is an
 * unexpected shape: the whole answer is refused, naming the item and the path.
 */

const MAX_BYTES = 16 * 1024 * 1024;

export function createHttpSource(spec: HttpSourceSpec, upstream: UpstreamClient): FeedSource {
  const source: FeedSource = {
    async list(since, until, signal) {
      const url = new URL(spec.url);
      const body: Record<string, unknown> | undefined = spec.method === 'POST' ? { ...spec.body } : undefined;
      if (spec.since) {
        const put = (name: string, ms: number) => {
          const value = formatTime(ms, spec.since!.format);
          if (spec.since!.in === 'query') url.searchParams.set(name, String(value));
          else body![name] = value;
        };
        put(spec.since.name, since);
        if (spec.since.until) put(spec.since.until, until);
      }
      const answer = await callFeed(upstream, { method: spec.method, url: url.toString(), headers: spec.headers, body, timeoutMs: spec.timeoutMs, maxBytes: MAX_BYTES, signal });
      return listAt(answer, spec.itemsPath, spec.maxItems).map((raw, i) => toItem(raw, i, spec));
    },
  };

  const reply = spec.reply;
  if (reply) {
    source.addReply = async (itemId, text, author, signal) => {
      const vars = { itemId, text, author };
      const url = reply.url.replace(/\{\{\s*itemId\s*\}\}/g, encodeURIComponent(itemId));
      const body = fillTemplate(reply.body, vars);
      await callFeed(upstream, { method: 'POST', url, headers: reply.headers ?? spec.headers, body, timeoutMs: spec.timeoutMs, maxBytes: 1024 * 1024, signal }).catch((err: unknown) => {
        // A reply endpoint may answer 2xx with an empty or non-JSON body: that is still done.
        if (err instanceof FeedError && / is not valid JSON: /.test(err.message)) return;
        throw err;
      });
    };
  }

  const feed = spec.repliesFeed;
  if (feed) {
    source.listReplies = async (itemId, since, signal) => {
      const url = feed.url.replace(/\{\{\s*itemId\s*\}\}/g, encodeURIComponent(itemId));
      const answer = await callFeed(upstream, { method: 'GET', url, headers: spec.headers, timeoutMs: spec.timeoutMs, maxBytes: MAX_BYTES, signal });
      const replies: FeedReply[] = listAt(answer, feed.itemsPath, spec.maxItems).map((raw, i) => ({
        id: required(raw, feed.id, i, 'id'),
        itemId,
        author: asText(readPath(raw, feed.author)) ?? '',
        text: required(raw, feed.text, i, 'text'),
        createdAt: timeOf(raw, feed.createdAt, i),
      }));
      return replies.filter((r) => r.createdAt >= since).sort((a, b) => a.createdAt - b.createdAt);
    };
  }
  return source;
}

function listAt(answer: unknown, path: string | undefined, max: number): unknown[] {
  const list = readPath(answer, path);
  const where = path ? `itemsPath "${path}"` : 'the answer';
  if (!Array.isArray(list)) throw new FeedError(`${where} is not a list (found ${list === null ? 'null' : typeof list})`, false);
  if (list.length > max) throw new FeedError(`${where} holds ${list.length} items, more than maxItems (${max}): pass the cursor with since, or raise maxItems`, false);
  return list;
}

function required(raw: unknown, path: string, index: number, what: string): string {
  const value = readPath(raw, path);
  const text = typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  if (!text) throw new FeedError(`item ${index}: ${what} at "${path}" is ${value === undefined ? 'missing' : `not a string or number (${JSON.stringify(value)?.slice(0, 40)})`}`, false);
  return text;
}

function timeOf(raw: unknown, path: string, index: number): number {
  const value = readPath(raw, path);
  const ms = asEpochMs(value);
  if (ms === undefined) throw new FeedError(`item ${index}: createdAt at "${path}" is ${value === undefined ? 'missing' : `not a time (${JSON.stringify(value)?.slice(0, 40)})`}`, false);
  return ms;
}

function toItem(raw: unknown, index: number, spec: HttpSourceSpec): FeedItem {
  const fields = Object.create(null) as Record<string, string>;
  const set = (key: string, path: string | undefined) => {
    const text = path === undefined ? undefined : asText(readPath(raw, path));
    if (text !== undefined && text !== '') fields[key] = text;
  };
  set('level', spec.level);
  set('description', spec.description);
  for (const [label, path] of Object.entries(spec.fields)) set(label, path);
  const link = spec.link === undefined ? undefined : asText(readPath(raw, spec.link));
  return {
    id: required(raw, spec.id, index, 'id'),
    title: required(raw, spec.title, index, 'title'),
    createdAt: timeOf(raw, spec.createdAt, index),
    fields,
    ...(link ? { url: link } : {}),
  };
}

function formatTime(ms: number, format: 'ms' | 's' | 'iso'): number | string {
  if (format === 's') return Math.floor(ms / 1000);
  if (format === 'iso') return new Date(ms).toISOString();
  return ms;
}

/** Replaces {{name}} in every string of a JSON template, inside the parsed value (never by splicing JSON text). */
export function fillTemplate(node: unknown, vars: Record<string, string>): unknown {
  if (typeof node === 'string') return node.replace(/\{\{\s*(itemId|text|author)\s*\}\}/g, (_, k: string) => vars[k] ?? '');
  if (Array.isArray(node)) return node.map((n) => fillTemplate(n, vars));
  if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, fillTemplate(v, vars)]));
  return node;
}

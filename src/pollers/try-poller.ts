import type { Clock } from '../clock.js';
import type { PollerFlow } from '../flows/poller-flow-schema.js';
import type { Messenger } from '../lark/messages.js';
import { createNotifier } from '../notify/create-notifier.js';
import { describeWebhook } from '../notify/notifier.js';
import type { UpstreamClient } from '../upstream/client.js';
import { FeedError } from './feed.js';
import { issueMessageOf } from './issue-message.js';
import { dedupKeyOf } from './poll-run.js';
import { createFeedSource } from './sources/feed-source.js';

/**
 * One page of a poller's source and the cards a run would post from it, read-only: the core of
 * `npm run flows:try -- FILE`. The source is called as the service calls it; the notifier is the
 * service's own, handed a messenger and an upstream client that record instead of sending. No
 * store is opened: no cursor moves and no item is marked.
 */

export interface TriedCard {
  itemId: string;
  title: string;
  createdAt: string;
  /** Where it would go: a chat id, or a webhook without its key. */
  target: string;
  /** What would be sent: the Lark message (card as `content`), or the webhook's JSON body. */
  payload: unknown;
}

export interface TriedPoller {
  window: { since: string; until: string };
  listed: number;
  /** Items in the window, oldest first, up to the limit: the cards a first run would post. */
  cards: TriedCard[];
  /** Items listed beyond the limit (a run posts at most maxPerRun). */
  more: number;
}

export interface TryPollerDeps {
  /** The real upstream client: the source is read as the service reads it. */
  upstream: UpstreamClient;
  clock: Clock;
  templatesDir: string;
}

/** A problem of the try: `where` is the flow's JSON path it comes from (source, template). */
export class TryFailed extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(message);
    this.name = 'TryFailed';
  }
}

export async function tryPoller(flow: PollerFlow, deps: TryPollerDeps, o: { since: number; limit: number }): Promise<TriedPoller> {
  const until = deps.clock.now();
  const source = createFeedSource(flow.source, deps.upstream);
  let items;
  try {
    items = await source.list(o.since, until, undefined, { onePage: true });
  } catch (err) {
    throw new TryFailed('source', err instanceof FeedError ? err.message : String((err as Error)?.message ?? err));
  }
  const fresh = items.filter((i) => i.createdAt >= o.since).sort((a, b) => a.createdAt - b.createdAt);

  const sent: unknown[] = [];
  const notifier = createNotifier(flow.notify, flow.template, { messenger: recordingMessenger(sent), upstream: recordingUpstream(sent), clock: deps.clock, templatesDir: deps.templatesDir });
  if ('problem' in notifier) throw new TryFailed('notify', notifier.problem);
  const cards: TriedCard[] = [];
  for (const item of fresh.slice(0, o.limit)) {
    sent.length = 0;
    try {
      await notifier.post(issueMessageOf(item, flow), dedupKeyOf(flow.id, item.id));
    } catch (err) {
      throw new TryFailed('template', `item ${item.id}: ${(err as Error).message}`);
    }
    cards.push({ itemId: item.id, title: item.title, createdAt: new Date(item.createdAt).toISOString(), target: notifier.target, payload: sent[0] });
  }
  return { window: { since: new Date(o.since).toISOString(), until: new Date(until).toISOString() }, listed: fresh.length, cards, more: Math.max(0, fresh.length - cards.length) };
}

/** Records what the app bot would send (im/v1/messages: receive_id, msg_type, content as a string, uuid). */
function recordingMessenger(sent: unknown[]): Messenger {
  const refuse = () => Promise.reject(new Error('a try sends nothing'));
  return {
    async sendToChat(chatId, msgType, content, uuid) {
      sent.push({ receive_id: chatId, msg_type: msgType, uuid, content });
      return { messageId: 'om_not_sent' };
    },
    patchCard: refuse,
    replyTo: refuse,
  };
}

/** Records a robot webhook's POST and answers as every robot does when it took it. */
function recordingUpstream(sent: unknown[]): UpstreamClient {
  return {
    async postJson(url, body) {
      sent.push({ webhook: describeWebhook(url), body: typeof body === 'string' ? JSON.parse(body) : body });
      return { kind: 'success', httpStatus: 200, response: JSON.stringify({ code: 0, errcode: 0, StatusCode: 0 }), durationMs: 0 };
    },
    get: () => Promise.reject(new Error('a try sends nothing')),
    close: async () => undefined,
  };
}

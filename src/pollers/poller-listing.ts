import type { NotifyTarget, PollerFlow } from '../flows/poller-flow-schema.js';
import { describeWebhook } from '../notify/notifier.js';
import type { PollerState, RunTrigger } from './poller-state.js';
import { describeSource } from './sources/feed-source.js';

/** One poller as GET /api/pollers shows it: schedule, state and counts. No secret, no webhook key. */
export function pollerListing(
  flow: PollerFlow,
  state: PollerState,
  p: { scheduled: boolean; problem?: string; nextRun?: Date | null; running?: { trigger: RunTrigger; startedAt: number } },
) {
  return {
    id: flow.id,
    name: flow.name,
    schedule: flow.schedule,
    ...(flow.timezone ? { timezone: flow.timezone } : {}),
    scheduled: p.scheduled,
    ...(p.problem ? { problem: p.problem } : {}),
    nextRunAt: p.nextRun ? p.nextRun.toISOString() : null,
    // This replica's run: another replica's run holds the poller's lock, not this flag.
    running: p.running ? { trigger: p.running.trigger, since: new Date(p.running.startedAt).toISOString() } : false,
    source: describeSource(flow.source),
    notify: describeNotify(flow.notify),
    replies: flow.replies,
    cursor: state.cursor === undefined ? null : new Date(state.cursor).toISOString(),
    lastRun: state.lastRun ?? null,
    lastError: state.lastError ?? null,
    backoffUntil: state.backoffUntil === undefined ? null : new Date(state.backoffUntil).toISOString(),
    counts: state.counts,
  };
}

function describeNotify(n: NotifyTarget): { type: string; target: string } {
  return n.type === 'lark-app' ? { type: n.type, target: n.chatId } : { type: n.type, target: describeWebhook(n.webhook) };
}

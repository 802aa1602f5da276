import type { Clock } from '../../clock.js';
import type { Messenger } from '../../lark/messages.js';
import type { UserNames } from '../../lark/user-names.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import { CARD_BY_MESSAGE, POSTED_CARDS, type FeedReply, type PostedCard } from '../feed.js';
import { CHAT_REPLIES, ChatReplies, type ChatRepliesDeps, type ChatReply } from './chat-replies.js';
import { REPLY_ECHOES } from './reply-echoes.js';
import { postNewReplies, REPLY_REMINDERS, type ReminderMark, type ReminderResult } from './reply-reminders.js';
import type { ReplyTargets } from './reply-target.js';

/** @bot replies over the store's collections (the names the pollers half writes cards under). */
export function chatRepliesFor(
  store: Store,
  o: { targets: ReplyTargets; bot: ChatRepliesDeps['bot']; userNames: UserNames; messenger: Pick<Messenger, 'replyTo'>; clock: Clock; logger: Logger; sourceTimeoutMs?: number },
): ChatReplies {
  return new ChatReplies({
    ...o,
    replies: store.collection<ChatReply>(CHAT_REPLIES),
    cards: store.collection<PostedCard>(POSTED_CARDS),
    cardByMessage: store.keys<string>(CARD_BY_MESSAGE),
    echoes: store.keys<true>(REPLY_ECHOES),
  });
}

/** The "new reply" reminder, for the poller run: `(pollerId, itemId, replies) → what was posted`. */
export type PostNewReplies = (pollerId: string, itemId: string, replies: readonly FeedReply[]) => Promise<ReminderResult>;

export function replyRemindersFor(store: Store, o: { messenger: Pick<Messenger, 'replyTo'>; clock: Clock; logger: Logger }): PostNewReplies {
  const d = {
    ...o,
    cards: store.collection<PostedCard>(POSTED_CARDS),
    reminders: store.keys<ReminderMark>(REPLY_REMINDERS),
    echoes: store.keys<true>(REPLY_ECHOES),
  };
  return (pollerId, itemId, replies) => postNewReplies(d, pollerId, itemId, replies);
}

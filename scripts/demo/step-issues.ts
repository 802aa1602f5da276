import type { FakeIssue } from '../../test/fake-guance/fake-guance.js';
import type { StoredMessage } from '../../test/lark-emulator/emulator.js';
import { messageReceiveEvent, sendLarkEvent } from '../../test/lark-emulator/event-sender.js';
import { DEMO } from './settings.js';
import { callApi, until, type StepContext } from './step-context.js';
import { brief, cardAsText } from './transcript.js';

const ALICE = { openId: 'ou_alice_demo', name: 'Alice Zhang' };

/**
 * Job 4: a poller. The fake Guance has two new issues in its on-call channel; the poller flow
 * (every two seconds) posts each as a card in the on-call chat — once, however many runs see it.
 */
export async function pollerStep(ctx: StepContext): Promise<FakeIssue[]> {
  const { w, t } = ctx;
  const now = Math.floor(Date.now() / 1000);
  const issues = [
    w.guance.addIssue({ name: 'Disk usage 91% on db-1', level: 'system_level_1', resource: 'db-1', description: '/var/lib/postgresql is 91% full and growing 2%/hour', createAt: now - 40 }),
    w.guance.addIssue({ name: 'Checkout 5xx rate above 2%', level: 'system_level_0', resource: 'svc-checkout', description: '5xx rate 3.4% over the last 5 minutes', createAt: now - 20 }),
  ];
  t.line('·', `Guance (fake) now holds two new issues in channel "on-call": ${issues.map((i) => `"${i.name}"`).join(', ')}`);
  t.line('·', 'the poller flow guance-issues runs every 2 s: it asks Guance for the window since its last cursor');

  const cards = await until(ctx, 'both issues posted as cards in the on-call chat', () => {
    const found = issueCards(ctx);
    return issues.every((i) => found.some((c) => c.title.endsWith(i.name))) ? found : undefined;
  });
  const list = w.guance.callsTo('POST', '/api/v1/issue/list')[0]!;
  t.line('·', `service → Guance: POST /api/v1/issue/list (DF-API-KEY header)\n${brief(list.body)}`);
  for (const c of cards) {
    t.line('✓', `card posted to ${DEMO.oncallChat}:`);
    t.block(cardAsText(c.card));
  }

  // The next runs see the same issues again (their windows overlap): nothing is posted twice.
  const runsBefore = await pollerRuns(ctx);
  const pollers = await until(ctx, 'two more poller runs', async () => {
    const p = await callApi(ctx, '/api/pollers');
    return p.json?.pollers?.[0]?.counts?.runs >= runsBefore + 2 ? p.json.pollers[0] : undefined;
  });
  const last = pollers.lastRun;
  t.line('↔', `client → GET /api/pollers → guance-issues: ${pollers.counts.runs} runs, ${pollers.counts.posted} cards posted; last run listed ${last.listed}, already posted ${last.alreadyPosted}, posted ${last.posted}`);
  const now2 = issueCards(ctx);
  if (now2.length !== issues.length) throw new Error(`expected ${issues.length} issue cards in the chat, found ${now2.length}`);
  t.line('✓', 'each issue is in the chat exactly once');
  return issues;
}

/**
 * Job 5: @bot replies. Alice answers the first card in its thread, mentioning the bot; the comment
 * goes to Guance under her name and the bot says so in the thread.
 */
export async function replyStep(ctx: StepContext, issue: FakeIssue): Promise<void> {
  const { w, t } = ctx;
  w.chat.users.set(ALICE.openId, ALICE.name);
  const card = issueCards(ctx).find((c) => c.title.endsWith(issue.name))!;
  const text = 'freed 40 GB of old WAL, disk at 51% now';
  const message = w.chat.userSays({ chatId: DEMO.oncallChat, senderOpenId: ALICE.openId, text: `@_user_1 ${text}`, replyTo: card.message.message_id, inThread: true });
  t.line('·', `Alice, in the thread of the card "${issue.name}": "@${w.lark.bot.name} ${text}"`);
  const event = messageReceiveEvent({ token: DEMO.verificationToken, appId: DEMO.appId, message, senderOpenId: ALICE.openId, mentions: [w.lark.bot] });
  t.line('→', 'Lark → POST /api/v1/lark/callback: im.message.receive_v1 (signed, AES-encrypted)');
  const answer = await sendLarkEvent(`${w.service.url}/api/v1/lark/callback`, event, { encryptKey: DEMO.encryptKey });
  t.line('←', `${answer.status} ${brief(answer.body ?? '')}`);
  if (answer.status !== 200) throw new Error(`the service answered the message event with ${answer.status}`);

  const comment = await until(ctx, 'the comment reaching Guance', () => w.guance.callsTo('POST', '/api/v1/issue/reply/create')[0]);
  t.line('·', `service → Guance: POST /api/v1/issue/reply/create\n${brief(comment.body)}`);
  const reply = await until(ctx, "the bot's answer in the thread", () => w.lark.repliesTo(message.message_id)[0]);
  t.line('✓', `the bot, in the thread: ${JSON.parse(reply.content).text}`);
  if (!w.guance.replies.some((r) => r.issueUUID === issue.uuid && r.content.includes(text))) throw new Error('Guance did not keep the comment');
}

function issueCards(ctx: StepContext): Array<{ message: StoredMessage; card: any; title: string }> {
  return [...ctx.w.lark.messages.values()]
    .filter((m) => m.chat_id === DEMO.oncallChat && m.msg_type === 'interactive')
    .map((message) => {
      const card = JSON.parse(message.content);
      return { message, card, title: String(card?.header?.title?.content ?? '') };
    });
}

async function pollerRuns(ctx: StepContext): Promise<number> {
  const p = await callApi(ctx, '/api/pollers');
  return Number(p.json?.pollers?.[0]?.counts?.runs ?? 0);
}

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeGuance, type FakeGuance, type FakeIssue } from './fake-guance/fake-guance.js';
import { ChatEmulation } from './lark-emulator/chat.js';
import { startLarkEmulator, type LarkEmulator, type StoredMessage } from './lark-emulator/emulator.js';
import { messageReceiveEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import { GUANCE_KEY, guanceFlow, ONCALL_CHAT, POLLER_APP_ID, POLLER_APP_SECRET, TEMPLATES } from './helpers/poller-harness.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

/**
 * Issue 10's "Done when" with both halves real: src/main.ts in a child process polls a fake
 * Guance every second and posts to the Lark emulator; it is killed with SIGKILL and started again
 * while issues keep arriving; then members comment from the chat — in a card's thread and with
 * `@bot #id# text` — and the comments reach Guance, each once, however often Lark delivers the
 * message and across another SIGKILL.
 */
const ENCRYPT_KEY = 'e2e-encrypt-key-0123456';
const VERIFICATION_TOKEN = 'e2e-verification-token';
const ALICE = { openId: 'ou_alice_e2e', name: 'Alice Zhang' };
const BOB = { openId: 'ou_bob_e2e', name: 'Bob Li' };

let lark: LarkEmulator;
let guance: FakeGuance;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await lark?.close();
  await guance?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

const nowSec = () => Math.floor(Date.now() / 1000);
/** The issue cards in the chat: title (without the level) → the card messages with it. */
function cardsByTitle(): Map<string, StoredMessage[]> {
  const out = new Map<string, StoredMessage[]>();
  for (const m of lark.messages.values()) {
    if (m.chat_id !== ONCALL_CHAT || m.msg_type !== 'interactive') continue;
    const title = (JSON.parse(m.content).header.title.content as string).replace(/^\[P\d\] /, '');
    out.set(title, [...(out.get(title) ?? []), m]);
  }
  return out;
}
const allPosted = (issues: FakeIssue[]) => issues.every((i) => cardsByTitle().has(i.name));
const answersTo = (m: StoredMessage) => lark.repliesTo(m.message_id).map((r) => JSON.parse(r.content).text as string);

describe('pollers and @bot replies, end to end in a child process', () => {
  it('each issue once across SIGKILLs; thread and #id# replies reach Guance as comments naming the author, once each however often delivered', async () => {
    lark = await startLarkEmulator({ apps: { [POLLER_APP_ID]: POLLER_APP_SECRET } });
    const chat = new ChatEmulation(lark);
    chat.users.set(ALICE.openId, ALICE.name);
    chat.users.set(BOB.openId, BOB.name);
    guance = await startFakeGuance(GUANCE_KEY);
    const dataDir = await tempDir();
    const flowsDir = await tempDir('lark-bridge-e2e-flows-');
    dirs.push(dataDir, flowsDir);
    await writeFile(join(flowsDir, 'guance-issues.json'), JSON.stringify(guanceFlow(guance.url, { schedule: '* * * * * *' })));
    const env = {
      DATA_DIR: dataDir,
      FLOWS_DIR: flowsDir,
      TEMPLATES_DIR: TEMPLATES,
      API_TOKENS: TOKEN,
      LARK_APP_ID: POLLER_APP_ID,
      LARK_APP_SECRET: POLLER_APP_SECRET,
      LARK_DOMAIN: lark.url,
      LARK_ENCRYPT_KEY: ENCRYPT_KEY,
      LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
      TEST_GUANCE_KEY: GUANCE_KEY,
    };
    const start = async () => {
      const p = await spawnService(env);
      procs.push(p);
      return p;
    };
    const issues: FakeIssue[] = [];
    const arrive = (n: number, tag: string) => {
      for (let i = 0; i < n; i++) issues.push(guance.addIssue({ name: `${tag}-${i} disk full on db-${i}`, createAt: nowSec() - 1 }));
    };

    // Issues arrive over time; the service is killed (SIGKILL) and started again in between.
    let service = await start();
    arrive(3, 'a');
    await waitFor(() => allPosted(issues), 15_000);
    arrive(3, 'b');
    expect(await service.kill('SIGKILL')).toBeNull();
    arrive(2, 'c'); // while it is down
    service = await start();
    await waitFor(() => allPosted(issues), 15_000);

    // A member replies in a card's thread, mentioning the bot.
    const deliver = (message: StoredMessage, from = ALICE) =>
      sendLarkEvent(`${service.url}/api/v1/lark/callback`, messageReceiveEvent({ token: VERIFICATION_TOKEN, appId: POLLER_APP_ID, message, senderOpenId: from.openId, mentions: [lark.bot] }), {
        encryptKey: ENCRYPT_KEY,
      });
    const [first, second, third] = issues;
    const firstCard = cardsByTitle().get(first!.name)![0]!;
    const inThread = chat.userSays({ chatId: ONCALL_CHAT, senderOpenId: ALICE.openId, text: '@_user_1 restarted the cleaner, watching it', replyTo: firstCard.message_id, inThread: true });
    expect((await deliver(inThread)).status).toBe(200);
    await waitFor(() => answersTo(inThread).length > 0, 10_000);
    expect(answersTo(inThread)).toEqual([`✅ Comment added to "${first!.name}" (#${first!.uuid}#) as Alice Zhang.`]);
    expect(lark.messages.get(lark.repliesTo(inThread.message_id)[0]!.message_id)!.root_id).toBe(firstCard.message_id); // in the card's thread

    // `@bot #id# text` in the group.
    const byId = chat.userSays({ chatId: ONCALL_CHAT, senderOpenId: BOB.openId, text: `@_user_1 #${second!.uuid}# ack, rolling back` });
    expect((await deliver(byId, BOB)).status).toBe(200);
    await waitFor(() => answersTo(byId).length > 0, 10_000);
    expect(answersTo(byId)).toEqual([`✅ Comment added to "${second!.name}" (#${second!.uuid}#) as Bob Li.`]);

    // Lark delivers both messages again under new event ids, before and after another SIGKILL.
    expect((await deliver(byId, BOB)).status).toBe(200);
    expect(await service.kill('SIGKILL')).toBeNull();
    service = await start();
    expect((await deliver(inThread)).status).toBe(200);
    expect((await deliver(byId, BOB)).status).toBe(200);
    // A last comment after the restart, to know the service has handled everything before it.
    const last = chat.userSays({ chatId: ONCALL_CHAT, senderOpenId: ALICE.openId, text: `@_user_1 #${third!.uuid}# false alarm` });
    expect((await deliver(last)).status).toBe(200);
    await waitFor(() => answersTo(last).length > 0, 10_000);

    expect(guance.replies).toEqual([
      { issueUUID: first!.uuid, content: 'Alice Zhang (Lark): restarted the cleaner, watching it', extend: {} },
      { issueUUID: second!.uuid, content: 'Bob Li (Lark): ack, rolling back', extend: {} },
      { issueUUID: third!.uuid, content: 'Alice Zhang (Lark): false alarm', extend: {} },
    ]);
    expect(guance.callsTo('POST', '/api/v1/issue/reply/create')).toHaveLength(3);
    expect([inThread, byId, last].map((m) => answersTo(m).length)).toEqual([1, 1, 1]);

    // A few more ticks: every issue is in the chat exactly once.
    const runs = (await api(service.url, '/api/pollers')).json.pollers[0].counts.runs as number;
    await waitFor(async () => (await api(service.url, '/api/pollers')).json.pollers[0].counts.runs >= runs + 2, 10_000);
    const cards = cardsByTitle();
    expect([...cards.keys()].sort()).toEqual(issues.map((i) => i.name).sort());
    expect([...cards.values()].every((c) => c.length === 1)).toBe(true);

    expect(await service.kill('SIGTERM')).toBe(0);
  }, 120_000);
});

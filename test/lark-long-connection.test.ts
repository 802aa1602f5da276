import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../src/clock.js';
import { createEventDispatcher, startLongConnection, type ApprovalTaskEvent, type CardAction } from '../src/lark/event-intake.js';
import type { SeenMark } from '../src/lark/seen-events.js';
import { silentLogger } from '../src/log.js';
import { openJournalStore as openJsonFileStore } from '../src/store/open-store.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { approvalTaskEvent, cardActionEvent } from './lark-emulator/event-sender.js';
import { holdFramesUntilListening } from '../src/lark/ws-hold-frames.js';
import { LongConnection } from './lark-emulator/long-connection.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

/**
 * startLongConnection in this process, against the emulator's long-connection endpoint: the SDK's
 * WSClient opens with our app's credentials and feeds the one dispatcher; close() ends it.
 * (test/long-connection.test.ts runs the whole service in ws mode as a child process.)
 */
const APP_ID = 'cli_a1b2c3d4e5f6dddd';
const APP_SECRET = 'long-connection-secret';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.restoreAllMocks();
});

/** The emulator with its long-connection endpoint, a store, and a dispatcher that records what it handled. */
async function startWorld() {
  const lark: LarkEmulator = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  cleanups.push(() => lark.close());
  const lc = new LongConnection(lark, { [APP_ID]: APP_SECRET });
  cleanups.push(() => lc.close());
  const dir = await tempDir('lark-ws-');
  cleanups.push(() => removeDir(dir));
  const clock: Clock = { now: () => Date.now(), sleep: async () => undefined };
  const store = await openJsonFileStore({ dir, clock });
  cleanups.push(() => store.close());
  const tasks: ApprovalTaskEvent[] = [];
  const presses: CardAction[] = [];
  const dispatcher = createEventDispatcher({
    seenEvents: store.keys<SeenMark>('lark-events'),
    clock,
    logger: silentLogger(),
    handlers: {
      async approvalTask(ev) {
        tasks.push(ev);
      },
      async cardAction(action) {
        presses.push(action);
        return { ok: true, message: 'Retrying execute…' };
      },
    },
  });
  const connect = () => {
    const connection = startLongConnection(APP_ID, APP_SECRET, lark.url, dispatcher, silentLogger());
    cleanups.push(() => connection.close());
    return connection;
  };
  return { lc, tasks, presses, connect };
}

describe('startLongConnection', () => {
  it('opens the SDK long connection with the app’s credentials, feeds the dispatcher, and closes', async () => {
    // Nothing of the SDK's reaches the console: its messages go through our logger (sdkLogger).
    const chatter = (['log', 'info', 'debug', 'warn', 'error'] as const).map((m) => vi.spyOn(console, m).mockImplementation(() => undefined));
    const { lc, tasks, presses, connect } = await startWorld();
    const connection = connect();
    await waitFor(() => lc.clients.size === 1, 10_000);
    expect(lc.endpointCalls).toEqual([{ AppID: APP_ID }]);

    const event = approvalTaskEvent({ token: 't', appId: APP_ID, approvalCode: 'AC', instanceCode: 'WS-1', taskId: 'ws-task', userId: 'assistant' });
    expect(await lc.pushEvent(event)).toMatchObject({ code: 200 });
    expect(await lc.pushEvent(event)).toMatchObject({ code: 200 });
    expect(tasks).toEqual([{ approvalCode: 'AC', instanceCode: 'WS-1', taskId: 'ws-task', status: 'PENDING', userId: 'assistant', openId: 'ou_assistant' }]);
    const press = cardActionEvent({ token: 't', appId: APP_ID, operatorOpenId: 'ou_boss', messageId: 'om_1', chatId: 'oc_1', value: { action: 'retry' } });
    expect(await lc.pushEvent(press)).toEqual({ code: 200, data: { toast: { type: 'success', content: 'Retrying execute…' } } });
    expect(presses).toHaveLength(1);

    connection.close();
    await waitFor(() => lc.clients.size === 0, 10_000);
    for (const spy of chatter) expect(spy).not.toHaveBeenCalled();
  });

  it('handles and answers an event Lark pushes the moment the connection opens', async () => {
    // The SDK attaches its message listener a few microtasks after 'open'; without
    // ws-hold-frames this frame is dropped unanswered and the push times out.
    const { lc, tasks, connect } = await startWorld();
    const event = approvalTaskEvent({ token: 't', appId: APP_ID, approvalCode: 'AC', instanceCode: 'WS-EARLY', taskId: 'early', userId: 'assistant' });
    const answer = lc.pushOnAccept(event);
    connect();
    expect(await answer).toMatchObject({ code: 200 });
    expect(tasks.map((t) => t.instanceCode)).toEqual(['WS-EARLY']);
  });

  it('leaves a client without the SDK member it wraps untouched', () => {
    expect(holdFramesUntilListening({} as never)).toBe(false);
    const client = { wsConfig: { getWSInstance: () => null } };
    expect(holdFramesUntilListening(client as never)).toBe(false);
    expect(Object.keys(client.wsConfig)).toEqual(['getWSInstance']);
  });
});

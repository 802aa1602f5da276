import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../src/clock.js';
import { listRoutes } from '../src/http/route.js';
import { createEventDispatcher, larkIntakeRoutes, type ApprovalTaskEvent, type CardAction, type IntakeOptions } from '../src/lark/event-intake.js';
import type { SeenMark } from '../src/lark/seen-events.js';
import { silentLogger } from '../src/log.js';
import { openJournalStore as openJsonFileStore } from '../src/store/open-store.js';
import type { Store } from '../src/store/store.js';
import { approvalTaskEvent, cardActionEvent, legacyCardAction, postSigned, signedRequest } from './lark-emulator/event-sender.js';
import { startIntake, type Intake } from './helpers/lark-intake-app.js';
import { removeDir, tempDir } from './helpers/test-app.js';

/**
 * The dispatcher both transports feed (what the long connection hands it is not signature-checked
 * by us, so it checks ids itself), what it hands the handlers, and the two Lark routes' answers
 * for what is verified but not for them.
 */
const TOKEN = 'dispatch-verification-token';
const KEY = 'dispatch-encrypt-key';
const APP = 'cli_a1b2c3d4e5f6cccc';

let dir: string;
let store: Store;
const tasks: ApprovalTaskEvent[] = [];
const presses: CardAction[] = [];
let pressOk = true;
const clock: Clock = { now: () => Date.parse('2026-11-20T10:00:00Z'), sleep: async () => undefined };
let options: IntakeOptions;

beforeAll(async () => {
  dir = await tempDir('lark-dispatch-');
  store = await openJsonFileStore({ dir, clock });
  options = {
    verificationToken: TOKEN,
    seenEvents: store.keys<SeenMark>('lark-events'),
    clock,
    logger: silentLogger(),
    handlers: {
      async approvalTask(ev) {
        tasks.push(ev);
      },
      async cardAction(action) {
        presses.push(action);
        return { ok: pressOk, message: pressOk ? 'Retrying execute…' : 'You are not allowed to retry this request.' };
      },
    },
  };
});
afterAll(async () => {
  await store.close();
  await removeDir(dir);
});
afterEach(() => {
  tasks.length = 0;
  presses.length = 0;
  pressOk = true;
  vi.restoreAllMocks();
});

const press = (value: unknown, over: Record<string, unknown> = {}) => {
  const e = cardActionEvent({ token: TOKEN, appId: APP, operatorOpenId: 'ou_boss', messageId: 'om_1', chatId: 'oc_1', value });
  return { ...e, event: { ...e.event, ...over } };
};

describe('the Lark routes', () => {
  it('are POST /api/v1/lark/callback and /api/v1/lark/card, guarded by lark-signature', () => {
    expect(listRoutes(larkIntakeRoutes(options, createEventDispatcher(options)))).toEqual([
      { method: 'POST', path: '/api/v1/lark/callback', guard: 'lark-signature' },
      { method: 'POST', path: '/api/v1/lark/card', guard: 'lark-signature' },
    ]);
  });
});

describe('createEventDispatcher', () => {
  it('hands an approval task on with its fields, empty or absent when Lark leaves them out', async () => {
    const d = createEventDispatcher(options);
    const full = approvalTaskEvent({ token: TOKEN, appId: APP, approvalCode: 'AC', instanceCode: 'I-1', taskId: 't-1', userId: 'assistant', openId: 'ou_assistant', uuid: 'u-full' });
    expect(await d.invoke(full, { needCheck: false })).toBeUndefined();
    const bare = { uuid: 'u-bare', token: TOKEN, type: 'event_callback', event: { type: 'approval_task' } };
    await d.invoke(bare, { needCheck: false });
    expect(tasks).toEqual([
      { approvalCode: 'AC', instanceCode: 'I-1', taskId: 't-1', status: 'PENDING', userId: 'assistant', openId: 'ou_assistant' },
      { approvalCode: '', instanceCode: '', taskId: '', status: '', userId: undefined, openId: undefined },
    ]);
  });

  it('runs a task and a press once per event id', async () => {
    const d = createEventDispatcher(options);
    const ev = approvalTaskEvent({ token: TOKEN, appId: APP, approvalCode: 'AC', instanceCode: 'I-2', taskId: 't-2', userId: 'assistant', uuid: 'u-once' });
    await d.invoke(ev, { needCheck: false });
    await d.invoke(ev, { needCheck: false });
    expect(tasks).toHaveLength(1);
    const p = press({ action: 'retry' });
    expect(await d.invoke(p, { needCheck: false })).toEqual({ toast: { type: 'success', content: 'Retrying execute…' } });
    expect(await d.invoke(p, { needCheck: false })).toEqual({});
    expect(presses).toHaveLength(1);
  });

  it('refuses an event without a usable id (the long connection is not checked by our verifier)', async () => {
    const d = createEventDispatcher(options);
    for (const uuid of [undefined, '', 42]) {
      const ev = { uuid, token: TOKEN, type: 'event_callback', event: { type: 'approval_task', task_id: 't-x' } };
      await expect(d.invoke(ev, { needCheck: false }), String(uuid)).rejects.toThrow('event has neither header.event_id nor uuid');
    }
    const noId = press({ action: 'retry' });
    await expect(d.invoke({ ...noId, header: { ...noId.header, event_id: '' } }, { needCheck: false })).rejects.toThrow('event has neither header.event_id nor uuid');
    expect(tasks).toEqual([]);
    expect(presses).toEqual([]);
  });

  it('hands a press on with its value only when that is an object, and with who pressed on which message', async () => {
    const d = createEventDispatcher(options);
    for (const value of ['retry', ['retry'], null, 3]) await d.invoke(press(value), { needCheck: false });
    await d.invoke(press({ action: 'retry', runId: 'R' }), { needCheck: false });
    await d.invoke(press(undefined, { action: undefined }), { needCheck: false });
    expect(presses.map((p) => p.value)).toEqual([{}, {}, {}, {}, { action: 'retry', runId: 'R' }, {}]);
    expect(presses.every((p) => p.operatorOpenId === 'ou_boss' && p.messageId === 'om_1')).toBe(true);
  });

  it('shows a refused press as an error toast', async () => {
    pressOk = false;
    expect(await createEventDispatcher(options).invoke(press({ action: 'retry' }), { needCheck: false })).toEqual({
      toast: { type: 'error', content: 'You are not allowed to retry this request.' },
    });
  });

  it('keeps the SDK’s own console chatter off the service output (our logger is the only one)', async () => {
    const spies = (['log', 'info', 'warn', 'debug'] as const).map((m) => vi.spyOn(console, m).mockImplementation(() => undefined));
    const d = createEventDispatcher(options);
    larkIntakeRoutes(options, d);
    await d.invoke({ schema: '2.0', header: { event_id: 'e-other', token: TOKEN, event_type: 'contact.user.updated_v3' }, event: {} }, { needCheck: false });
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
  });
});

describe('the routes, for what is verified but is not for them', () => {
  // One per test, in beforeEach: what builds the routes then runs (and fails) inside each test.
  let current: Intake | undefined;
  beforeEach(async () => {
    current = await startIntake({ encryptKey: KEY, verificationToken: TOKEN });
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  const intake = async () => current!;

  it('answer the event URL’s challenge', async () => {
    const s = await intake();
    const r = await postSigned(`${s.url}/api/v1/lark/callback`, signedRequest({ type: 'url_verification', challenge: 'c-9', token: TOKEN }, { encryptKey: KEY, noSignature: true }));
    expect(r).toEqual({ status: 200, body: { challenge: 'c-9' } });
  });

  it('acknowledge a signed event of a type nobody handles with an empty 200', async () => {
    const s = await intake();
    const other = { schema: '2.0', header: { event_id: 'e-im', token: TOKEN, event_type: 'contact.user.updated_v3', create_time: '0', app_id: APP }, event: { message: { message_id: 'om_x' } } };
    expect(await postSigned(`${s.url}/api/v1/lark/callback`, signedRequest(other, { encryptKey: KEY }))).toEqual({ status: 200, body: {} });
    expect(s.tasks).toEqual([]);
    expect(s.presses).toEqual([]);
  });

  it('refuse, with a 400, a signed legacy card callback that carries no card action (the SDK would take it as an app_ticket)', async () => {
    const s = await intake();
    const body = { ...legacyCardAction({ operatorOpenId: 'ou_boss', messageId: 'om_1', value: { action: 'retry' } }), event: { type: 'app_ticket', app_id: APP } };
    const r = await postSigned(`${s.url}/api/v1/lark/card`, signedRequest(body, { legacyToken: TOKEN }));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toBe('the card callback carries no card action');
    expect(s.presses).toEqual([]);
  });

  it('show a refused legacy press as an error toast', async () => {
    const s = await intake();
    s.pressAnswer = () => ({ ok: false, message: 'You are not allowed to retry this request.' });
    const body = legacyCardAction({ operatorOpenId: 'ou_intern', messageId: 'om_2', value: { action: 'retry' } });
    expect(await postSigned(`${s.url}/api/v1/lark/card`, signedRequest(body, { legacyToken: TOKEN }))).toEqual({
      status: 200,
      body: { toast: { type: 'error', content: 'You are not allowed to retry this request.' } },
    });
    expect(s.presses).toEqual([{ value: { action: 'retry' }, operatorOpenId: 'ou_intern', messageId: 'om_2' }]);
    s.pressAnswer = undefined;
  });
});

import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../src/errors.js';
import { readReceivedMessage } from '../src/lark/received-message.js';

/** im.message.receive_v1 as the SDK hands it over (header and event fields flattened): what is read, what is refused. */
function event(over: { message?: Record<string, unknown>; sender?: Record<string, unknown>; [k: string]: unknown } = {}) {
  const { message, sender, ...rest } = over;
  return {
    schema: '2.0',
    event_id: 'ev_0123',
    event_type: 'im.message.receive_v1',
    tenant_key: 'tenant',
    sender: { sender_id: { open_id: 'ou_sender', user_id: 'u1', union_id: 'on_1' }, sender_type: 'user', tenant_key: 'tenant', ...sender },
    message: {
      message_id: 'om_0123',
      root_id: 'om_root',
      parent_id: 'om_parent',
      thread_id: 'omt_thread',
      create_time: '1700000000000',
      chat_id: 'oc_chat',
      chat_type: 'group',
      message_type: 'text',
      content: '{"text":"@_user_1 #item# hello"}',
      mentions: [
        { key: '@_user_1', id: { open_id: 'ou_bot', union_id: 'on_b' }, name: 'bridge', tenant_key: 'tenant' },
        { key: '@_user_2', id: { user_id: 'u2' }, name: '张三' },
      ],
      ...message,
    },
    ...rest,
  };
}

function refusal(data: unknown): string {
  try {
    readReceivedMessage(data);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInput);
    return (err as Error).message;
  }
  throw new Error('not refused');
}

describe('readReceivedMessage', () => {
  it('reads every field Lark documents', () => {
    expect(readReceivedMessage(event())).toEqual({
      eventId: 'ev_0123',
      messageId: 'om_0123',
      rootId: 'om_root',
      parentId: 'om_parent',
      threadId: 'omt_thread',
      chatId: 'oc_chat',
      chatType: 'group',
      messageType: 'text',
      content: '{"text":"@_user_1 #item# hello"}',
      mentions: [
        { key: '@_user_1', openId: 'ou_bot', name: 'bridge' },
        { key: '@_user_2', openId: undefined, name: '张三' },
      ],
      senderOpenId: 'ou_sender',
      senderType: 'user',
    });
  });

  it('reads a message outside any thread, without mentions, from a sender without ids (an app)', () => {
    const e = event({ sender: { sender_id: undefined, sender_type: 'app' }, message: { root_id: undefined, parent_id: undefined, thread_id: undefined, mentions: undefined, chat_type: 'p2p' } });
    expect(readReceivedMessage(e)).toEqual({
      eventId: 'ev_0123',
      messageId: 'om_0123',
      rootId: undefined,
      parentId: undefined,
      threadId: undefined,
      chatId: 'oc_chat',
      chatType: 'p2p',
      messageType: 'text',
      content: '{"text":"@_user_1 #item# hello"}',
      mentions: [],
      senderOpenId: undefined,
      senderType: 'app',
    });
  });

  it('reads empty ids as absent: "" is no root, no parent, no thread, no open_id', () => {
    const e = event({ sender: { sender_id: { open_id: '' } }, message: { root_id: '', parent_id: '', thread_id: '', mentions: [{ key: '@_user_1', id: { open_id: '' } }] } });
    const m = readReceivedMessage(e);
    expect(m.rootId).toBeUndefined();
    expect(m.parentId).toBeUndefined();
    expect(m.threadId).toBeUndefined();
    expect(m.senderOpenId).toBeUndefined();
    expect(m.mentions).toEqual([{ key: '@_user_1', openId: undefined, name: '' }]);
    expect(Object.keys(m)).toContain('rootId');
  });

  it('gives a mention without a name the empty name, and one without ids no open_id', () => {
    expect(readReceivedMessage(event({ message: { mentions: [{ key: '@_user_9' }] } })).mentions).toEqual([{ key: '@_user_9', openId: undefined, name: '' }]);
    expect(readReceivedMessage(event({ message: { mentions: [] } })).mentions).toEqual([]);
  });

  it('takes single-character ids (only empty ones are refused)', () => {
    const m = readReceivedMessage(event({ event_id: 'e', message: { message_id: 'm', chat_id: 'c' } }));
    expect([m.eventId, m.messageId, m.chatId]).toEqual(['e', 'm', 'c']);
  });

  const refused: Array<[string, unknown, string]> = [
    ['no object at all', null, 'im.message.receive_v1 event: (event): '],
    ['a string', 'event', 'im.message.receive_v1 event: (event): '],
    ['no event_id', event({ event_id: undefined }), 'im.message.receive_v1 event: event_id: '],
    ['an empty event_id', event({ event_id: '' }), 'im.message.receive_v1 event: event_id: '],
    ['no sender', { ...event(), sender: undefined }, 'im.message.receive_v1 event: sender: '],
    ['no sender_type', event({ sender: { sender_type: undefined } }), 'im.message.receive_v1 event: sender.sender_type: '],
    ['a sender_id that is not an object', event({ sender: { sender_id: 'ou_x' } }), 'im.message.receive_v1 event: sender.sender_id: '],
    ['an open_id that is a number', event({ sender: { sender_id: { open_id: 7 } } }), 'im.message.receive_v1 event: sender.sender_id.open_id: '],
    ['a user_id that is a number', event({ sender: { sender_id: { user_id: 7 } } }), 'im.message.receive_v1 event: sender.sender_id.user_id: '],
    ['a union_id that is a number', event({ sender: { sender_id: { union_id: 7 } } }), 'im.message.receive_v1 event: sender.sender_id.union_id: '],
    ['no message', { ...event(), message: undefined }, 'im.message.receive_v1 event: message: '],
    ['no message_id', event({ message: { message_id: undefined } }), 'im.message.receive_v1 event: message.message_id: '],
    ['an empty message_id', event({ message: { message_id: '' } }), 'im.message.receive_v1 event: message.message_id: '],
    ['a root_id that is a number', event({ message: { root_id: 1 } }), 'im.message.receive_v1 event: message.root_id: '],
    ['a parent_id that is a number', event({ message: { parent_id: 1 } }), 'im.message.receive_v1 event: message.parent_id: '],
    ['a thread_id that is a number', event({ message: { thread_id: 1 } }), 'im.message.receive_v1 event: message.thread_id: '],
    ['no chat_id', event({ message: { chat_id: undefined } }), 'im.message.receive_v1 event: message.chat_id: '],
    ['an empty chat_id', event({ message: { chat_id: '' } }), 'im.message.receive_v1 event: message.chat_id: '],
    ['no chat_type', event({ message: { chat_type: undefined } }), 'im.message.receive_v1 event: message.chat_type: '],
    ['no message_type', event({ message: { message_type: undefined } }), 'im.message.receive_v1 event: message.message_type: '],
    ['no content', event({ message: { content: undefined } }), 'im.message.receive_v1 event: message.content: '],
    ['content that is an object', event({ message: { content: { text: 'hi' } } }), 'im.message.receive_v1 event: message.content: '],
    ['mentions that are not a list', event({ message: { mentions: { key: '@_user_1' } } }), 'im.message.receive_v1 event: message.mentions: '],
    ['a mention without a key', event({ message: { mentions: [{ name: 'x' }] } }), 'im.message.receive_v1 event: message.mentions.0.key: '],
    ['a mention whose name is a number', event({ message: { mentions: [{ key: '@_user_1', name: 1 }] } }), 'im.message.receive_v1 event: message.mentions.0.name: '],
    ['a mention whose open_id is a number', event({ message: { mentions: [{ key: 'k' }, { key: '@_user_1', id: { open_id: 1 } }] } }), 'im.message.receive_v1 event: message.mentions.1.id.open_id: '],
  ];
  for (const [name, data, prefix] of refused) {
    it(`refuses ${name} as bad input naming the field`, () => {
      const message = refusal(data);
      if (prefix) expect(message.startsWith(prefix), message).toBe(true);
      expect(message.length).toBeGreaterThan(prefix.length); // and what is wrong with it
    });
  }

  it('names the first problem and what is wrong with it', () => {
    expect(refusal(event({ message: { message_id: '' } }))).toMatch(/^im\.message\.receive_v1 event: message\.message_id: .*(1|short|least)/i);
    expect(refusal(event({ sender: { sender_type: 5 } }))).toMatch(/^im\.message\.receive_v1 event: sender\.sender_type: .*string/i);
    expect(refusal(null)).toMatch(/^im\.message\.receive_v1 event: \(event\): .*object/i);
  });
});

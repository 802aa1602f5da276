import { createCipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';

/** Encrypts like Lark: AES-256-CBC, key = SHA-256(encrypt key), random IV prepended, base64. */
export function larkEncrypt(plain: string, encryptKey: string): string {
  const key = createHash('sha256').update(encryptKey).digest();
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  return Buffer.concat([iv, cipher.update(plain, 'utf8'), cipher.final()]).toString('base64');
}

export function larkSign(timestamp: string, nonce: string, encryptKey: string, raw: string): string {
  return createHash('sha256').update(timestamp + nonce + encryptKey + raw).digest('hex');
}

/** Legacy card callbacks: hex SHA-1 over timestamp + nonce + verification token + raw body. */
export function larkSignLegacy(timestamp: string, nonce: string, verificationToken: string, raw: string): string {
  return createHash('sha1').update(timestamp + nonce + verificationToken + raw).digest('hex');
}

export interface SendOptions {
  encryptKey?: string;
  /** Sign a legacy card callback: SHA-1 with this verification token (over the encrypted body when a key is given). */
  legacyToken?: string;
  /** Sign with the encrypt key but send the body unencrypted (2.0 callbacks may come plain). */
  plain?: boolean;
  /** The exact plain bytes, instead of JSON.stringify(payload). */
  rawBody?: string;
  /** Override the signature (forgery tests). */
  signature?: string;
  timestampSec?: number;
  nonce?: string;
  noSignature?: boolean;
  /** The bytes actually sent, from the bytes that were signed (re-serialisation tests). */
  alterBody?: (signed: string) => string;
  /** Extra headers, appended (a name given again repeats the header). */
  extraHeaders?: Array<[string, string]>;
}

export interface SignedRequest {
  raw: string;
  headers: Array<[string, string]>;
}

/** Builds the exact request Lark would send: body bytes (encrypted when a key is given) and signature headers. */
export function signedRequest(payload: unknown, o: SendOptions = {}): SignedRequest {
  const text = o.rawBody ?? JSON.stringify(payload);
  const signed = o.encryptKey && !o.plain ? JSON.stringify({ encrypt: larkEncrypt(text, o.encryptKey) }) : text;
  const timestamp = String(o.timestampSec ?? Math.floor(Date.now() / 1000));
  const nonce = o.nonce ?? randomBytes(8).toString('hex');
  const headers: Array<[string, string]> = [['content-type', 'application/json']];
  if (!o.noSignature) {
    const signature = o.signature ?? (o.legacyToken ? larkSignLegacy(timestamp, nonce, o.legacyToken, signed) : larkSign(timestamp, nonce, o.encryptKey ?? '', signed));
    headers.push(['x-lark-request-timestamp', timestamp], ['x-lark-request-nonce', nonce], ['x-lark-signature', signature]);
  }
  return { raw: o.alterBody ? o.alterBody(signed) : signed, headers: [...headers, ...(o.extraHeaders ?? [])] };
}

/** POSTs a request built by signedRequest (again, for a replay of the same bytes and headers). */
export async function postSigned(url: string, req: SignedRequest): Promise<{ status: number; body: any }> {
  const headers = new Headers();
  for (const [k, v] of req.headers) headers.append(k, v);
  const res = await fetch(url, { method: 'POST', headers, body: req.raw });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** POSTs an event to the service exactly as Lark does: encrypted body, signature headers. */
export async function sendLarkEvent(url: string, payload: unknown, o: SendOptions = {}): Promise<{ status: number; body: any }> {
  return postSigned(url, signedRequest(payload, o));
}

/** A v1 `approval_task` event (event_callback), as Lark documents it. */
export function approvalTaskEvent(e: {
  token: string;
  appId: string;
  approvalCode: string;
  instanceCode: string;
  taskId: string;
  userId: string;
  openId?: string;
  status?: string;
  uuid?: string;
}) {
  return {
    ts: `${Date.now() / 1000}`,
    uuid: e.uuid ?? randomUUID().replace(/-/g, ''),
    token: e.token,
    type: 'event_callback',
    event: {
      app_id: e.appId,
      open_id: e.openId ?? `ou_${e.userId}`,
      tenant_key: 'tenant-emulated',
      type: 'approval_task',
      approval_code: e.approvalCode,
      instance_code: e.instanceCode,
      task_id: e.taskId,
      user_id: e.userId,
      status: e.status ?? 'PENDING',
      operate_time: String(Date.now()),
      custom_key: '',
      def_key: '',
    },
  };
}

/** A v2 `card.action.trigger` callback for a button press. */
export function cardActionEvent(e: { token: string; appId: string; operatorOpenId: string; messageId: string; chatId: string; value: unknown }) {
  return {
    schema: '2.0',
    header: { event_id: randomUUID(), token: e.token, create_time: String(Date.now()), event_type: 'card.action.trigger', tenant_key: 'tenant-emulated', app_id: e.appId },
    event: {
      operator: { tenant_key: 'tenant-emulated', open_id: e.operatorOpenId, user_id: e.operatorOpenId.replace('ou_', '') },
      token: randomUUID(),
      action: { value: e.value, tag: 'button' },
      host: 'im_message',
      context: { open_message_id: e.messageId, open_chat_id: e.chatId },
    },
  };
}

/** A legacy (pre-2.0) card callback, as the bot's "message card request URL" receives it. */
export function legacyCardAction(e: { operatorOpenId: string; messageId: string; value: unknown }) {
  return {
    open_id: e.operatorOpenId,
    user_id: e.operatorOpenId.replace('ou_', ''),
    open_message_id: e.messageId,
    open_chat_id: 'oc_legacy',
    tenant_key: 'tenant-emulated',
    // The card update token, not the verification token.
    token: `c-${randomUUID()}`,
    action: { value: e.value, tag: 'button' },
  };
}

/**
 * A v2 `im.message.receive_v1` event for a stored message (ChatEmulation.userSays): `mentions`
 * in the order of their `@_user_N` placeholders. A redelivery of the same message may carry a
 * new `eventId`.
 * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/reference/im-v1/message/events/receive
 */
export function messageReceiveEvent(e: {
  token: string;
  appId: string;
  message: { message_id: string; chat_id: string; msg_type: string; content: string; root_id?: string; parent_id?: string; thread_id?: string; create_time: string };
  senderOpenId: string;
  mentions?: Array<{ openId: string; name: string }>;
  chatType?: 'group' | 'p2p';
  senderType?: 'user' | 'app';
  eventId?: string;
}) {
  const m = e.message;
  return {
    schema: '2.0',
    header: { event_id: e.eventId ?? randomUUID().replace(/-/g, ''), token: e.token, create_time: String(Date.now()), event_type: 'im.message.receive_v1', tenant_key: 'tenant-emulated', app_id: e.appId },
    event: {
      sender: { sender_id: { union_id: `on_${e.senderOpenId}`, user_id: e.senderOpenId.replace(/^ou_/, ''), open_id: e.senderOpenId }, sender_type: e.senderType ?? 'user', tenant_key: 'tenant-emulated' },
      message: {
        message_id: m.message_id,
        root_id: m.root_id ?? '',
        parent_id: m.parent_id ?? '',
        create_time: m.create_time,
        update_time: m.create_time,
        chat_id: m.chat_id,
        thread_id: m.thread_id ?? '',
        chat_type: e.chatType ?? 'group',
        message_type: m.msg_type,
        content: m.content,
        mentions: (e.mentions ?? []).map((x, i) => ({
          key: `@_user_${i + 1}`,
          id: { union_id: `on_${x.openId}`, user_id: x.openId.replace(/^ou_/, ''), open_id: x.openId },
          name: x.name,
          tenant_key: 'tenant-emulated',
        })),
        user_agent: 'Mozilla/5.0 (emulated) Lark/7.0',
      },
    },
  };
}

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

export interface SendOptions {
  encryptKey?: string;
  /** Override the signature (forgery tests). */
  signature?: string;
  timestampSec?: number;
  noSignature?: boolean;
}

/** POSTs an event to the service exactly as Lark does: encrypted body, signature headers. */
export async function sendLarkEvent(url: string, payload: unknown, o: SendOptions = {}): Promise<{ status: number; body: any }> {
  const raw = JSON.stringify(o.encryptKey ? { encrypt: larkEncrypt(JSON.stringify(payload), o.encryptKey) } : payload);
  const timestamp = String(o.timestampSec ?? Math.floor(Date.now() / 1000));
  const nonce = randomBytes(8).toString('hex');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (!o.noSignature) {
    headers['x-lark-request-timestamp'] = timestamp;
    headers['x-lark-request-nonce'] = nonce;
    headers['x-lark-signature'] = o.signature ?? larkSign(timestamp, nonce, o.encryptKey ?? '', raw);
  }
  const res = await fetch(url, { method: 'POST', headers, body: raw });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
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

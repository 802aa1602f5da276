import { bodySignatureMatches, signBody } from '../../src/flows/business-call.js';
import type { UpstreamHandler } from '../../test/helpers/fake-upstream.js';
import { DEMO } from './settings.js';

/**
 * The business system behind the demo's approval flow, as lark-ticket users implement it: it
 * checks the service's signature, answers the check at once, accepts the grant and reports its
 * result a moment later on the callback URL, signed with the same secret.
 */
export interface BusinessLog {
  calls: Array<{ path: string; body: any; signatureOk: boolean; answer: { status: number; body: unknown } }>;
  callbacks: Array<{ url: string; body: unknown; status?: number; answer?: unknown; error?: string }>;
}

const CALLBACK_DELAY_MS = 600;

export function businessApi(log: BusinessLog): UpstreamHandler {
  return (call) => {
    const signatureOk = bodySignatureMatches(DEMO.businessSecret, String(call.headers['x-bridge-timestamp'] ?? ''), String(call.headers['x-bridge-signature'] ?? ''), call.raw);
    const answer = (status: number, body: unknown) => {
      log.calls.push({ path: call.path, body: call.body, signatureOk, answer: { status, body } });
      return { status, body };
    };
    if (!signatureOk) return answer(401, { result: false, error: 'bad signature' });
    const { ticket_id, fields, callback_url, attempt_id } = call.body ?? {};
    if (call.path === '/api/perm/check') {
      return answer(200, { ticket_id, result: true, msg: `${fields.account} is not ${fields.role} yet: the request may go on` });
    }
    if (call.path === '/api/perm/grant') {
      setTimeout(() => void callBack(log, callback_url, { ticket_id, attempt_id, result: true, msg: `granted ${fields.role} to ${fields.account} until ${fields.until}` }), CALLBACK_DELAY_MS);
      return answer(202, { accepted: true });
    }
    return answer(404, { result: false, error: `no route ${call.path}` });
  };
}

async function callBack(log: BusinessLog, url: string, body: unknown): Promise<void> {
  const raw = JSON.stringify(body);
  const ts = String(Math.floor(Date.now() / 1000));
  const entry: BusinessLog['callbacks'][number] = { url, body };
  log.callbacks.push(entry);
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-bridge-timestamp': ts, 'x-bridge-signature': signBody(DEMO.businessSecret, ts, raw) }, body: raw });
    entry.status = res.status;
    entry.answer = await res.json().catch(() => undefined);
  } catch (err) {
    entry.error = (err as Error).message;
  }
}

import { businessIdempotencyKey, businessRequest, signedHeaders } from './business-call.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { mapFormFields } from './map-fields.js';
import { STAGES } from './run-updates.js';

/**
 * What an approval flow would send its business API for a form, computed with the engine's own
 * functions (field mapping, request, idempotency key, signature) and sent nowhere: the core of
 * `npm run flows:try -- FILE --form sample.json`.
 */

/** A form sample as the try reads it, with what it says about the instance. */
export interface FormSample {
  /** The form as Lark sends it: a JSON string of widgets. */
  form: string;
  instanceCode?: string;
  userId?: string;
  openId?: string;
}

export interface TriedCall {
  stage: Stage;
  mode: 'sync' | 'async';
  method: 'POST';
  url: string;
  /** Every header the call carries (the upstream client adds content-type and user-agent). */
  headers: Record<string, string>;
  /** The exact bytes sent and signed. */
  body: string;
  timeoutMs: number;
  retries: number;
}

export interface TriedApproval {
  fields: Record<string, unknown>;
  calls: TriedCall[];
}

/** Problems of a form sample file, each with the JSON path in it. */
export class SampleError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'SampleError';
  }
}

/**
 * Reads a form sample: the widgets array of an instance's `form` (or that array as a string), an
 * approval instance as GET /open-apis/approval/v4/instances/:code answers it (the whole answer or
 * its `data`, whose `form` is a JSON string), or a plain {"widget name": value} object.
 * https://open.feishu.cn/document/server-docs/approval-v4/instance/get
 */
export function readFormSample(json: unknown): FormSample {
  if (typeof json === 'string') return { form: json };
  if (Array.isArray(json)) return { form: JSON.stringify(json) };
  if (!json || typeof json !== 'object') throw new SampleError('(root)', 'expected the form widgets (an array), an approval instance ({"form": …}) or {"widget name": value}');
  const top = json as Record<string, unknown>;
  const instance = top.data && typeof top.data === 'object' && 'form' in (top.data as object) ? (top.data as Record<string, unknown>) : top;
  if ('form' in instance) {
    const form = instance.form;
    if (typeof form !== 'string' && !Array.isArray(form)) throw new SampleError(instance === top ? 'form' : 'data.form', 'expected a JSON string or an array of widgets');
    const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
    return {
      form: typeof form === 'string' ? form : JSON.stringify(form),
      instanceCode: text(instance.instance_code),
      userId: text(instance.user_id),
      openId: text(instance.open_id),
    };
  }
  // {"Account": "alice", "Role": "Admin"}: one widget per name.
  return { form: JSON.stringify(Object.entries(top).map(([name, value]) => ({ name, value }))) };
}

export interface TryApprovalOptions {
  publicBaseUrl: string;
  /** The ticket (instance code) the body carries. */
  instanceCode: string;
  /** The check node's task id, in the Idempotency-Key and the attempt id. */
  taskId: string;
  /** The execute node's task id (its own task in Lark); the check's when not given. */
  executeTaskId?: string;
  applicant: { userId?: string; openId?: string };
  /** When the call is signed (ms). */
  nowMs: number;
}

/** Maps the form and builds each stage's call. Throws FieldMappingError naming every field that cannot be mapped. */
export function tryApproval(flow: ApprovalFlow, form: string, o: TryApprovalOptions): TriedApproval {
  const fields = mapFormFields(form, flow.fields);
  const ticket = { instanceCode: o.instanceCode, applicant: o.applicant, fields };
  const calls: TriedCall[] = [];
  for (const stage of STAGES) {
    const spec = flow[stage];
    if (!spec) continue;
    const attemptId = businessIdempotencyKey(o.instanceCode, stage, stage === 'execute' ? (o.executeTaskId ?? o.taskId) : o.taskId, 0);
    const body = JSON.stringify(businessRequest(flow, stage, ticket, o.publicBaseUrl, attemptId));
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'lark-bridge',
      ...signedHeaders(flow.secret, body, o.nowMs, attemptId),
    };
    calls.push({ stage, mode: spec.mode, method: 'POST', url: spec.url, headers, body, timeoutMs: spec.timeoutMs, retries: spec.retries });
  }
  return { fields, calls };
}

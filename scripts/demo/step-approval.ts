import { approvalTaskEvent, sendLarkEvent } from '../../test/lark-emulator/event-sender.js';
import { DEMO } from './settings.js';
import { until, type StepContext } from './step-context.js';
import { brief, cardAsText } from './transcript.js';

const INSTANCE = 'DEMO-INSTANCE-0001';
const FORM = JSON.stringify([
  { id: 'w1', name: 'Account', type: 'input', value: 'alice' },
  { id: 'w2', name: 'Role', type: 'radioV2', value: 'Admin' },
  { id: 'w3', name: 'Valid until', type: 'date', value: '2026-12-31T00:00:00+08:00' },
]);

/**
 * Job 1 and 2: an approval through its check node and its execute node, with the progress card
 * updated in place. Lark's side is the emulator: it holds the instance and its tasks, and sends
 * the approval_task events signed and encrypted as Lark does.
 */
export async function approvalStep(ctx: StepContext): Promise<void> {
  const { w, t } = ctx;
  t.line('·', `Alice submits "Admin console permission request" in Lark (instance ${INSTANCE}):\nAccount = alice, Role = Admin, Valid until = 2026-12-31`);
  w.approval.createInstance({ approval_code: DEMO.approvalCode, instance_code: INSTANCE, user_id: 'alice01', open_id: 'ou_alice_demo', form: FORM, task_list: [] });

  await pendingAt(ctx, 'task-check', 'check_node');
  await businessCall(ctx, '/api/perm/check');
  await approved(ctx, 'task-check', 'check_node');

  t.line('·', "Alice's manager approves in Lark; the request reaches execute_node.");
  await pendingAt(ctx, 'task-execute', 'execute_node');
  await businessCall(ctx, '/api/perm/grant');
  const callback = await until(ctx, 'the business API calling back with the grant result', () => ctx.business.callbacks.find((c) => c.status !== undefined || c.error));
  if (callback.error) throw new Error(`the business API could not call back: ${callback.error}`);
  t.line('→', `business API → POST ${new URL(callback.url).pathname} (signed, a moment later)\n${brief(callback.body)}`);
  t.line('←', `${callback.status} ${brief(callback.answer)}`);
  await approved(ctx, 'task-execute', 'execute_node');

  const card = await until(ctx, 'the progress card showing the request done', () => {
    const m = [...w.lark.messages.values()].find((x) => x.chat_id === DEMO.progressChat && x.msg_type === 'interactive');
    const parsed = m && JSON.parse(m.content);
    return parsed?.header?.template === 'green' ? { message: m!, card: parsed } : undefined;
  });
  const updates = w.lark.callsTo('PATCH', `/open-apis/im/v1/messages/${card.message.message_id}`).length;
  t.line('✓', `The progress card in ${DEMO.progressChat}, sent once and updated in place ${updates} times, now reads:`);
  t.block(cardAsText(card.card));
}

async function pendingAt(ctx: StepContext, taskId: string, node: string): Promise<void> {
  ctx.w.approval.addTask(INSTANCE, { id: taskId, user_id: DEMO.assistant, open_id: `ou_${DEMO.assistant}`, status: 'PENDING', node_name: node });
  const event = approvalTaskEvent({ token: DEMO.verificationToken, appId: DEMO.appId, approvalCode: DEMO.approvalCode, instanceCode: INSTANCE, taskId, userId: DEMO.assistant });
  ctx.t.line('→', `Lark → POST /api/v1/lark/callback: approval_task, the assistant's task at ${node} is PENDING (signed, AES-encrypted)`);
  const answer = await sendLarkEvent(`${ctx.w.service.url}/api/v1/lark/callback`, event, { encryptKey: DEMO.encryptKey });
  ctx.t.line('←', `${answer.status} ${brief(answer.body ?? '')} (answered at once; the work runs after)`);
  if (answer.status !== 200) throw new Error(`the service answered the approval event with ${answer.status}`);
}

async function businessCall(ctx: StepContext, path: string): Promise<void> {
  const call = await until(ctx, `the service calling the business API at ${path}`, () => ctx.business.calls.find((c) => c.path === path));
  const { ticket_id, stage, fields, callback_url } = call.body;
  ctx.t.line('·', `service → business API: POST ${path} (signature ${call.signatureOk ? 'verified' : 'WRONG'})\n${brief({ ticket_id, stage, fields, ...(callback_url ? { callback_url } : {}) })}`);
  ctx.t.line('·', `business API answered ${call.answer.status} ${brief(call.answer.body)}`);
  if (!call.signatureOk) throw new Error(`the business API could not verify the signature of ${path}`);
}

async function approved(ctx: StepContext, taskId: string, node: string): Promise<void> {
  const call = await until(ctx, `the service approving the ${node} task in Lark`, () => {
    const rejected = ctx.w.lark.callsTo('POST', '/open-apis/approval/v4/tasks/reject').find((c) => c.body?.task_id === taskId);
    if (rejected) throw new Error(`the service rejected the ${node} task: ${rejected.body.comment}`);
    return ctx.w.lark.callsTo('POST', '/open-apis/approval/v4/tasks/approve').find((c) => c.body?.task_id === taskId);
  });
  ctx.t.line('✓', `service → Lark: approve the ${node} task, comment "${call.body.comment}"`);
}

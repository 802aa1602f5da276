import type { LarkClient } from './client.js';
import type { LarkCall } from './lark-call.js';
import { assertLarkOk, LarkApiError } from './lark-error.js';

export interface ApprovalTask {
  id: string;
  userId?: string;
  openId?: string;
  status: string;
  nodeId?: string;
  nodeName?: string;
  customNodeId?: string;
}

export interface ApprovalInstance {
  approvalCode: string;
  approvalName: string;
  instanceCode: string;
  status: string;
  userId?: string;
  openId?: string;
  serialNumber?: string;
  /** The form as Lark sends it: a JSON string of widgets. */
  form: string;
  tasks: ApprovalTask[];
}

export interface TaskAction {
  approvalCode: string;
  instanceCode: string;
  taskId: string;
  userId: string;
  comment: string;
}

export interface ApprovalApi {
  getInstance(instanceCode: string): Promise<ApprovalInstance>;
  approve(action: TaskAction): Promise<void>;
  reject(action: TaskAction): Promise<void>;
  /** Subscribes the app to an approval definition's events; "already subscribed" counts as done. */
  subscribe(approvalCode: string): Promise<'subscribed' | 'already'>;
}

// Lark answers a repeated subscribe with this code ("subscription existed").
const ALREADY_SUBSCRIBED = 1390007;

export function createApprovalApi(client: LarkClient, larkCall: LarkCall): ApprovalApi {
  async function actOnTask(action: 'approve' | 'reject', a: TaskAction): Promise<void> {
    const payload = {
      params: { user_id_type: 'user_id' as const },
      data: { approval_code: a.approvalCode, instance_code: a.instanceCode, user_id: a.userId, task_id: a.taskId, comment: a.comment },
    };
    await larkCall(`approval.task.${action}`, 'approval', async () =>
      assertLarkOk(action === 'approve' ? await client.approval.v4.task.approve(payload) : await client.approval.v4.task.reject(payload)),
    );
  }

  return {
    async getInstance(instanceCode) {
      const answer = await larkCall('approval.instance.get', 'approval', async () =>
        assertLarkOk(await client.approval.v4.instance.get({ path: { instance_id: instanceCode }, params: { user_id_type: 'user_id' } })),
      );
      const d = answer.data;
      if (!d) throw new LarkApiError(-1, 'approval instance get answered without data', 200, false);
      return {
        approvalCode: d.approval_code,
        approvalName: d.approval_name,
        instanceCode: d.instance_code,
        status: d.status,
        userId: d.user_id,
        openId: d.open_id,
        serialNumber: d.serial_number,
        form: d.form,
        tasks: (d.task_list ?? []).map((t) => ({
          id: t.id,
          userId: t.user_id,
          openId: t.open_id,
          status: t.status,
          nodeId: t.node_id,
          nodeName: t.node_name,
          customNodeId: t.custom_node_id,
        })),
      };
    },
    approve: (a) => actOnTask('approve', a),
    reject: (a) => actOnTask('reject', a),
    async subscribe(approvalCode) {
      try {
        await larkCall('approval.subscribe', 'approval', async () =>
          assertLarkOk(await client.approval.v4.approval.subscribe({ path: { approval_code: approvalCode } })),
        );
        return 'subscribed';
      } catch (err) {
        if (err instanceof LarkApiError && err.code === ALREADY_SUBSCRIBED) return 'already';
        throw err;
      }
    },
  };
}

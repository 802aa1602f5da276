import { larkError, ok, type LarkEmulator } from './emulator.js';

/** Approval instances and tasks as Lark's approval v4 API shows them. */
export interface EmulatedTask {
  id: string;
  user_id: string;
  open_id?: string;
  // Instance get documents these task statuses; a returned or timed-out task shows as DONE there,
  // its event carries ROLLBACK / OVERTIME_CLOSE (see the approval_task event doc).
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'TRANSFERRED' | 'DONE';
  node_id?: string;
  node_name: string;
  custom_node_id?: string;
}

export interface EmulatedInstance {
  approval_code: string;
  approval_name: string;
  instance_code: string;
  serial_number: string;
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'CANCELED';
  user_id: string;
  open_id: string;
  form: string;
  task_list: EmulatedTask[];
  comments: Array<{ task_id: string; action: 'approve' | 'reject'; comment: string; user_id: string }>;
}

function withoutComments(inst: EmulatedInstance): Omit<EmulatedInstance, 'comments'> {
  const { comments: _c, ...data } = inst;
  return data;
}

/** Holds calls of one kind until released: a test can act while the service waits on Lark. */
export class Gate {
  private held: Promise<void> | null = null;
  private release: (() => void) | null = null;
  private only: ((key: string) => boolean) | undefined;
  /** Calls that arrived while held. */
  waiting = 0;

  /** Holds every call, or only those whose key (an instance code, a message id) matches. */
  hold(only?: (key: string) => boolean): () => void {
    this.held = new Promise<void>((resolve) => (this.release = resolve));
    this.only = only;
    return () => this.open();
  }

  open(): void {
    this.release?.();
    this.held = null;
    this.release = null;
  }

  async pass(key = ''): Promise<void> {
    if (!this.held || (this.only && !this.only(key))) return;
    this.waiting++;
    await this.held;
  }
}

export class ApprovalEmulation {
  readonly instances = new Map<string, EmulatedInstance>();
  readonly subscriptions = new Set<string>();
  readonly gates = { get: new Gate(), approve: new Gate(), reject: new Gate() };

  constructor(emulator: LarkEmulator) {
    // https://open.feishu.cn/document/server-docs/approval-v4/instance/get
    emulator.route('GET', '/open-apis/approval/v4/instances/:instance_id', async (req) => {
      const inst = this.instances.get(req.params.instance_id!);
      // The answer shows the instance as it was when the call arrived, however long it is held.
      const answer = inst
        ? ok({ ...withoutComments(inst), task_list: inst.task_list.map((t) => ({ ...t, type: 'AND', start_time: '1700000000000', end_time: '0' })), comment_list: [], timeline: [] })
        : larkError(400, 1390003, 'instance code not found');
      await this.gates.get.pass(req.params.instance_id);
      return answer;
    });
    // https://open.feishu.cn/document/server-docs/approval-v4/task/approve and .../reject
    for (const action of ['approve', 'reject'] as const) {
      emulator.route('POST', `/open-apis/approval/v4/tasks/${action}`, async (req) => {
        await this.gates[action].pass(String((req.body as { instance_code?: unknown } | undefined)?.instance_code ?? ''));
        const b = (req.body ?? {}) as Record<string, string>;
        for (const k of ['approval_code', 'instance_code', 'user_id', 'task_id']) {
          if (!b[k]) return larkError(400, 1390001, `param is invalid: ${k}`);
        }
        const inst = this.instances.get(b.instance_code!);
        if (!inst || inst.approval_code !== b.approval_code) return larkError(400, 1390003, 'instance code not found');
        const task = inst.task_list.find((t) => t.id === b.task_id);
        if (!task) return larkError(400, 1390001, 'param is invalid: task_id');
        if (task.user_id !== b.user_id) return larkError(400, 1390009, 'user is not the task approver');
        if (task.status !== 'PENDING') return larkError(400, 1390015, 'task status is not pending');
        task.status = action === 'approve' ? 'APPROVED' : 'REJECTED';
        inst.comments.push({ task_id: task.id, action, comment: b.comment ?? '', user_id: b.user_id! });
        if (action === 'reject') inst.status = 'REJECTED';
        return ok({});
      });
    }
    // https://open.feishu.cn/document/server-docs/approval-v4/event/event-interface/subscribe
    emulator.route('POST', '/open-apis/approval/v4/approvals/:approval_code/subscribe', (req) => {
      const code = req.params.approval_code!;
      if (this.subscriptions.has(code)) return larkError(400, 1390007, 'subscription existed');
      this.subscriptions.add(code);
      return ok({});
    });
  }

  createInstance(i: Omit<EmulatedInstance, 'status' | 'comments' | 'approval_name' | 'serial_number'> & Partial<EmulatedInstance>): EmulatedInstance {
    const inst: EmulatedInstance = { status: 'PENDING', comments: [], approval_name: 'Emulated approval', serial_number: `2026112400${this.instances.size + 1}`, ...i };
    this.instances.set(inst.instance_code, inst);
    return inst;
  }

  addTask(instanceCode: string, task: EmulatedTask): void {
    this.instances.get(instanceCode)!.task_list.push(task);
  }

  task(instanceCode: string, taskId: string): EmulatedTask {
    return this.instances.get(instanceCode)!.task_list.find((t) => t.id === taskId)!;
  }

  /**
   * An approver returns (退回) the approval to an earlier node: their task ends (event status
   * ROLLBACK) and the node returned to gets a new PENDING task (its own PENDING event).
   */
  rollback(instanceCode: string, byTaskId: string, newTask: EmulatedTask): void {
    this.task(instanceCode, byTaskId).status = 'DONE';
    this.addTask(instanceCode, { ...newTask, status: 'PENDING' });
  }

  /** A PENDING task not handled in time is closed by Lark (event status OVERTIME_CLOSE). */
  timeOut(instanceCode: string, taskId: string): void {
    this.task(instanceCode, taskId).status = 'DONE';
  }

  /** An admin reopens a task closed on timeout (event status OVERTIME_RECOVER): it is PENDING again. */
  recover(instanceCode: string, taskId: string): void {
    this.task(instanceCode, taskId).status = 'PENDING';
  }
}

/**
 * Card updates: PATCH /open-apis/im/v1/messages/:message_id, only for cards sent with update_multi
 * and within 14 days of sending (code 230031 past that).
 * https://open.feishu.cn/document/server-docs/im-v1/message-card/patch
 */
export function registerCardPatch(emulator: LarkEmulator, patches: Array<{ messageId: string; content: string }>, gate = new Gate()): Gate {
  emulator.route('PATCH', '/open-apis/im/v1/messages/:message_id', async (req) => {
    await gate.pass(req.params.message_id);
    const msg = emulator.messages.get(req.params.message_id!);
    if (!msg) return larkError(400, 230001, 'Your request contains an invalid request parameter, ext=message not found');
    if (msg.msg_type !== 'interactive') return larkError(400, 230001, 'Your request contains an invalid request parameter, ext=not a card');
    const content = (req.body as { content?: unknown } | undefined)?.content;
    if (typeof content !== 'string') return larkError(400, 99992402, 'field validation failed: content');
    const original = JSON.parse(msg.content) as { config?: { update_multi?: boolean } };
    if (!original.config?.update_multi) return larkError(400, 230099, 'Failed to update card: the card was not sent with update_multi');
    if (Date.now() - Number(msg.create_time) > 14 * 86_400_000) return larkError(400, 230031, 'Message can only be modified within 14 days after sending.');
    msg.content = content;
    msg.updated = true;
    msg.update_time = String(Date.now());
    patches.push({ messageId: msg.message_id, content });
    return ok({});
  });
  return gate;
}

// The Lark emulator as a process for benchmarks: every instance asked for exists, with a
// PENDING check task for the assistant, so events run the whole pipeline.
import { ApprovalEmulation, registerCardPatch } from '../../test/lark-emulator/approval.js';
import { startLarkEmulator } from '../../test/lark-emulator/emulator.js';

const emulator = await startLarkEmulator({ apps: { [process.env.APP_ID!]: process.env.APP_SECRET! } });
const approval = new ApprovalEmulation(emulator);
registerCardPatch(emulator, []);
const keep = emulator.calls;
setInterval(() => keep.splice(0, keep.length), 1000).unref(); // do not grow with the load
const origGet = approval.instances.get.bind(approval.instances);
approval.instances.get = (code: string) => {
  if (!origGet(code)) {
    approval.createInstance({
      approval_code: process.env.APPROVAL_CODE!,
      instance_code: code,
      user_id: 'applicant',
      open_id: 'ou_applicant',
      form: JSON.stringify([{ id: 'w1', name: 'Account', type: 'input', value: 'alice' }]),
      task_list: [{ id: `${code}-check`, user_id: 'assistant', status: 'PENDING', node_name: 'check_node' }],
    });
  }
  return origGet(code);
};
console.log(`listening on ${emulator.url}`);

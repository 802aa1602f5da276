import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Clock } from '../../src/clock.js';
import { renderErrors } from '../../src/http/errors-middleware.js';
import { routerFor } from '../../src/http/route.js';
import { createEventDispatcher, larkIntakeRoutes, type ApprovalTaskEvent, type CardAction, type IntakeOptions } from '../../src/lark/event-intake.js';
import { silentLogger } from '../../src/log.js';
import { openJournalStore } from '../../src/store/open-store.js';
import type { Store } from '../../src/store/store.js';
import type { SeenMark } from '../../src/lark/seen-events.js';
import { removeDir, tempDir } from './test-app.js';

/** A clock the test moves by hand. */
export function manualClock(start: number): Clock & { advance(ms: number): void; set(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    sleep: async (ms) => void (t += ms),
    advance: (ms) => void (t += ms),
    set: (ms) => void (t = ms),
  };
}

export interface Intake {
  url: string;
  clock: ReturnType<typeof manualClock>;
  tasks: ApprovalTaskEvent[];
  presses: CardAction[];
  /** Set to make the handlers wait or fail. */
  taskHook?: () => Promise<void>;
  pressHook?: () => Promise<void>;
  /** What the press handler answers (default: ok, "pressed by <open id>"). */
  pressAnswer?: (action: CardAction) => { ok: boolean; message: string };
  close(): Promise<void>;
}

/** The two Lark routes, their guards and dispatcher, over a real store, answering on loopback. */
export async function startIntake(secrets: { encryptKey?: string; verificationToken?: string }): Promise<Intake> {
  const dir = await tempDir('lark-intake-');
  const clock = manualClock(Date.now());
  const store: Store = await openJournalStore({ dir, clock });
  let server: Server | undefined;
  const it: Intake = {
    url: '',
    clock,
    tasks: [],
    presses: [],
    async close() {
      await new Promise<void>((r) => (server ? (server.closeAllConnections(), server.close(() => r())) : r()));
      await store.close();
      await removeDir(dir);
    },
  };
  const options: IntakeOptions = {
    ...secrets,
    seenEvents: store.keys<SeenMark>('lark-events'),
    clock,
    logger: silentLogger(),
    handlers: {
      async approvalTask(ev) {
        it.tasks.push(ev);
        await it.taskHook?.();
      },
      async cardAction(action) {
        it.presses.push(action);
        await it.pressHook?.();
        return it.pressAnswer?.(action) ?? { ok: true, message: `pressed by ${action.operatorOpenId}` };
      },
    },
  };
  const app = new Koa();
  app.use(renderErrors(silentLogger(), () => undefined));
  app.use(routerFor(larkIntakeRoutes(options, createEventDispatcher(options)), 1 << 20).routes());
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((r) => server!.once('listening', r));
  it.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return it;
}


import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventDispatcher, startLongConnection } from '../src/lark/event-intake.js';
import { silentLogger } from '../src/log.js';

// As with an SDK without the member ws-hold-frames wraps: the connection still starts, and the log
// says that a frame pushed right at connect may be dropped.
vi.mock('../src/lark/ws-hold-frames.js', () => ({ holdFramesUntilListening: () => false }));

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  vi.restoreAllMocks();
});

describe('startLongConnection', () => {
  it('warns once at start, naming what is at risk; the SDK client logs through our logger', async () => {
    const stdout = vi.spyOn(console, 'log');
    const logger = silentLogger();
    const warn = vi.spyOn(logger, 'warn');
    const error = vi.spyOn(logger, 'error');
    const dispatcher = createEventDispatcher({
      seenEvents: {} as never,
      clock: { now: () => Date.now(), sleep: async () => undefined },
      logger,
      handlers: { approvalTask: async () => undefined, cardAction: async () => ({ ok: true, message: '' }) },
    });
    // Port 9 on loopback: nothing listens, the SDK's first attempt is refused.
    const connection = startLongConnection('cli_a1b2c3d4e5f6eeee', 'secret', 'http://127.0.0.1:9', dispatcher, logger);
    cleanups.push(() => connection.close());
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/frame pushed right at connect may be dropped/);
    // The refused connection is reported in the service's log, not printed as bare text.
    await vi.waitFor(() => expect(error).toHaveBeenCalledWith({ sdk: 'lark' }, expect.stringContaining('ECONNREFUSED')));
    expect(stdout).not.toHaveBeenCalled();
  });
});

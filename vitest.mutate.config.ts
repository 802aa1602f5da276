import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The test set `npm run mutate` (Stryker) runs against each mutant of the trust boundary: unit
 * tests of the verifiers and guards first, then the store's files on a temp dir, then the
 * in-process HTTP suites that reach them over loopback. Suites that spawn child processes, start
 * the whole app with the Lark emulator per test, or wait for real time are left out: a mutant
 * would pay for them again and again, and the suites below pin these guards on their own.
 */
const CHEAPEST_FIRST = [
  // pure functions and guards, no server
  'test/safe-equal.test.ts',
  'test/fifo.test.ts',
  'test/lark-event-security.test.ts',
  'test/lark-verify-callback.test.ts',
  'test/options-encryption.test.ts',
  'test/business-call.test.ts',
  'test/approval-backoff.test.ts',
  'test/request-body.test.ts',
  'test/lark-seen-events.test.ts',
  'test/allow-list.test.ts',
  'test/store-frame.test.ts',
  'test/lark-received-message.test.ts',
  'test/notify-signing.test.ts',
  // the store's files on a temp dir (no server)
  'test/store-snapshot-file.test.ts',
  'test/store-data-dir-lock.test.ts',
  'test/store-journal.test.ts',
  'test/store-open.test.ts',
  // one route table on a bare Koa app, on loopback
  'test/route.test.ts',
  'test/bearer-auth.test.ts',
  'test/metrics-token.test.ts',
  'test/business-callback-routes.test.ts',
  'test/options-routes.test.ts',
  'test/lark-event-dispatch.test.ts',
  'test/lark-intake.test.ts',
  'test/lark-cards.test.ts',
  // the SDK long connection against the Lark emulator, in this process
  'test/lark-long-connection.test.ts',
  // the warning when the SDK no longer fits ws-hold-frames (its connection refused on loopback)
  'test/lark-ws-unguarded.test.ts',
];

/** Runs the files in the order above: a mutant is usually killed by the first, cheapest one (Stryker bails at the first failure). */
class CheapestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => CHEAPEST_FIRST.findIndex((name) => f.moduleId.endsWith(name));
    return [...files].sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: CHEAPEST_FIRST,
    sequence: { sequencer: CheapestFirst },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});

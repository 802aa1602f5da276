// Mutation testing of the trust boundary: `npm run mutate`. Not in CI (it takes minutes); run it
// after touching a guard, and keep every module at 90% or more (README, "Tests that bite").
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  // Its own test set: the fast suites that reach these modules (see the file).
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  mutate: [
    'src/http/auth.ts',
    'src/http/route.ts',
    'src/http/request-body.ts',
    'src/safe-equal.ts',
    'src/lark/event-security.ts',
    'src/lark/verify-callback.ts',
    'src/lark/event-intake.ts',
    'src/lark/seen-events.ts',
    'src/jobs/allow-list.ts',
    'src/flows/business-call.ts',
    'src/flows/callback-routes.ts',
    'src/flows/options-routes.ts',
    'src/flows/options-encryption.ts',
    // The store's trust boundary: record framing, journal replay and group commit, the snapshot
    // file, the data dir lock, and opening (what a damaged or half-written DATA_DIR does).
    'src/store/frame.ts',
    'src/store/journal.ts',
    'src/store/snapshot-file.ts',
    'src/store/data-dir-lock.ts',
    'src/store/open-store.ts',
    'src/lark/received-message.ts',
    'src/metrics/metrics-routes.ts',
    // The queue behind the accept-first waiters, the fair queue and the Lark rate limiter: a lost or
    // reordered item there is a job or a card that never runs.
    'src/fifo.ts',
    // Custom-bot signing only (the sign functions and where the notifiers use them), not the cards.
    'src/notify/lark-webhook.ts:16-18',
    'src/notify/lark-webhook.ts:36-37',
    'src/notify/dingtalk.ts:14-16',
    'src/notify/dingtalk.ts:28-32',
  ],
  coverageAnalysis: 'perTest',
  // Two cores, shared: two test-runner processes.
  concurrency: 2,
  timeoutMS: 10_000,
  incremental: false,
  ignorePatterns: ['data', 'coverage', 'reports', '.ci'],
  reporters: ['clear-text', 'html', 'json', 'progress'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  clearTextReporter: { allowColor: false, logTests: false },
  thresholds: { high: 90, low: 90, break: 90 },
  cleanTempDir: 'always',
};

import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The process's own async context, taken when this module loads (at start, outside any request).
 * Work that a request starts and that outlives it (a queued task-sync record, an approval run
 * turn, a @bot reply) runs in it, so that it neither keeps the request alive (every
 * AsyncLocalStorage store the request has: our log context, Sentry's isolation scope with the
 * request's headers and body) nor logs as that request, or as whichever request started the
 * queue's previous task. The work's own ids (jobId, runId, messageId) are on its log lines.
 */
const processContext = AsyncLocalStorage.snapshot();

/** Runs `start` (which queues or begins background work) outside the current request's context. */
export function detached<T>(start: () => T): T {
  return processContext(start);
}

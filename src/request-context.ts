import { AsyncLocalStorage } from 'node:async_hooks';

/** What is known of the request being handled, for every log line and error report made while it runs. */
export interface RequestContext {
  reqId: string;
  method: string;
  path: string;
  /** The API client (a token's digest label), once its guard has passed. */
  client?: string;
}

/** Set by the request-id middleware around the rest of the request. */
export const requestContext = new AsyncLocalStorage<RequestContext>();

/**
 * Names the caller in the current request's context, once its guard has passed. A plain field,
 * not a getter over Koa's ctx: every promise the request makes keeps this context for as long as
 * it lives (background work is detached from it, src/detached.ts, but a stray one must still not
 * keep the whole request).
 */
export function setRequestClient(client: string): void {
  const store = requestContext.getStore();
  if (store) store.client = client;
}

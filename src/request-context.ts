import { AsyncLocalStorage } from 'node:async_hooks';

/** What is known of the request being handled, for every log line and error report made while it runs. */
export interface RequestContext {
  reqId: string;
  method: string;
  path: string;
  /** The API client (a token's digest label), once its guard has passed. */
  readonly client?: string;
}

/** Set by the request-id middleware around the rest of the request. */
export const requestContext = new AsyncLocalStorage<RequestContext>();

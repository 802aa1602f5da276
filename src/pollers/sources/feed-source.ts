import type { PollerSourceSpec } from '../../flows/poller-flow-schema.js';
import type { UpstreamClient } from '../../upstream/client.js';
import type { FeedSource } from '../feed.js';
import { describeUrl } from './feed-call.js';
import { createGuanceSource } from './guance.js';
import { createHttpSource } from './http-feed.js';

/** The adapter for a poller's source. A further source type is one file and one line here. */
export function createFeedSource(spec: PollerSourceSpec, upstream: UpstreamClient): FeedSource {
  switch (spec.type) {
    case 'guance':
      return createGuanceSource(spec, upstream);
    case 'http':
      return createHttpSource(spec, upstream);
  }
}

/** What GET /api/pollers shows of a source: its type and where it is, never a key or a query. */
export function describeSource(spec: PollerSourceSpec): { type: string; target: string } {
  return { type: spec.type, target: describeUrl(spec.type === 'guance' ? spec.baseUrl : spec.url) };
}

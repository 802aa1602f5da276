import { DEMO } from './settings.js';

/**
 * The flow files the demo's service loads: the shipped examples' shape (flows/admin-permission.json,
 * flows/guance-issues.json), pointed at the local fakes. Secrets come through ${env:…} as in
 * real flows.
 */
export function demoFlows(urls: { business: string; guance: string }): Record<string, unknown> {
  return {
    'admin-permission.json': {
      kind: 'approval',
      id: 'admin-permission',
      name: 'Admin console permission request',
      approvalCode: DEMO.approvalCode,
      nodes: { check: 'check_node', execute: 'execute_node' },
      fields: {
        account: { widget: 'Account', type: 'string', required: true },
        role: { widget: 'Role', type: 'enum', required: true, map: { 'Read only': 'viewer', Operator: 'operator', Admin: 'admin' } },
        until: { widget: 'Valid until', type: 'date' },
      },
      // The check answers at once; the grant is accepted and its result called back later.
      check: { url: `${urls.business}/api/perm/check`, mode: 'sync', timeoutMs: 5000 },
      execute: { url: `${urls.business}/api/perm/grant`, mode: 'async', timeoutMs: 5000, callbackTimeoutMs: 60_000 },
      secret: '${env:DEMO_BUSINESS_SECRET}',
      notify: { chatId: DEMO.progressChat, template: 'approval-progress' },
    },
    'guance-issues.json': {
      kind: 'poller',
      id: 'guance-issues',
      name: 'Guance issues',
      // Every two seconds, so the demo does not wait long for a tick.
      schedule: '*/2 * * * * *',
      source: { type: 'guance', baseUrl: urls.guance, apiKey: '${env:DEMO_GUANCE_KEY}', channel: 'on-call' },
      notify: { chatId: DEMO.oncallChat },
      replies: true,
    },
  };
}

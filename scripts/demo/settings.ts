/** The demo's made-up credentials and ids: every one of them only ever reaches the local fakes. */
export const DEMO = {
  appId: 'cli_d3e4a5b6c7d8e9f0',
  appSecret: 'demo-app-secret',
  encryptKey: 'demo-encrypt-key-0123456789',
  verificationToken: 'demo-verification-token',
  assistant: 'assistant01',
  apiToken: 'demo-api-token-0123456789',
  businessSecret: 'demo-business-secret-0123456789',
  guanceKey: 'demo-guance-key',
  approvalCode: 'DEMO-APPROVAL-0001',
  progressChat: 'oc_demo_progress',
  oncallChat: 'oc_demo_oncall',
  anycrossPath: '/anycross/trigger/callback/DEMOTRIGGER01',
} as const;

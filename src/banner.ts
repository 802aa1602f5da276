import type { Config } from './config.js';
import { whereIs } from './store/pg/pg-connection.js';

/** One line per feature for the start-up banner; never prints secrets. */
export function describeFeatures(config: Config): string[] {
  const lines: string[] = [];
  lines.push(
    config.lark.appId
      ? `Lark: on — app ${config.lark.appId} at ${config.lark.domain}, events over ${config.lark.eventMode}`
      : 'Lark: off — LARK_APP_ID not set',
  );
  const { appId, encryptKey, verificationToken } = config.lark;
  if (appId && !encryptKey && !verificationToken) {
    lines.push('Lark events and card callbacks: refused — set LARK_ENCRYPT_KEY (recommended) or LARK_VERIFICATION_TOKEN');
  } else if (appId) {
    // Legacy card callbacks are signed with the verification token only (see src/lark/verify-callback.ts).
    lines.push(
      verificationToken
        ? 'Lark card callbacks: 2.0 and legacy'
        : 'Lark card callbacks: 2.0 only — legacy card callbacks are refused: set LARK_VERIFICATION_TOKEN to accept them',
    );
    if (!encryptKey) lines.push('Lark events: WARNING LARK_ENCRYPT_KEY not set: callbacks are checked by the verification token only (no signature, no time window)');
  }
  if (config.lark.appId && !config.lark.assistantUserId) lines.push('Approval flows: LARK_ASSISTANT_USER_ID not set — approval flows are refused until it is');
  const chats = Object.entries(config.chats).filter(([, v]) => v).map(([k]) => k);
  lines.push(
    chats.length ? `Summaries (POST /api/endpoint): chats ${chats.join(', ')}` : 'Summaries: off — CHAT_ID not set',
  );
  if (!config.auth.enabled) lines.push('API auth: OFF (API_AUTH=off) — only behind nginx allow rules');
  else if (config.auth.tokens.length === 0) lines.push('API auth: no API_TOKENS set — /api/* answers 401');
  else lines.push(`API auth: ${config.auth.tokens.length} bearer token(s)`);
  lines.push(
    `Task sync: ${config.taskSync.concurrency} concurrent calls (${config.taskSync.concurrencyPerClient} per client, ${config.taskSync.concurrencyPerHost} per host), queue bound ${config.taskSync.maxQueuedRecords} records (${config.taskSync.maxQueuedRecordsPerClient} per client), allowed prefixes ${config.taskSync.allowedPrefixes.join(' ')}`,
  );
  if (!config.taskSync.verifySsl) lines.push('Task sync: WARNING TLS verification is OFF (ANYCROSS_VERIFY_SSL=false)');
  lines.push(config.sentryDsn ? 'Sentry: on' : 'Sentry: off — SENTRY_DSN not set');
  lines.push(config.metricsToken ? 'Metrics: GET /metrics with METRICS_TOKEN' : 'Metrics: off — METRICS_TOKEN not set (GET /metrics answers 401)');
  const db = config.database;
  if (db) {
    lines.push(`Store: PostgreSQL at ${whereIs(db.url)} (pool ${db.poolMax}, TLS ${db.ssl ?? 'as the URL says'}), shared by every replica`);
    if (db.ssl === 'require') lines.push('Store: WARNING DATABASE_SSL=require encrypts but does not check the server certificate: use verify-full with DATABASE_CA_FILE');
  } else {
    lines.push(`Store: embedded journal in ${config.dataDir} (one process; set DATABASE_URL for several replicas)`);
  }
  return lines;
}

/** The banner's line about flows: how many run, and which files wait for variables (one line for all of them). */
export function describeFlows(loaded: number, notConfigured: ReadonlyArray<{ file: string; unset: readonly string[] }>, missingDir?: string): string {
  if (missingDir) return `Flows: WARNING FLOWS_DIR ${missingDir} does not exist: no flows are loaded (resolved from ${process.cwd()})`;
  if (!notConfigured.length) return `Flows: ${loaded} loaded`;
  const waiting = notConfigured.map((f) => `${f.file} (${f.unset.join(', ')})`).join(', ');
  return `Flows: ${loaded} loaded; ${notConfigured.length} not loaded until their variables are set: ${waiting}`;
}

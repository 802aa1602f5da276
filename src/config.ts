import { z } from 'zod';
import { whereIs } from './store/pg/pg-connection.js';

// Anycross "integration flow" webhook triggers live under these prefixes on Feishu and Lark.
export const DEFAULT_TASK_SYNC_PREFIXES = [
  'https://open.feishu.cn/anycross/trigger/callback/',
  'https://open.larksuite.com/anycross/trigger/callback/',
];

const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true or false, got "${v}"` });
      return z.NEVER;
    });

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `expected a whole number from ${min} to ${max}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

/** A whole number whose default depends on other variables: undefined when unset. */
const optionalInt = (min: number, max: number) => int(Number.NaN, min, max).transform((n) => (Number.isNaN(n) ? undefined : n));

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined));

const list = (fallback: string[]) =>
  z
    .string()
    .optional()
    .transform((v) => {
      if (v === undefined || v.trim() === '') return fallback;
      return v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    });

const httpUrl = (fallback?: string) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      const value = v || fallback;
      if (!value) return undefined;
      try {
        const url = new URL(value);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
        return value.replace(/\/+$/, '');
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, got "${v}"` });
        return z.NEVER;
      }
    });

const envSchema = z.object({
  HOST: z.string().trim().default('127.0.0.1'),
  PORT: int(9876, 0, 65535),
  DATA_DIR: z.string().trim().default('./data'),
  FLOWS_DIR: z.string().trim().default('./flows'),
  TEMPLATES_DIR: z.string().trim().default('./templates'),
  PUBLIC_BASE_URL: httpUrl(),
  BODY_LIMIT_KB: int(1024, 1, 51200),

  LARK_APP_ID: optionalString,
  LARK_APP_SECRET: optionalString,
  APP_ID: optionalString,
  APP_SECRET: optionalString,
  LARK_ENCRYPT_KEY: optionalString,
  LARK_VERIFICATION_TOKEN: optionalString,
  LARK_ASSISTANT_USER_ID: optionalString,
  LARK_DOMAIN: httpUrl('https://open.feishu.cn'),
  LARK_EVENT_MODE: z.enum(['http', 'ws']).default('http'),
  LARK_TIMEOUT_MS: int(10_000, 100, 120_000),
  // Unset: Lark's documented AppLink for the tenant LARK_DOMAIN points at (src/lark/approval-link.ts).
  LARK_APPROVAL_LINK: optionalString,

  CHAT_ID: optionalString,
  PD_CHAT_ID: optionalString,
  OPS_CHAT_ID: optionalString,

  API_TOKENS: list([]),
  API_AUTH: z.enum(['on', 'off']).default('on'),

  TASK_SYNC_ALLOWED_URLS: list(DEFAULT_TASK_SYNC_PREFIXES),
  TASK_SYNC_CONCURRENCY: int(8, 1, 1024),
  // Default: half of TASK_SYNC_CONCURRENCY (rounded up) with several API tokens, all of it with one.
  TASK_SYNC_CONCURRENCY_PER_CLIENT: optionalInt(1, 1024),
  TASK_SYNC_CONCURRENCY_PER_HOST: optionalInt(1, 1024),
  TASK_SYNC_MAX_QUEUED_RECORDS: int(50_000, 1, 10_000_000),
  TASK_SYNC_MAX_QUEUED_BYTES: int(64 * 1024 * 1024, 1024, 2 ** 40),
  TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: optionalInt(1, 10_000_000),
  TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT: optionalInt(1024, 2 ** 40),
  TASK_SYNC_STOP_GRACE_MS: int(8_000, 0, 600_000),
  TASK_SYNC_DEFAULT_TIMEOUT: int(15, 1, 3600),
  TASK_SYNC_MAX_TIMEOUT: int(120, 1, 3600),
  TASK_SYNC_CONNECT_TIMEOUT_MS: int(5_000, 100, 60_000),
  // Extra tries after the first (as a flow's `retries`): 2 → at most 3 calls per record.
  TASK_SYNC_RETRIES: int(2, 0, 10),
  TASK_SYNC_RETRY_BASE_MS: int(500, 1, 60_000),
  TASK_SYNC_MAX_RECORDS: int(500, 1, 10_000),
  ANYCROSS_VERIFY_SSL: bool(true),
  ANYCROSS_CA_BUNDLE: optionalString,

  // PostgreSQL instead of the embedded store (several replicas): see README "Running several replicas".
  DATABASE_URL: optionalString,
  DATABASE_POOL_MAX: int(10, 1, 1000),
  DATABASE_STATEMENT_TIMEOUT_MS: int(10_000, 100, 3_600_000),
  DATABASE_CONNECT_TIMEOUT_MS: int(5_000, 100, 120_000),
  DATABASE_SSL: z.enum(['disable', 'require', 'verify-full']).optional(),
  DATABASE_CA_FILE: optionalString,
  DATABASE_LEASE_MS: int(30_000, 1_000, 3_600_000),

  JOB_RETENTION_DAYS: int(7, 1, 3650),
  JOB_RETENTION_MAX: int(100_000, 100, 10_000_000),
  STORE_COMPACT_KB: int(32 * 1024, 16, 4 * 1024 * 1024),

  SENTRY_DSN: optionalString,
  // Bearer token of GET /metrics (its own: not one of API_TOKENS); unset, /metrics refuses every scrape.
  METRICS_TOKEN: optionalString,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly flowsDir: string;
  readonly templatesDir: string;
  readonly publicBaseUrl: string;
  readonly bodyLimitBytes: number;
  readonly lark: {
    readonly appId?: string;
    readonly appSecret?: string;
    readonly encryptKey?: string;
    readonly verificationToken?: string;
    readonly assistantUserId?: string;
    readonly domain: string;
    readonly eventMode: 'http' | 'ws';
    readonly timeoutMs: number;
    /** A link template with {instanceCode}; absent: the documented AppLink. */
    readonly approvalLink?: string;
  };
  readonly chats: { readonly main?: string; readonly pd?: string; readonly ops?: string };
  readonly auth: { readonly tokens: readonly string[]; readonly enabled: boolean };
  readonly taskSync: {
    readonly allowedPrefixes: readonly string[];
    readonly concurrency: number;
    /** Calls one API client may have running at once: its upstream hanging cannot take more. */
    readonly concurrencyPerClient: number;
    readonly concurrencyPerHost: number;
    /** Unfinished records (and their ids' and URLs' bytes) that may wait, in all and per client. */
    readonly maxQueuedRecords: number;
    readonly maxQueuedBytes: number;
    readonly maxQueuedRecordsPerClient: number;
    readonly maxQueuedBytesPerClient: number;
    /** How long a stop waits for running calls before cutting them. */
    readonly stopGraceMs: number;
    readonly defaultTimeoutSec: number;
    readonly maxTimeoutSec: number;
    readonly connectTimeoutMs: number;
    /** Extra tries after the first, on retryable failures (0: one call only). */
    readonly retries: number;
    readonly retryBaseMs: number;
    readonly maxRecords: number;
    readonly verifySsl: boolean;
    readonly caBundle?: string;
  };
  readonly retention: { readonly jobDays: number; readonly jobMax: number };
  /** PostgreSQL instead of the embedded store on dataDir (DATABASE_URL set). */
  readonly database?: {
    /** Holds the password: never log it (whereIs() in src/store/pg/pg-connection.ts shows host and database). */
    readonly url: string;
    readonly poolMax: number;
    readonly statementTimeoutMs: number;
    readonly connectTimeoutMs: number;
    /** Unset: as the URL's sslmode says (no TLS without one). */
    readonly ssl?: 'disable' | 'require' | 'verify-full';
    readonly caFile?: string;
    /** How long a replica's claim on a job or run lasts without renewal. */
    readonly leaseMs: number;
  };
  /** The embedded store compacts once its journal has grown by this many bytes. */
  readonly storeCompactBytes: number;
  readonly sentryDsn?: string;
  readonly metricsToken?: string;
  readonly logLevel: Env['LOG_LEVEL'];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid environment:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The configuration is valid on its own but cannot run what was found (flows): one line says why. */
export class StartRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartRefused';
  }
}

/** Parses the environment once; every bad variable is named with its reason. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.TASK_SYNC_DEFAULT_TIMEOUT > e.TASK_SYNC_MAX_TIMEOUT) {
    problems.push('TASK_SYNC_DEFAULT_TIMEOUT: must not exceed TASK_SYNC_MAX_TIMEOUT');
  }
  const queued = taskSyncQueueLimits(e, problems);
  for (const prefix of e.TASK_SYNC_ALLOWED_URLS) {
    if (!/^https?:\/\/[^/]+/i.test(prefix)) {
      problems.push(`TASK_SYNC_ALLOWED_URLS: "${prefix}" is not an http(s) URL prefix`);
    }
  }
  const database = databaseConfig(e, problems);
  const appId = e.LARK_APP_ID ?? e.APP_ID;
  const appSecret = e.LARK_APP_SECRET ?? e.APP_SECRET;
  if (appId && !appSecret) problems.push('LARK_APP_SECRET: required when LARK_APP_ID is set');
  // Lark app ids are "cli_" + 16 hex digits; the SDK's long connection silently refuses others.
  if (appId && !/^cli_[0-9a-fA-F]{16}$/.test(appId)) problems.push(`${e.LARK_APP_ID ? 'LARK_APP_ID' : 'APP_ID'}: expected "cli_" followed by 16 hex digits, got "${appId}"`);
  if (e.METRICS_TOKEN !== undefined && e.METRICS_TOKEN.length < 16) problems.push('METRICS_TOKEN: must be at least 16 characters');
  if (problems.length) throw new ConfigError(problems);

  const host = e.HOST;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  return Object.freeze({
    host,
    port: e.PORT,
    dataDir: e.DATA_DIR,
    flowsDir: e.FLOWS_DIR,
    templatesDir: e.TEMPLATES_DIR,
    publicBaseUrl: e.PUBLIC_BASE_URL ?? `http://${hostForUrl}:${e.PORT}`,
    bodyLimitBytes: e.BODY_LIMIT_KB * 1024,
    lark: {
      appId,
      appSecret,
      encryptKey: e.LARK_ENCRYPT_KEY,
      verificationToken: e.LARK_VERIFICATION_TOKEN,
      assistantUserId: e.LARK_ASSISTANT_USER_ID,
      domain: e.LARK_DOMAIN ?? 'https://open.feishu.cn',
      eventMode: e.LARK_EVENT_MODE,
      timeoutMs: e.LARK_TIMEOUT_MS,
      approvalLink: e.LARK_APPROVAL_LINK,
    },
    chats: { main: e.CHAT_ID, pd: e.PD_CHAT_ID, ops: e.OPS_CHAT_ID },
    auth: { tokens: e.API_TOKENS, enabled: e.API_AUTH === 'on' },
    taskSync: {
      allowedPrefixes: e.TASK_SYNC_ALLOWED_URLS,
      concurrency: e.TASK_SYNC_CONCURRENCY,
      ...queued,
      stopGraceMs: e.TASK_SYNC_STOP_GRACE_MS,
      defaultTimeoutSec: e.TASK_SYNC_DEFAULT_TIMEOUT,
      maxTimeoutSec: e.TASK_SYNC_MAX_TIMEOUT,
      connectTimeoutMs: e.TASK_SYNC_CONNECT_TIMEOUT_MS,
      retries: e.TASK_SYNC_RETRIES,
      retryBaseMs: e.TASK_SYNC_RETRY_BASE_MS,
      maxRecords: e.TASK_SYNC_MAX_RECORDS,
      verifySsl: e.ANYCROSS_VERIFY_SSL,
      caBundle: e.ANYCROSS_CA_BUNDLE,
    },
    retention: { jobDays: e.JOB_RETENTION_DAYS, jobMax: e.JOB_RETENTION_MAX },
    database,
    storeCompactBytes: e.STORE_COMPACT_KB * 1024,
    sentryDsn: e.SENTRY_DSN,
    metricsToken: e.METRICS_TOKEN,
    logLevel: e.LOG_LEVEL,
  });
}

/** DATABASE_*: the URL is checked without ever echoing it (it holds the password). */
function databaseConfig(e: Env, problems: string[]): Config['database'] {
  const url = e.DATABASE_URL;
  if (!url) {
    for (const name of ['DATABASE_SSL', 'DATABASE_CA_FILE'] as const) if (e[name]) problems.push(`${name}: only used with DATABASE_URL, which is not set`);
    return undefined;
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // no detail: the text of the URL must not reach a log
  }
  if (!parsed || (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') || !parsed.hostname) {
    problems.push('DATABASE_URL: expected postgres://user:password@host:port/database (the value is not shown: it may hold a password)');
    return undefined;
  }
  const urlTls = ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey'].filter((k) => parsed.searchParams.has(k));
  if (e.DATABASE_SSL && urlTls.length) problems.push(`DATABASE_SSL: DATABASE_URL sets TLS too (${urlTls.join(', ')}): set it in one place`);
  if (e.DATABASE_CA_FILE && e.DATABASE_SSL !== 'verify-full') problems.push('DATABASE_CA_FILE: only used with DATABASE_SSL=verify-full');
  return {
    url,
    poolMax: e.DATABASE_POOL_MAX,
    statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    ssl: e.DATABASE_SSL,
    caFile: e.DATABASE_CA_FILE,
    leaseMs: e.DATABASE_LEASE_MS,
  };
}

/** Concurrency shares and queue bounds: defaults that follow other variables, and the checks between them. */
function taskSyncQueueLimits(e: Env, problems: string[]) {
  const concurrency = e.TASK_SYNC_CONCURRENCY;
  const severalClients = e.API_AUTH === 'on' && e.API_TOKENS.length > 1;
  const limits = {
    concurrencyPerClient: e.TASK_SYNC_CONCURRENCY_PER_CLIENT ?? (severalClients ? Math.ceil(concurrency / 2) : concurrency),
    concurrencyPerHost: e.TASK_SYNC_CONCURRENCY_PER_HOST ?? concurrency,
    maxQueuedRecords: e.TASK_SYNC_MAX_QUEUED_RECORDS,
    maxQueuedBytes: e.TASK_SYNC_MAX_QUEUED_BYTES,
    maxQueuedRecordsPerClient: e.TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT ?? Math.min(10_000, e.TASK_SYNC_MAX_QUEUED_RECORDS),
    maxQueuedBytesPerClient: e.TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT ?? Math.min(16 * 1024 * 1024, e.TASK_SYNC_MAX_QUEUED_BYTES),
  };
  const notAbove = (name: string, value: number, limitName: string, limit: number) => {
    if (value > limit) problems.push(`${name}: ${value} is more than ${limitName} (${limit})`);
  };
  notAbove('TASK_SYNC_CONCURRENCY_PER_CLIENT', limits.concurrencyPerClient, 'TASK_SYNC_CONCURRENCY', concurrency);
  notAbove('TASK_SYNC_CONCURRENCY_PER_HOST', limits.concurrencyPerHost, 'TASK_SYNC_CONCURRENCY', concurrency);
  notAbove('TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT', limits.maxQueuedRecordsPerClient, 'TASK_SYNC_MAX_QUEUED_RECORDS', limits.maxQueuedRecords);
  notAbove('TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT', limits.maxQueuedBytesPerClient, 'TASK_SYNC_MAX_QUEUED_BYTES', limits.maxQueuedBytes);
  if (limits.maxQueuedRecordsPerClient < e.TASK_SYNC_MAX_RECORDS) {
    problems.push(
      `TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: ${limits.maxQueuedRecordsPerClient} is less than TASK_SYNC_MAX_RECORDS (${e.TASK_SYNC_MAX_RECORDS}): a full batch could never be queued`,
    );
  }
  return limits;
}

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
  if (config.lark.appId && !config.lark.assistantUserId) lines.push('Approval flows: LARK_ASSISTANT_USER_ID not set — tasks of any user at check/execute nodes are handled');
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

import { z } from 'zod';
import { bool, httpUrl, int, list, optionalInt, optionalString, sentryDsn } from './env-values.js';

// Anycross "integration flow" webhook triggers live under these prefixes on Feishu and Lark.
export const DEFAULT_TASK_SYNC_PREFIXES = [
  'https://open.feishu.cn/anycross/trigger/callback/',
  'https://open.larksuite.com/anycross/trigger/callback/',
];

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
  // Calls at once while requests keep the event loop busy (accept path first); default min(2, TASK_SYNC_CONCURRENCY).
  TASK_SYNC_BURST_CONCURRENCY: optionalInt(1, 1024),
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

  SENTRY_DSN: sentryDsn,
  SENTRY_ENVIRONMENT: optionalString,
  // Bearer token of GET /metrics (its own: not one of API_TOKENS); unset, /metrics refuses every scrape.
  METRICS_TOKEN: optionalString,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // auto: pretty when stdout is a terminal, JSON lines otherwise (a pipe, a file, journald).
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
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
    /** Calls at once while the accept path is under pressure (src/accept-first.ts). */
    readonly burstConcurrency: number;
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
  readonly sentryEnvironment?: string;
  readonly metricsToken?: string;
  readonly logLevel: Env['LOG_LEVEL'];
  readonly logFormat: Env['LOG_FORMAT'];
}

/** Every bad variable, one line each ("NAME: what is wrong"): main prints them and exits 2. */
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

export interface EnvCheck {
  /** Present when there is no problem. */
  config?: Config;
  /** One line per problem, "NAME: what is wrong", schema and cross-variable checks together. */
  problems: string[];
  /** The variables that parsed (start-up checks look at the files and addresses they name). */
  values: Partial<Env>;
}

/**
 * Parses every variable on its own, so that one bad variable does not hide another, then checks
 * the variables against each other (each check only when the variables it reads are valid).
 */
export function checkEnv(env: NodeJS.ProcessEnv = process.env): EnvCheck {
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, schema] of Object.entries(envSchema.shape)) {
    const parsed = (schema as z.ZodType).safeParse(env[name]);
    if (parsed.success) values[name] = parsed.data;
    else problems.push(...parsed.error.issues.map((i) => `${name}: ${i.message}`));
  }
  const e = values as Partial<Env>;
  problems.push(...crossChecks(e));
  if (problems.length) return { problems, values: e };
  return { config: toConfig(e as Env), problems, values: e };
}

/** Parses the environment once; every bad variable is named with its reason. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const { config, problems } = checkEnv(env);
  if (!config) throw new ConfigError(problems);
  return config;
}

function crossChecks(e: Partial<Env>): string[] {
  const problems: string[] = [];
  if (e.TASK_SYNC_DEFAULT_TIMEOUT !== undefined && e.TASK_SYNC_MAX_TIMEOUT !== undefined && e.TASK_SYNC_DEFAULT_TIMEOUT > e.TASK_SYNC_MAX_TIMEOUT) {
    problems.push('TASK_SYNC_DEFAULT_TIMEOUT: must not exceed TASK_SYNC_MAX_TIMEOUT');
  }
  if (QUEUE_VARIABLES.every((name) => name in e)) taskSyncQueueLimits(e as Env, problems);
  for (const prefix of e.TASK_SYNC_ALLOWED_URLS ?? []) {
    const why = urlPrefixProblem(prefix);
    if (why) problems.push(`TASK_SYNC_ALLOWED_URLS: "${prefix}" ${why}`);
  }
  if (DATABASE_VARIABLES.every((name) => name in e)) databaseConfig(e as Env, problems);
  const appId = e.LARK_APP_ID ?? e.APP_ID;
  const appSecret = e.LARK_APP_SECRET ?? e.APP_SECRET;
  if (appId && !appSecret) problems.push('LARK_APP_SECRET: required when LARK_APP_ID is set');
  // Lark app ids are "cli_" + 16 hex digits; the SDK's long connection silently refuses others.
  if (appId && !/^cli_[0-9a-fA-F]{16}$/.test(appId)) problems.push(`${e.LARK_APP_ID ? 'LARK_APP_ID' : 'APP_ID'}: expected "cli_" followed by 16 hex digits, got "${appId}"`);
  if (e.METRICS_TOKEN !== undefined && e.METRICS_TOKEN.length < 16) problems.push('METRICS_TOKEN: must be at least 16 characters');
  return problems;
}

/** Why a TASK_SYNC_ALLOWED_URLS entry cannot be used as an allow-list prefix, or undefined. */
function urlPrefixProblem(prefix: string): string | undefined {
  let url: URL;
  try {
    url = new URL(prefix);
  } catch {
    return 'is not a valid URL (expected e.g. https://open.feishu.cn/anycross/trigger/callback/)';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'is not an http(s) URL prefix';
  if (!/^https?:\/\/[^/]+/i.test(prefix)) return 'is not an http(s) URL prefix';
  if (url.username || url.password) return 'must not carry credentials';
  return undefined;
}

const QUEUE_VARIABLES = [
  'TASK_SYNC_CONCURRENCY',
  'API_AUTH',
  'API_TOKENS',
  'TASK_SYNC_CONCURRENCY_PER_CLIENT',
  'TASK_SYNC_CONCURRENCY_PER_HOST',
  'TASK_SYNC_BURST_CONCURRENCY',
  'TASK_SYNC_MAX_QUEUED_RECORDS',
  'TASK_SYNC_MAX_QUEUED_BYTES',
  'TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT',
  'TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT',
  'TASK_SYNC_MAX_RECORDS',
] as const;

const DATABASE_VARIABLES = ['DATABASE_URL', 'DATABASE_POOL_MAX', 'DATABASE_STATEMENT_TIMEOUT_MS', 'DATABASE_CONNECT_TIMEOUT_MS', 'DATABASE_SSL', 'DATABASE_CA_FILE', 'DATABASE_LEASE_MS'] as const;

function toConfig(e: Env): Config {
  const queued = taskSyncQueueLimits(e, []);
  const appId = e.LARK_APP_ID ?? e.APP_ID;
  const appSecret = e.LARK_APP_SECRET ?? e.APP_SECRET;
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
    database: databaseConfig(e, []),
    storeCompactBytes: e.STORE_COMPACT_KB * 1024,
    sentryDsn: e.SENTRY_DSN,
    sentryEnvironment: e.SENTRY_ENVIRONMENT,
    metricsToken: e.METRICS_TOKEN,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
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
    burstConcurrency: e.TASK_SYNC_BURST_CONCURRENCY ?? Math.min(2, concurrency),
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
  notAbove('TASK_SYNC_BURST_CONCURRENCY', limits.burstConcurrency, 'TASK_SYNC_CONCURRENCY', concurrency);
  notAbove('TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT', limits.maxQueuedRecordsPerClient, 'TASK_SYNC_MAX_QUEUED_RECORDS', limits.maxQueuedRecords);
  notAbove('TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT', limits.maxQueuedBytesPerClient, 'TASK_SYNC_MAX_QUEUED_BYTES', limits.maxQueuedBytes);
  if (limits.maxQueuedRecordsPerClient < e.TASK_SYNC_MAX_RECORDS) {
    problems.push(
      `TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: ${limits.maxQueuedRecordsPerClient} is less than TASK_SYNC_MAX_RECORDS (${e.TASK_SYNC_MAX_RECORDS}): a full batch could never be queued`,
    );
  }
  return limits;
}

// The start-up banner lives in banner.ts; re-exported for the callers that know it from here.
export { describeFeatures } from './banner.js';

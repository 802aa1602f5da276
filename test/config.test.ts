import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_TASK_SYNC_PREFIXES, describeFeatures, loadConfig } from '../src/config.js';
import { runServiceExpectingExit } from './helpers/service-process.js';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 9876,
      dataDir: './data',
      flowsDir: './flows',
      templatesDir: './templates',
      publicBaseUrl: 'http://127.0.0.1:9876',
      lark: { domain: 'https://open.feishu.cn', eventMode: 'http' },
      auth: { tokens: [], enabled: true },
      taskSync: { concurrency: 8, defaultTimeoutSec: 15, verifySsl: true, allowedPrefixes: DEFAULT_TASK_SYNC_PREFIXES },
      logLevel: 'info',
    });
  });

  it('accepts APP_ID / APP_SECRET as aliases and splits lists', () => {
    const c = loadConfig({ APP_ID: 'cli_0123456789abcdef', APP_SECRET: 's', API_TOKENS: ' a , b ,', ANYCROSS_VERIFY_SSL: 'false' });
    expect(c.lark.appId).toBe('cli_0123456789abcdef');
    expect(c.auth.tokens).toEqual(['a', 'b']);
    expect(c.taskSync.verifySsl).toBe(false);
  });

  it('names every bad variable with its reason', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ PORT: 'eighty', TASK_SYNC_CONCURRENCY: '0', LARK_EVENT_MODE: 'pigeon', ANYCROSS_VERIFY_SSL: 'maybe', LARK_DOMAIN: 'ftp://x' });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const vars = error!.problems.map((p) => p.split(':')[0]);
    expect(vars.sort()).toEqual(['ANYCROSS_VERIFY_SSL', 'LARK_DOMAIN', 'LARK_EVENT_MODE', 'PORT', 'TASK_SYNC_CONCURRENCY']);
    expect(() => loadConfig({ LARK_APP_ID: 'cli_bad', LARK_APP_SECRET: 's' })).toThrow(/LARK_APP_ID: expected "cli_" followed by 16 hex digits/);
    expect(error!.problems.find((p) => p.startsWith('PORT'))).toMatch(/whole number from 0 to 65535, got "eighty"/);
  });

  it('takes a METRICS_TOKEN of 16 characters or more, and says whether metrics are served without printing it', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: must be at least 16 characters/);
    const on = loadConfig({ METRICS_TOKEN: 'metrics-token-0123456789' });
    expect(on.metricsToken).toBe('metrics-token-0123456789');
    expect(describeFeatures(on)).toContain('Metrics: GET /metrics with METRICS_TOKEN');
    expect(describeFeatures(on).join('\n')).not.toContain('metrics-token-0123456789');
    expect(describeFeatures(loadConfig({}))).toContain('Metrics: off — METRICS_TOKEN not set (GET /metrics answers 401)');
  });

  it('describes which features are on without printing secrets', () => {
    const lines = describeFeatures(loadConfig({ LARK_APP_ID: 'cli_0123456789abcdef', LARK_APP_SECRET: 'very-secret', API_TOKENS: 'tok' }));
    expect(lines.join('\n')).not.toMatch(/very-secret|tok\b/);
    expect(lines[0]).toMatch(/Lark: on/);
    expect(describeFeatures(loadConfig({}))[0]).toBe('Lark: off — LARK_APP_ID not set');
  });

  it('stops start-up with one line per bad variable', async () => {
    const { code, output } = await runServiceExpectingExit({ PORT: '-1', TASK_SYNC_RETRIES: 'lots' });
    expect(code).toBe(2);
    expect(output).toMatch(/PORT: expected a whole number/);
    expect(output).toMatch(/TASK_SYNC_RETRIES: expected a whole number/);
  });
});

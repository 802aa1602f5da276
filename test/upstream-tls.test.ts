import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, removeDir, startTestApp, tempDir, waitForJob, type TestApp } from './helpers/test-app.js';

const run = promisify(execFile);
let certDir: string;
let server: Server;
let url: string;
let app: TestApp | undefined;

beforeAll(async () => {
  // A self-signed certificate for 127.0.0.1, made for this test run.
  certDir = await tempDir('lark-bridge-tls-');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'),
  ]);
  server = createServer({ key: await readFile(join(certDir, 'key.pem')), cert: await readFile(join(certDir, 'cert.pem')) }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await removeDir(certDir);
});

afterEach(async () => {
  if (app) {
    await app.stop();
    await removeDir(app.dataDir);
    app = undefined;
  }
});

const sync = async (env: Record<string, string>) => {
  app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${url}/hooks/`, TASK_SYNC_RETRIES: '0', ...env });
  const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${url}/hooks/x`, records: ['r1'] } });
  return waitForJob(app.url, res.json.jobId);
};

describe('TLS to upstreams', () => {
  it('refuses an upstream whose certificate it cannot verify', async () => {
    const job = await sync({});
    expect(job.status).toBe('error');
    expect(job.results[0].error).toMatch(/self[- ]signed|SELF_SIGNED|certificate/i);
  });

  it('trusts the extra CAs of ANYCROSS_CA_BUNDLE', async () => {
    const job = await sync({ ANYCROSS_CA_BUNDLE: join(certDir, 'cert.pem') });
    expect(job.status).toBe('success');
  });

  it('skips verification with ANYCROSS_VERIFY_SSL=false', async () => {
    const job = await sync({ ANYCROSS_VERIFY_SSL: 'false' });
    expect(job.status).toBe('success');
  });
});

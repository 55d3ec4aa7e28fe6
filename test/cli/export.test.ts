import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { exportEvents, runExport } from '../../src/cli/export.js';
import { ApiClient, clientOptionsFrom } from '../../src/cli/http-client.js';

describe('export', () => {
  // This tiny server stands in for the real GET /v1/export, which has its own tests.
  const requests: IncomingMessage[] = [];
  let server: Server;
  let url: string;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tw-export-'));
    server = createServer((req, res) => {
      requests.push(req);
      if (req.headers.authorization !== 'Bearer good') {
        res.writeHead(401, { 'content-type': 'application/problem+json' });
        res.end(
          JSON.stringify({ status: 401, code: 'TW_ERR_UNAUTHENTICATED', detail: 'send a valid API key' }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"seq":1}\n{"se');
      setTimeout(() => res.end('q":2}\n'), 10);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('streams the body to the output and passes format and filters as query parameters', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const result = await exportEvents({
      client: new ApiClient({ url, key: 'good' }),
      format: 'jsonl',
      query: { tenant_id: 'acme', action: undefined },
      out,
    });
    assert.equal(text, '{"seq":1}\n{"seq":2}\n');
    assert.deepEqual(result, { bytes: 20, lines: 2 });
    const sent = new URL(requests.at(-1)?.url ?? '', url);
    assert.equal(sent.searchParams.get('format'), 'jsonl');
    assert.equal(sent.searchParams.get('tenant_id'), 'acme');
    assert.equal(sent.searchParams.has('action'), false);
  });

  test('--out writes the file only once the export is complete', async () => {
    const file = join(dir, 'out.jsonl');
    await runExport({ url, key: 'good', format: 'jsonl', out: file }, {});
    assert.equal(await readFile(file, 'utf8'), '{"seq":1}\n{"seq":2}\n');
    assert.equal(existsSync(`${file}.partial`), false);
  });

  test('a refused export leaves no file and reports code and detail', async () => {
    const file = join(dir, 'refused.jsonl');
    await assert.rejects(
      runExport({ url, key: 'bad', format: 'csv', out: file }, {}),
      /^ApiError: TW_ERR_UNAUTHENTICATED: send a valid API key$/m,
    );
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(`${file}.partial`), false);
  });

  test('flags win over TRAILWARDEN_URL and TRAILWARDEN_KEY, which win over the default', () => {
    const env = { TRAILWARDEN_URL: 'http://env:1', TRAILWARDEN_KEY: 'envkey' };
    assert.deepEqual(clientOptionsFrom({ url: 'http://flag:2' }, env), {
      url: 'http://flag:2',
      key: 'envkey',
    });
    assert.deepEqual(clientOptionsFrom({}, {}), { url: 'http://127.0.0.1:8080', key: undefined });
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestApp, testApp } from '../helpers/app.js';

interface Operation {
  parameters?: Array<{ in: string; name: string }>;
}

/** Routes that read no query parameter, so refuse none. */
const IGNORE_QUERY = new Set([
  'POST /v1/events',
  'POST /v1/keys',
  'DELETE /v1/keys/{key_id}',
  'GET /v1/actions',
  'GET /healthz',
  'GET /readyz',
]);

/** A concrete URL for a path template, naming things that do not exist. */
function concrete(path: string): string {
  return path
    .replace('{event_id}', 'evt_none')
    .replace('{name}', 'nosink')
    .replace('{id}', '1')
    .replace('{key_id}', 'nokey');
}

describe('/openapi.json', () => {
  let t: TestApp;
  let doc: { paths: Record<string, Record<string, Operation>> };
  before(async () => {
    t = await testApp({ audit_reads: false });
    doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
  });
  after(() => t.close());

  test('names every query parameter each route accepts, as the route names them when it refuses another', async () => {
    let compared = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const route = `${method.toUpperCase()} ${path}`;
        if (IGNORE_QUERY.has(route)) continue;
        const res = await t.app.inject({
          method: method.toUpperCase() as 'GET',
          // The required parameters given, so the unknown one is what the route refuses.
          url: `${concrete(path)}?${path.endsWith('/consistency') ? 'from=1&to=1&' : ''}zz_unknown=1`,
          headers: { authorization: t.admin },
          // A body every route's schema takes.
          ...(['post', 'patch'].includes(method) ? { payload: {} } : {}),
        });
        assert.equal(res.json().code, 'TW_ERR_UNKNOWN_PARAMETER', `${route}: ${res.body}`);
        const accepted = (res.json().detail as string)
          .replace(/^unknown query parameter zz_unknown; this endpoint accepts ?/, '')
          .split(', ')
          .filter((name) => name !== '');
        const documented = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
        assert.deepEqual(documented.sort(), accepted.sort(), route);
        compared++;
      }
    }
    // Every route but those that read no query, and the document itself (hidden).
    assert.equal(compared, 41 - IGNORE_QUERY.size);
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SseParser } from '../../src/cli/tail.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

describe('GET /v1/stream and GET /v1/export', () => {
  let t: TestApp;
  let base: string;
  let auditor: string;
  const post = (events: unknown[]) =>
    t.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: t.admin }, payload: events });

  before(async () => {
    t = await testApp({ stream: { heartbeat_ms: 1000 } });
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    auditor = await t.key('auditor', 'acme');
    await post([
      rawEvent({ tenant_id: 'acme', event_id: 'evt_s1', reason: 'has "quotes", commas\nand a newline' }),
      rawEvent({ tenant_id: 'globex', event_id: 'evt_s2' }),
      rawEvent({ tenant_id: 'acme', event_id: 'evt_s3', action: 'role.assign' }),
    ]);
  });
  after(() => t.close());

  async function collect(url: string, headers: Record<string, string>, until: (ids: string[]) => boolean) {
    const ac = new AbortController();
    const res = await fetch(`${base}${url}`, {
      headers: { authorization: auditor, ...headers },
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const parser = new SseParser();
    const ids: string[] = [];
    const seqs: string[] = [];
    const reader = res.body!.getReader();
    const timeout = setTimeout(() => ac.abort(), 5000);
    try {
      while (!until(ids)) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const item of parser.feed(Buffer.from(value).toString('utf8'))) {
          if (item.kind === 'message' && item.event === 'audit') {
            const e = JSON.parse(item.data);
            ids.push(e.event_id);
            seqs.push(item.id ?? '');
          }
        }
      }
    } finally {
      clearTimeout(timeout);
      ac.abort();
    }
    return { ids, seqs };
  }

  test('the stream replays from after= in seq order, with the tenant filter, then delivers new events live', async () => {
    const live = collect('/v1/stream?after=0&action=user.*', {}, (ids) => ids.includes('evt_live'));
    await new Promise((r) => setTimeout(r, 100));
    await post([
      rawEvent({ tenant_id: 'acme', event_id: 'evt_live' }),
      rawEvent({ tenant_id: 'globex', event_id: 'evt_hidden' }),
    ]);
    const { ids, seqs } = await live;
    assert.deepEqual(ids, ['evt_s1', 'evt_live']);
    assert.ok(Number(seqs[0]) < Number(seqs[1]));
  });

  test('Last-Event-ID resumes after the given seq', async () => {
    const all = await collect('/v1/stream?after=0', {}, (ids) => ids.includes('evt_s3'));
    const first = all.seqs[0]!;
    const resumed = await collect('/v1/stream', { 'last-event-id': first }, (ids) => ids.includes('evt_s3'));
    assert.equal(resumed.ids[0], all.ids[1]);
    assert.ok(!resumed.ids.includes('evt_s1'));
  });

  test('a bad Last-Event-ID or an unknown parameter is refused before streaming', async () => {
    const bad = await fetch(`${base}/v1/stream`, {
      headers: { authorization: auditor, 'last-event-id': 'abc' },
    });
    assert.equal(bad.status, 400);
    const unknown = await fetch(`${base}/v1/stream?colour=red`, { headers: { authorization: auditor } });
    assert.equal(unknown.status, 400);
    assert.equal(((await unknown.json()) as { code: string }).code, 'TW_ERR_UNKNOWN_PARAMETER');
  });

  test('the JSONL export holds exactly the events the stored log holds for the tenant, in seq order', async () => {
    const res = await fetch(`${base}/v1/export?format=jsonl&action=user.login`, {
      headers: { authorization: auditor },
    });
    assert.equal(res.status, 200);
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((e) => e.event_id),
      ['evt_s1', 'evt_live'],
    );
    const stored = await t.parts.ctx.store.findByEventId('evt_s1', 'acme');
    assert.deepEqual(lines[0], stored[0]);
  });

  test('the CSV export has a column per field, nested ones flattened, and quotes hostile values', async () => {
    const res = await fetch(`${base}/v1/export?format=csv&action=user.login`, {
      headers: { authorization: auditor },
    });
    const text = await res.text();
    const [header] = text.split('\r\n');
    assert.ok(
      header!.startsWith(
        'seq,event_id,timestamp,received_at,tenant_id,actor.type,actor.id,actor.name,actor.email,action',
      ),
    );
    assert.ok(text.includes('"has ""quotes"", commas\nand a newline"'));
    assert.equal(
      (await fetch(`${base}/v1/export?format=xml`, { headers: { authorization: auditor } })).status,
      400,
    );
  });

  test('an export is recorded as audit.trail.export', async () => {
    const before = await t.parts.ctx.store.headSeq();
    await fetch(`${base}/v1/export?format=jsonl`, { headers: { authorization: auditor } }).then((r) =>
      r.text(),
    );
    // The export's record joins the next commit; the answer does not wait for it.
    for (let i = 0; i < 100 && (await t.parts.ctx.store.headSeq()) === before; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const rows = await t.parts.ctx.store.query(
      { tenantIds: ['acme'], action: { value: 'audit.trail.export', prefix: false } },
      { order: 'desc', limit: 5 },
    );
    assert.ok(rows.length >= 1);
  });
});

/**
 * Issue 14, item 11: JSON allows U+0085, U+2028 and U+2029 raw inside
 * strings, and JSON.stringify leaves them raw, so a line splitter (Python's
 * str.splitlines, some SIEM parsers) saw one JSON record as several. Every
 * JSON-family output — each JSON format through a sink (the stored-JSON fast
 * path too), the JSON Lines export and the stream's data lines — must be one
 * record per event for the most eager splitter, and parse back to the event.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { StoredEvent } from '../../src/event/event.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { HOSTILE_STRINGS, splitRecords } from '../helpers/hostile.js';

/** Ingest refuses control characters in names and all but tab, CR and LF in free text; U+0085 is allowed. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const asText = (v: string) => v.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '');
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const asName = (v: string) => v.replace(/[\u0000-\u001f\u007f]/g, '') || 'x';
const VALUES = HOSTILE_STRINGS.filter((v) => v.length < 4000);

/** Sinks of every JSON-family format; `json` and `jsonl` unshaped take the stored-JSON fast path. */
const SINKS: Array<{ name: string; format: string; shape?: Record<string, unknown> }> = [
  { name: 'json-stored', format: 'json' },
  { name: 'jsonl-stored', format: 'jsonl' },
  { name: 'json-shaped', format: 'json', shape: { redact: [{ path: 'source_ip', mode: 'mask' }] } },
  { name: 'ocsf', format: 'ocsf' },
  { name: 'ecs', format: 'ecs' },
  { name: 'splunk-hec', format: 'splunk_hec' },
];

describe('U+0085, U+2028 and U+2029 in every JSON-family output', () => {
  let t: TestApp;
  let outDir: string;
  let stored: StoredEvent[];
  before(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'tw-separators-'));
    t = await testApp({
      audit_reads: false,
      sinks: SINKS.map(({ name, format, shape }) => ({
        name,
        type: 'file',
        path: join(outDir, `${name}.log`),
        format,
        ...(shape ? { shape } : {}),
        start_from: 'beginning',
        filter: { include_actions: ['user.*'] },
      })),
    });
    const events = VALUES.map((v, i) =>
      rawEvent({
        event_id: `evt_sep${i}`,
        action: 'user.password.reset',
        outcome: 'failure',
        reason: asText(v),
        actor: { type: 'user', id: `usr_${i}`, name: asName(v) },
        metadata: { note: asText(v), [`key ${asName(v).slice(0, 20)}`]: 1 },
        changes: [{ field: 'note', old: asText(v), new: 'x\u2028y' }],
      }),
    );
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: t.admin },
      payload: events,
    });
    assert.equal(res.statusCode, 201, res.body);
    stored = await t.parts.ctx.store.query(
      { tenantIds: null, action: { value: 'user.', prefix: true } },
      { order: 'asc', limit: 1000 },
    );
    assert.equal(stored.length, VALUES.length);
    assert.ok(
      stored.some((e) => /[\u0085\u2028\u2029]/.test(JSON.stringify(e))),
      'the stored events hold the separators raw',
    );
  });
  after(async () => {
    await t.close();
    rmSync(outDir, { recursive: true, force: true });
  });

  for (const { name, format } of SINKS) {
    test(`${name} (${format} through a file sink): one record per event, each parsing back to it`, async () => {
      for (let i = 0; i < 200; i++) {
        if ((await t.parts.ctx.delivery.admin.status(name, null)).lag_events === 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const records = splitRecords(readFileSync(join(outDir, `${name}.log`), 'utf8'));
      assert.equal(records.length, stored.length, 'one record per event');
      records.forEach((record, i) => {
        const e = stored[i]!;
        const parsed = JSON.parse(record);
        if (name === 'json-stored' || name === 'jsonl-stored') assert.deepEqual(parsed, e);
        else if (name === 'json-shaped') {
          // Shaped, so encoded by the format rather than sent as stored.
          assert.notEqual(parsed.source_ip, e.source_ip);
          assert.deepEqual(parsed, { ...e, source_ip: parsed.source_ip });
        } else if (format === 'ocsf') {
          assert.equal(parsed.metadata.uid, e.event_id);
          assert.equal(parsed.status_detail, e.reason);
          assert.deepEqual(parsed.unmapped.metadata, e.metadata);
        } else if (format === 'ecs') {
          assert.equal(parsed.event.id, e.event_id);
          assert.equal(parsed.event.reason, e.reason);
          assert.deepEqual(parsed.trailwarden.changes, e.changes);
        } else assert.deepEqual(parsed.event, e);
      });
    });
  }

  test('the JSON Lines export: one record per event, each parsing back to it', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/export?format=jsonl&action=user.*',
      headers: { authorization: t.admin },
    });
    assert.equal(res.statusCode, 200, res.body);
    const records = splitRecords(res.body);
    assert.equal(records.length, stored.length);
    assert.deepEqual(
      records.map((r) => JSON.parse(r)),
      stored,
    );
  });

  test("the stream's data lines: every line whole for the most eager splitter, each event parsing back", async () => {
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 5000);
    let raw = '';
    try {
      const res = await fetch(`${base}/v1/stream?after=0&action=user.*`, {
        headers: { authorization: t.admin },
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      while (!raw.includes(`"event_id":"${stored.at(-1)!.event_id}"`)) {
        const { value, done } = await reader.read();
        if (done) break;
        raw += decoder.decode(value, { stream: true });
      }
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    // Cut at the last complete message: the read may have stopped inside the next one.
    const lines = splitRecords(raw.slice(0, raw.lastIndexOf('\n\n') + 2));
    for (const line of lines) {
      assert.match(
        line,
        /^(|id: \d+|event: audit|data: \{.*\}|retry: \d+|: ping)$/,
        `a whole SSE line: ${line}`,
      );
    }
    const events = lines.filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    assert.deepEqual(events, stored);
  });
});

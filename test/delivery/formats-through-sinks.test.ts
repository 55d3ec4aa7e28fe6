/**
 * Every format in the one formats table works through the delivery engine:
 * each sink carries text encoded by the table, one line per event, whatever
 * the values hold.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FORMAT_NAMES } from '../../src/delivery/formats/registry.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { HOSTILE_STRINGS } from '../helpers/hostile.js';

/** Hostile values an event can carry (NUL is refused at ingest; the very long one would exceed the event size limit). */
const HOSTILE = HOSTILE_STRINGS.filter((v) => !v.includes('\u0000') && v.length < 4000);

describe('every format through the file sink', () => {
  let t: TestApp;
  /** Where the sinks write: a folder of its own, outside the data folder. */
  const out = mkdtempSync(join(tmpdir(), 'tw-formats-out-'));
  before(async () => {
    t = await testApp({
      audit_reads: false,
      sinks: FORMAT_NAMES.map((format) => ({
        name: `file-${format.replace('_', '-')}`,
        type: 'file',
        path: join(out, `${format}.log`),
        format,
        start_from: 'beginning',
        filter: { include_actions: ['user.*'] },
      })),
    });
    // Ingest refuses control characters other than tab, CR and LF in free text, and any in names.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
    const text = (v: string) => v.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '');
    const events = HOSTILE.map((v, i) =>
      rawEvent({
        event_id: `evt_h${i}`,
        action: 'user.password.reset',
        outcome: 'failure',
        reason: text(v),
        // biome-ignore lint/suspicious/noControlCharactersInRegex: names may hold none
        actor: { type: 'user', id: `usr_${i}`, name: v.replace(/[\u0000-\u001f\u007f]/g, '') || 'x' },
        metadata: { note: text(v) },
      }),
    );
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: t.admin },
      payload: events,
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(async () => {
    await t.close();
    rmSync(out, { recursive: true, force: true });
  });

  for (const format of FORMAT_NAMES) {
    test(`${format}: one line per event, and the line names the event`, async () => {
      const name = `file-${format.replace('_', '-')}`;
      for (let i = 0; i < 200; i++) {
        if ((await t.parts.ctx.delivery.admin.status(name, null)).lag_events === 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const text = readFileSync(join(out, `${format}.log`), 'utf8');
      const lines = text.split('\n');
      assert.equal(lines.pop(), '', 'the file ends with a newline');
      assert.equal(lines.length, HOSTILE.length);
      lines.forEach((line, i) => {
        assert.ok(!line.includes('\r'), `${format} line ${i} holds a raw carriage return`);
        if (['json', 'jsonl', 'ocsf', 'ecs', 'splunk_hec'].includes(format)) JSON.parse(line);
        assert.ok(
          line.includes(`evt_h${i}`) || line.includes(`usr_${i}`),
          `${format} line ${i} carries the event: ${line.slice(0, 200)}`,
        );
      });
    });
  }
});

/**
 * The registry is the one list of sink kinds: each is registered under its
 * own kind, has its page in docs/sinks/, and every list of kinds in
 * docs/delivery.md (the kinds, the `type` field, the batch and retry
 * defaults) names exactly the registered kinds with their defaults. A kind
 * added or removed without its docs fails here, naming what to write.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SINK_KINDS, SINKS } from '../../../src/delivery/sinks/registry.js';

const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs');
/** docs/delivery.md without its code blocks (a `# comment` in YAML is not a heading). */
const delivery = readFileSync(join(DOCS, 'delivery.md'), 'utf8').replaceAll(/^```[\s\S]*?^```$/gm, '');

/** A kind's docs page: docs/sinks/<kind>.md, kebab-case like every file name (`splunk_hec` → `splunk-hec.md`). */
const pageOf = (kind: string) => `${kind.replaceAll('_', '-')}.md`;

const sorted = (names: Iterable<string>) => [...names].sort();

/** The text of a section of docs/delivery.md, from its heading to the next heading of any level. */
function section(heading: string): string {
  const start = delivery.indexOf(`\n${heading}\n`);
  assert.notEqual(start, -1, `docs/delivery.md has no "${heading}" heading`);
  const rest = delivery.slice(start + heading.length + 2);
  const end = rest.search(/^#{1,6} /m);
  return end === -1 ? rest : rest.slice(0, end);
}

/** The rows of the first table in `text` (header and separator left out), as trimmed cells. */
function tableRows(text: string): string[][] {
  const lines = text.split('\n').filter((l) => l.startsWith('|'));
  return lines.slice(2).map((l) =>
    l
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim()),
  );
}

/** The kinds named in backticks in `text`, e.g. "`webhook`, `syslog` or `stdout`". */
const kindsIn = (text: string) => [...text.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!);

describe('the sink registry', () => {
  test('registers every kind under its own name', () => {
    for (const [name, def] of Object.entries(SINKS)) assert.equal(def.kind, name);
    assert.deepEqual(SINK_KINDS, Object.keys(SINKS));
  });

  test('every registered kind has its page in docs/sinks/, and every page there is a registered kind', () => {
    // archive.md is no kind: the page the archive kinds (s3, azure_blob, gcs) share.
    const pages = readdirSync(join(DOCS, 'sinks')).filter((f) => f.endsWith('.md') && f !== 'archive.md');
    assert.deepEqual(sorted(pages), sorted(SINK_KINDS.map(pageOf)));
  });

  test("docs/delivery.md's list of kinds names each registered kind once, linking its page", () => {
    const listed = [
      ...delivery.matchAll(/^- \[[^\]]+\]\(sinks\/([a-z0-9-]+\.md)\) \(`type: ([a-z0-9_]+)`\)/gm),
    ];
    assert.deepEqual(sorted(listed.map((m) => m[2]!)), sorted(SINK_KINDS));
    for (const [, page, kind] of listed) assert.equal(page, pageOf(kind!), `the link of ${kind}`);
  });

  test('the `type` field of the common settings names exactly the registered kinds', () => {
    const row = tableRows(section('## Sink settings common to every kind')).find((r) => r[0] === '`type`');
    assert.ok(row, 'docs/delivery.md has a `type` row in "Sink settings common to every kind"');
    assert.deepEqual(sorted(kindsIn(row[2]!)), sorted(SINK_KINDS));
  });

  test('the batch defaults table gives every registered kind its defaults', () => {
    const rows = tableRows(section('### Batches'));
    const table = Object.fromEntries(
      rows.map(([kind, ...limits]) => [kindsIn(kind!)[0], limits.map(Number)]),
    );
    const expected = Object.fromEntries(
      Object.values(SINKS).map((def) => [
        def.kind,
        [def.batchDefault.max_events, def.batchDefault.max_bytes, def.batchDefault.max_wait_ms],
      ]),
    );
    assert.deepEqual(table, expected);
  });

  test('the retry defaults table names, for each schedule, the kinds that use it', () => {
    const rows = tableRows(section('## Retry schedules'));
    const table = Object.fromEntries(
      rows.map(([name, usedBy]) => [kindsIn(name!)[0], sorted(kindsIn(usedBy!))]),
    );
    const expected: Record<string, string[]> = {};
    for (const def of Object.values(SINKS)) {
      expected[def.retryDefault] = [...(expected[def.retryDefault] ?? []), def.kind];
    }
    for (const kinds of Object.values(expected)) kinds.sort();
    assert.deepEqual(table, expected);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_KEY_TEMPLATE,
  expandKey,
  type KeyTemplate,
  keyTemplateProblems,
  parseKeyTemplate,
  partitionOf,
  tenantInKey,
} from '../../../../src/delivery/sinks/archive/key-template.js';

function parsed(source: string): KeyTemplate {
  const p = parseKeyTemplate(source);
  assert.ok(p.ok, p.ok ? '' : p.problems.join('; '));
  return p.template;
}

const at = new Date('2026-03-15T08:42:17.003Z');

describe('archive key templates', () => {
  test('the default template expands Hive-style with zero-padded seqs, partitioned by the hour', () => {
    const t = parsed(DEFAULT_KEY_TEMPLATE);
    assert.equal(t.partition, 'hh');
    assert.equal(t.prefix, 'trailwarden/');
    assert.equal(
      expandKey(t, { tenant: 'acme', date: at, firstSeq: 41, lastSeq: 1234, format: 'json' }),
      'trailwarden/tenant=acme/dt=2026-03-15/hour=08/0000000000000041-0000000000001234',
    );
  });

  test('{format} and the date units expand; the partition is the finest unit named', () => {
    const t = parsed('logs/{format}/{yyyy}/{mm}/{tenant}-{first_seq}');
    assert.equal(t.partition, 'mm');
    assert.equal(
      expandKey(t, { tenant: 't1', date: at, firstSeq: 7, lastSeq: 9, format: 'ocsf' }),
      'logs/ocsf/2026/03/t1-0000000000000007',
    );
    assert.equal(partitionOf('mm', at), '2026-03');
    assert.equal(partitionOf('hh', at), '2026-03-15T08');
    assert.equal(parsed('{tenant}/{first_seq}').partition, 'none');
  });

  test('the checkpoint prefix is the text before the first placeholder, cut after its last /', () => {
    assert.equal(parsed('audit/prod/x{tenant}/{first_seq}').prefix, 'audit/prod/');
    assert.equal(parsed('{tenant}/{first_seq}').prefix, '');
    assert.equal(parsed('flat-{tenant}-{first_seq}').prefix, '');
  });

  test('an unknown placeholder is refused by name', () => {
    const p = parseKeyTemplate('x/{tenant}/{day}/{first_seq}');
    assert.ok(!p.ok);
    assert.match(p.problems.join(), /unknown placeholder \{day\}/);
  });

  test('a template without {first_seq} is refused: the key must derive from the range', () => {
    const p = parseKeyTemplate('x/{tenant}/{last_seq}');
    assert.ok(!p.ok);
    assert.match(p.problems.join(), /must name \{first_seq\}/);
  });

  test('a date hierarchy with a hole is refused, naming the missing unit', () => {
    for (const [source, missing] of [
      ['{tenant}/{mm}/{first_seq}', 'yyyy'],
      ['{tenant}/{yyyy}/{dd}/{first_seq}', 'mm'],
      ['{tenant}/{yyyy}/{mm}/{hh}/{first_seq}', 'dd'],
    ] as const) {
      const p = parseKeyTemplate(source);
      assert.ok(!p.ok, source);
      assert.match(p.problems.join(), new RegExp(`name \\{${missing}\\} too`), source);
    }
  });

  test('traversal and characters providers refuse are refused', () => {
    for (const [source, problem] of [
      ['/abs/{tenant}/{first_seq}', /may not start with \//],
      ['a/../{tenant}/{first_seq}', /\. or \.\. folder/],
      ['./{tenant}/{first_seq}', /\. or \.\. folder/],
      ['a//{tenant}/{first_seq}', /\/\//],
      ['a\\{tenant}/{first_seq}', /backslash/],
      ['a\n{tenant}/{first_seq}', /control character U\+000a/],
      ['a b/{tenant}/{first_seq}', /a space/],
      ['a?/{tenant}/{first_seq}', /"\?"/],
      ['{tenant}/{first_seq}/', /may not end with \//],
      ['{tenant}/{first_seq', /never closed/],
      [`${'x'.repeat(520)}/{tenant}/{first_seq}`, /at most 512/],
    ] as const) {
      const p = parseKeyTemplate(source);
      assert.ok(!p.ok, source);
      assert.match(p.problems.join(), problem, source);
    }
  });

  test('{tenant} is required unless the filter lets exactly one tenant through', () => {
    const noTenant = 'audit/{yyyy}/{first_seq}';
    assert.match(keyTemplateProblems(noTenant, null).join(), /must name \{tenant\}/);
    assert.match(keyTemplateProblems(noTenant, ['a', 'b']).join(), /must name \{tenant\}/);
    assert.deepEqual(keyTemplateProblems(noTenant, ['acme']), []);
    assert.deepEqual(keyTemplateProblems(DEFAULT_KEY_TEMPLATE, null), []);
  });

  test('a tenant id of dots only cannot become a . or .. folder', () => {
    const t = parsed('{tenant}/{first_seq}');
    assert.equal(tenantInKey('..'), '%2E%2E');
    assert.equal(tenantInKey('.'), '%2E');
    assert.equal(tenantInKey('a..b'), 'a..b');
    assert.equal(
      expandKey(t, { tenant: '..', date: at, firstSeq: 1, lastSeq: 1, format: 'json' }),
      '%2E%2E/0000000000000001',
    );
    assert.throws(() => tenantInKey('a/b'), /no tenant id/);
  });
});

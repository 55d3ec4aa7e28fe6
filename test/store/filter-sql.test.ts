import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { filterToSql, type SqlDialect } from '../../src/store/filter-sql.js';
import { postgresDialect } from '../../src/store/postgres/postgres-dialect.js';
import { sqliteDialect } from '../../src/store/sqlite/sqlite-dialect.js';
import type { EventFilter } from '../../src/store/store.js';

/** A filter using every field, so every clause is written. */
const everything: EventFilter = {
  tenantIds: ['acme', 'globex', 'initech'],
  from: '2024-01-01T00:00:00.000Z',
  to: '2025-01-01T00:00:00.000Z',
  action: { value: 'user.', prefix: true },
  actorId: 'u-1',
  resourceType: 'document',
  resourceId: 'd-1',
  outcome: 'failure',
  q: '50%_off\\',
};
const page = { order: 'desc' as const, afterSeq: 42 };

/** The placeholders of a WHERE clause in the order they appear. */
const placeholders = (where: string) => where.match(/\?|\$\d+/g) ?? [];

describe('event filters as SQL', () => {
  test('SQLite writes one ? per parameter, each tenant its own', () => {
    const { where, params } = filterToSql(everything, page, sqliteDialect);
    assert.equal(placeholders(where).length, params.length);
    assert.deepEqual(params.slice(0, 3), ['acme', 'globex', 'initech']);
  });

  test('PostgreSQL numbers its parameters from $1 in the order they appear, the tenants as one array', () => {
    const { where, params } = filterToSql(everything, page, postgresDialect);
    assert.deepEqual(
      placeholders(where),
      params.map((_, i) => `$${i + 1}`),
    );
    assert.deepEqual(params[0], ['acme', 'globex', 'initech']);
  });

  test('both dialects bind the same values in the same order', () => {
    const sqlite = filterToSql(everything, page, sqliteDialect).params;
    const postgres = filterToSql(everything, page, postgresDialect).params;
    assert.deepEqual(sqlite, postgres.flat());
    // The prefix is a code-point range; q's LIKE wildcards and backslash match literally.
    assert.deepEqual(sqlite.slice(5, 7), ['user.', 'user.\uffff']);
    assert.ok(sqlite.includes('%50\\%\\_off\\\\%'));
  });

  for (const dialect of [sqliteDialect, postgresDialect] satisfies SqlDialect[]) {
    const name = dialect === sqliteDialect ? 'SQLite' : 'PostgreSQL';
    test(`${name}: no tenant matches nothing, and no filter matches everything, without parameters`, () => {
      assert.deepEqual(filterToSql({ ...everything, tenantIds: [] }, page, dialect), {
        where: dialect.never,
        params: [],
      });
      assert.deepEqual(filterToSql({ tenantIds: null }, undefined, dialect), {
        where: dialect.always,
        params: [],
      });
    });
  }
});

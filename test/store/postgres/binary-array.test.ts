/**
 * The binary array encoder against a real PostgreSQL: every array the
 * sequencer sends is read back by the server exactly as written (text with
 * quotes, backslashes, JSON and characters outside ASCII; NULLs; the edges of
 * int4 and safe int8; raw bytea), and a wrong element type is refused by the
 * server rather than misread.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { byteaArray, int4Array, int8Array, textArray } from '../../../src/store/postgres/binary-array.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../../helpers/postgres.js';

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (set TW_PG_BIN)' : undefined;

describe('PostgreSQL binary arrays', { skip }, () => {
  let cluster: PostgresCluster;
  let client: pg.Client;

  before(async () => {
    cluster = await startPostgres();
    client = new pg.Client({ connectionString: await cluster.createDatabase() });
    await client.connect();
  });
  after(async () => {
    await client?.end();
    await cluster?.stop();
  });

  /** The elements of `array`, sent as a `type[]` parameter, as the server unnests them, in order (bigint as text). */
  const readBack = async (type: string, array: Buffer): Promise<unknown[]> => {
    const { rows } = await client.query<{ v: unknown }>(
      `SELECT v FROM unnest($1::${type}[]) WITH ORDINALITY AS t(v, n) ORDER BY n`,
      [array],
    );
    return rows.map((r) => r.v);
  };

  test('text elements arrive byte for byte, NULLs as NULL, in order', async () => {
    const values = [
      'plain',
      '',
      null,
      'quotes " and \\ backslashes, {braces}, commas',
      JSON.stringify({ name: 'Zoë "the admin"', path: 'C:\\temp', emoji: '🎉' }),
      'x'.repeat(70_000),
    ];
    assert.deepEqual(await readBack('text', textArray(values)), values);
  });

  test('int8 round-trips negative values, NULLs and the largest safe integers', async () => {
    const values = [
      0,
      1,
      -1,
      -5,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 40 + 7,
      null,
      Number.MAX_SAFE_INTEGER,
      -Number.MAX_SAFE_INTEGER,
    ];
    const back = await readBack('bigint', int8Array(values));
    assert.deepEqual(
      back.map((v) => (v === null ? null : Number(v))),
      values,
    );
    assert.throws(() => int8Array([2 ** 53]), RangeError);
    assert.throws(() => int8Array([1.5]), RangeError);
  });

  test('int4 round-trips its whole range and refuses what does not fit', async () => {
    const values = [0, 7, -(2 ** 31), 2 ** 31 - 1];
    assert.deepEqual(await readBack('int', int4Array(values)), values);
    assert.throws(() => int4Array([2 ** 31]), RangeError);
  });

  test('bytea elements are raw bytes, empty ones included', async () => {
    const values = [Buffer.of(0, 1, 255), Buffer.alloc(0), Buffer.alloc(32, 0xab)];
    assert.deepEqual(await readBack('bytea', byteaArray(values)), values);
  });

  test('empty arrays are empty', async () => {
    const { rows } = await client.query<{ t: number; i: number; b: number; j: number }>(
      'SELECT cardinality($1::text[]) AS t, cardinality($2::bigint[]) AS i, cardinality($3::bytea[]) AS b, cardinality($4::int[]) AS j',
      [textArray([]), int8Array([]), byteaArray([]), int4Array([])],
    );
    assert.deepEqual(rows[0], { t: 0, i: 0, b: 0, j: 0 });
  });

  test('an array of the wrong element type is refused by the server, not misread', async () => {
    await assert.rejects(client.query('SELECT $1::bigint[]', [textArray(['1'])]), /element type/);
  });
});

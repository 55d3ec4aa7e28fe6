/**
 * One-dimensional arrays in PostgreSQL's binary format (`array_recv`), sent
 * as Buffer parameters, which node-postgres binds in binary.
 *
 * The sequencer writes each group as a dozen arrays of a thousand values. In
 * the text format every element is quoted and backslash-escaped by the
 * driver (two regular-expression passes over each ~700-byte event body, and
 * byteas written out as hex), and PostgreSQL parses it all back; the binary
 * format is a length prefix and the raw bytes on both sides. The parameter's
 * cast in the statement (`$1::text[]`) must name the same element type as
 * the array, or PostgreSQL refuses it ("wrong element type").
 *
 * Layout (src/backend/utils/adt/arrayfuncs.c, array_send): int32 number of
 * dimensions, int32 has-nulls flag, uint32 element type OID, then per
 * dimension int32 length and int32 lower bound, then per element int32 byte
 * length (-1 for NULL) and the element's binary form. All big-endian.
 */

/** Element type OIDs (src/include/catalog/pg_type.dat). */
const OID = { int4: 23, int8: 20, text: 25, bytea: 17 } as const;

const HEADER_BYTES = 20;
const EMPTY_HEADER_BYTES = 12;

/** A `text[]`; null elements become SQL NULLs. */
export function textArray(values: ReadonlyArray<string | null>): Buffer {
  let size = 0;
  let nulls = false;
  const lengths = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      nulls = true;
      lengths[i] = -1;
      size += 4;
    } else {
      const n = Buffer.byteLength(v, 'utf8');
      lengths[i] = n;
      size += 4 + n;
    }
  }
  const { buf, at } = header(values.length, OID.text, nulls, size);
  let o = at;
  for (let i = 0; i < values.length; i++) {
    const n = lengths[i]!;
    buf.writeInt32BE(n, o);
    o += 4;
    if (n > 0) o += buf.write(values[i]!, o, n, 'utf8');
  }
  return buf;
}

/** A `bytea[]` of raw bytes (no hex). */
export function byteaArray(values: readonly Uint8Array[]): Buffer {
  let size = 0;
  for (const v of values) size += 4 + v.length;
  const { buf, at } = header(values.length, OID.bytea, false, size);
  let o = at;
  for (const v of values) {
    buf.writeInt32BE(v.length, o);
    buf.set(v, o + 4);
    o += 4 + v.length;
  }
  return buf;
}

/** An `int4[]`. */
export function int4Array(values: readonly number[]): Buffer {
  const { buf, at } = header(values.length, OID.int4, false, values.length * 8);
  let o = at;
  for (const v of values) {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new RangeError(`not an int4: ${v}`);
    buf.writeInt32BE(4, o);
    buf.writeInt32BE(v, o + 4);
    o += 8;
  }
  return buf;
}

/** An `int8[]` (bigint) of safe integers; null elements become SQL NULLs. */
export function int8Array(values: ReadonlyArray<number | null>): Buffer {
  let nulls = false;
  let size = 0;
  for (const v of values) {
    if (v === null) {
      nulls = true;
      size += 4;
    } else {
      if (!Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
      size += 12;
    }
  }
  const { buf, at } = header(values.length, OID.int8, nulls, size);
  let o = at;
  for (const v of values) {
    if (v === null) {
      buf.writeInt32BE(-1, o);
      o += 4;
      continue;
    }
    buf.writeInt32BE(8, o);
    // Two 32-bit halves: exact for safe integers, and no BigInt per element.
    const high = Math.floor(v / 2 ** 32);
    buf.writeInt32BE(high, o + 4);
    buf.writeUInt32BE(v - high * 2 ** 32, o + 8);
    o += 12;
  }
  return buf;
}

/** The array header; `at` is where the first element goes. An empty array has no dimensions. */
function header(
  length: number,
  oid: number,
  nulls: boolean,
  elementBytes: number,
): { buf: Buffer; at: number } {
  if (length === 0) {
    const buf = Buffer.alloc(EMPTY_HEADER_BYTES);
    buf.writeUInt32BE(oid, 8);
    return { buf, at: EMPTY_HEADER_BYTES };
  }
  const buf = Buffer.allocUnsafe(HEADER_BYTES + elementBytes);
  buf.writeInt32BE(1, 0);
  buf.writeInt32BE(nulls ? 1 : 0, 4);
  buf.writeUInt32BE(oid, 8);
  buf.writeInt32BE(length, 12);
  buf.writeInt32BE(1, 16);
  return { buf, at: HEADER_BYTES };
}

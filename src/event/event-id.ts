import { randomBytes } from 'node:crypto';
import { ulid } from 'ulid';

/** Random bytes fetched per refill: one `randomBytes` call serves 256 ids. */
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let next = 0;

/**
 * ulid's PRNG contract (a fraction in [0, 1)), drawn from a pooled buffer:
 * ulid's default PRNG makes one `randomBytes(1)` call per character (16 per
 * id, ~28 µs), which dominated ingest CPU.
 */
function pooledRandom(): number {
  if (next === POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    next = 0;
  }
  // 256 is a multiple of ulid's 32-letter alphabet, so every letter stays equally likely.
  return pool[next++]! / 256;
}

/** A new `event_id`: `evt_` + a ULID (48-bit millisecond time, 80 random bits). */
export function newEventId(timeMs: number = Date.now()): string {
  return `evt_${ulid(timeMs, pooledRandom)}`;
}

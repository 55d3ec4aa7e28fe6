import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KEY_CACHE_MS, KeyCache } from '../../../src/store/postgres/key-cache.js';
import type { ApiKeyRecord } from '../../../src/store/store.js';

const key = (keyId: string, name = 'k'): ApiKeyRecord => ({
  keyId,
  secretHash: 'h',
  role: 'publisher',
  tenantId: null,
  name,
  createdAt: '2026-11-22T00:00:00.000Z',
  revokedAt: null,
});

/** A cache on a clock the test moves. */
function cacheAt(start = 1000): { cache: KeyCache; tick: (ms: number) => void } {
  let now = start;
  return { cache: new KeyCache(() => now), tick: (ms) => (now += ms) };
}

describe('KeyCache', () => {
  test('keeps nothing until revocations are heard', () => {
    const { cache, tick } = cacheAt();
    const read = cache.readStarts();
    tick(1);
    cache.put(key('a'), read);
    assert.equal(cache.get('a'), undefined);
  });

  test('serves a key read after listening began, for KEY_CACHE_MS', () => {
    const { cache, tick } = cacheAt();
    cache.setListening(true);
    tick(1);
    cache.put(key('a'), cache.readStarts());
    tick(KEY_CACHE_MS - 1);
    assert.equal(cache.get('a')?.keyId, 'a');
    tick(1);
    assert.equal(cache.get('a'), undefined, 'a key read KEY_CACHE_MS ago is read again');
  });

  test('a read that started before listening began is not kept: it may have missed a revocation', () => {
    const { cache, tick } = cacheAt();
    const read = cache.readStarts();
    tick(1);
    cache.setListening(true);
    tick(1);
    cache.put(key('a'), read);
    assert.equal(cache.get('a'), undefined);
  });

  test('a revocation drops the key, and a read it crossed is not kept', () => {
    const { cache, tick } = cacheAt();
    cache.setListening(true);
    tick(1);
    cache.put(key('a'), cache.readStarts());
    cache.put(key('b'), cache.readStarts());
    tick(1);
    const crossed = cache.readStarts();
    tick(1);
    cache.drop('a');
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.get('b')?.keyId, 'b', 'other keys stay');
    tick(1);
    cache.put(key('a'), crossed);
    assert.equal(cache.get('a'), undefined, 'the read began before the revocation was heard');
    cache.put(key('a'), cache.readStarts());
    assert.equal(cache.get('a')?.keyId, 'a', 'a read after it is kept');
  });

  test('losing the LISTEN connection drops everything and keeps nothing until it is back', () => {
    const { cache, tick } = cacheAt();
    cache.setListening(true);
    tick(1);
    cache.put(key('a'), cache.readStarts());
    cache.setListening(false);
    assert.equal(cache.get('a'), undefined);
    tick(1);
    cache.put(key('a'), cache.readStarts());
    assert.equal(cache.get('a'), undefined);
  });
});

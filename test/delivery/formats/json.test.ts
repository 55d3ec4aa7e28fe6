import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEncoder } from '../../../src/delivery/formats/registry.js';
import { HOSTILE_STRINGS, hostileEvent, splitRecords } from '../../helpers/hostile.js';

for (const name of ['json', 'jsonl']) {
  describe(`${name} format`, () => {
    const encode = createEncoder(name, {});

    test('hostile values stay one record for every line splitter and parse back to the event', () => {
      for (const value of HOSTILE_STRINGS) {
        const event = hostileEvent(value);
        const line = encode(event);
        assert.deepEqual(splitRecords(line), [line], `one record for ${JSON.stringify(value.slice(0, 40))}`);
        assert.deepEqual(JSON.parse(line), event);
      }
    });

    test('writes U+0085, U+2028 and U+2029 as escapes, and nothing else differs from JSON.stringify', () => {
      const event = { reason: 'a\u0085b\u2028c\u2029d', metadata: { 'k\u2028': 'ω 😀' } };
      assert.equal(encode(event), '{"reason":"a\\u0085b\\u2028c\\u2029d","metadata":{"k\\u2028":"ω 😀"}}');
      const plain = hostileEvent('naïve café');
      assert.equal(encode(plain), JSON.stringify(plain));
    });
  });
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEncoder, FORMAT_NAMES } from '../../../src/delivery/formats/registry.js';
import { HOSTILE_STRINGS, hostileEvent, splitRecords } from '../../helpers/hostile.js';

for (const name of FORMAT_NAMES) {
  test(`${name}: every hostile event is one record for the most eager line splitter`, () => {
    const encode = createEncoder(name, {});
    for (const value of HOSTILE_STRINGS) {
      const line = encode(hostileEvent(value));
      assert.deepEqual(splitRecords(line), [line], `${name} split ${JSON.stringify(value.slice(0, 40))}`);
    }
  });
}

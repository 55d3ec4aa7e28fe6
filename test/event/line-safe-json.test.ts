import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeLineSeparators, oneLineJson } from '../../src/event/line-safe-json.js';
import { splitRecords } from '../helpers/hostile.js';

describe('escapeLineSeparators', () => {
  test('escapes U+0085, U+2028 and U+2029 wherever they are, and the text parses to the same value', () => {
    const value = {
      '\u2028key\u0085': ['\u2029', 'a\u0085\u0085b', { deep: 'x\u2028\u2029y' }],
      other: 'plain \\u2028 as text, "quoted" \\ backslash',
    };
    const raw = JSON.stringify(value);
    assert.equal(splitRecords(raw).length, 8, 'raw, its seven separators split the record');
    const escaped = escapeLineSeparators(raw);
    assert.deepEqual(splitRecords(escaped), [escaped]);
    assert.doesNotMatch(escaped, /[\u0085\u2028\u2029]/);
    assert.match(escaped, /"\\u2028key\\u0085"/);
    assert.deepEqual(JSON.parse(escaped), value);
    assert.equal(oneLineJson(value), escaped);
  });

  test('returns text without them unchanged', () => {
    const text = JSON.stringify({ a: 'naïve café 😀 \u2027\u202a\u0084\u0086' });
    assert.equal(escapeLineSeparators(text), text);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { httpUrl } from '../../../../src/delivery/sinks/net/http-url.js';

const schema = httpUrl({
  expected: 'expected a URL',
  unparsable: 'that is no URL',
  rules: (u) => (u.search ? 'no ?query' : null),
  max: { chars: 40, message: 'at most 40 characters' },
});
const problems = (v: unknown) => {
  const r = schema.safeParse(v);
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

describe('an http(s) URL option', () => {
  test('takes an http(s) URL its rules accept', () => {
    assert.deepEqual(problems('https://example.com:8443'), []);
    assert.deepEqual(problems('http://127.0.0.1:9000'), []);
  });

  test('names what is wrong: not a string, not a URL, another scheme, a rule, too long', () => {
    assert.deepEqual(problems(42), ['expected a URL']);
    assert.deepEqual(problems('not a url'), ['that is no URL']);
    assert.deepEqual(problems('ftp://example.com'), ['expected an http(s) URL, got a ftp: URL']);
    assert.deepEqual(problems('https://example.com/?a=1'), ['no ?query']);
    assert.ok(problems(`https://example.com/${'a'.repeat(40)}`).includes('at most 40 characters'));
  });
});

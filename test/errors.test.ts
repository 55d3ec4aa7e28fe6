import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES } from '../src/errors.js';

test('docs/errors.md lists every error code with its status, and no code that does not exist', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map(
    [...doc.matchAll(/^\| `(TW_ERR_[A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]),
  );
  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    assert.equal(
      rows.get(code),
      status,
      `${code} (${status}) is missing or has another status in docs/errors.md`,
    );
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort());
});

// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are ${VAR} references, not templates
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { substituteEnv } from '../../src/config/substitute-env.js';

describe('environment substitution in one string', () => {
  test('replaces ${VAR} and falls back to ${VAR:-default} when unset or empty', () => {
    const env = { DIR: '/srv/tw', EMPTY: '' };
    assert.equal(substituteEnv('${DIR}/data', env).value, '/srv/tw/data');
    assert.equal(substituteEnv('${NOPE:-x}-${EMPTY:-y}', env).value, 'x-y');
    assert.equal(substituteEnv('$${DIR}', env).value, '${DIR}');
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DuplicateKey, findDuplicateKey, formatJsonPath } from '../../src/event/duplicate-keys.js';

/** The scanner's answer, after checking the text is JSON (its precondition). */
function scan(text: string): DuplicateKey | undefined {
  JSON.parse(text);
  return findDuplicateKey(text);
}

describe('findDuplicateKey', () => {
  test('finds a key named twice in the top-level object, and says which', () => {
    assert.deepEqual(scan('{"action":"user.logout","action":"admin.user.delete"}'), {
      key: 'action',
      path: ['action'],
    });
  });

  test('finds a key named twice at every nesting level, with the path to it', () => {
    assert.deepEqual(scan('{"actor":{"id":"a","type":"user","id":"b"}}')?.path, ['actor', 'id']);
    assert.deepEqual(scan('{"a":1,"resource":{"type":"x","name":"n","type":"y"}}')?.path, [
      'resource',
      'type',
    ]);
    assert.deepEqual(scan('{"metadata":{"x":{"y":[1,{"z":1,"z":2}]}}}')?.path, [
      'metadata',
      'x',
      'y',
      1,
      'z',
    ]);
    assert.deepEqual(scan('{"changes":[{"field":"a","old":1},{"field":"b","new":2,"field":"c"}]}')?.path, [
      'changes',
      1,
      'field',
    ]);
    assert.deepEqual(scan('[{},{"a":1},[],{"a":1,"b":{"c":1,"c":1}}]')?.path, [3, 'b', 'c']);
    // An empty object is followed by values, not names (the reference comparison found this one).
    assert.deepEqual(scan('[{},"x",{}, "y",{"k":1,"k":2}]')?.path, [4, 'k']);
  });

  test('treats keys that are equal once unescaped as the same key', () => {
    assert.deepEqual(scan('{"action":"user.logout","\\u0061ction":"admin.user.delete"}'), {
      key: 'action',
      path: ['action'],
    });
    assert.equal(scan('{"\\u0061ction":1,"action":2}')?.key, 'action');
    assert.equal(scan('{"\\u0061ction":1,"\\u0061\\u0063tion":2}')?.key, 'action');
    assert.equal(scan('{"a/b":1,"a\\/b":2}')?.key, 'a/b');
    assert.equal(scan('{"\\ud83d\\ude00":1,"😀":2}')?.key, '😀');
    assert.equal(scan('{"é":1,"\\u00E9":2}')?.key, 'é');
    assert.equal(scan('{"":1,"":2}')?.key, '');
  });

  test('accepts equal keys in different objects, and names that only look alike', () => {
    assert.equal(scan('[{"a":1},{"a":2}]'), undefined);
    assert.equal(scan('{"a":{"a":{"a":1}},"b":{"a":1}}'), undefined);
    assert.equal(scan('{"x":[{"a":1},{"a":1}],"y":{"a":1}}'), undefined);
    assert.equal(scan('{"a":1,"A":2,"a ":3,"\\u0061\\u0062":4,"ab ":5}'), undefined);
    assert.equal(scan('{"é":1,"e\\u0301":2}'), undefined, 'no Unicode normalisation: JSON.parse keeps both');
  });

  test('accepts a document without duplicates whose strings are full of traps', () => {
    const text = String.raw`{
      "note": "\"action\":\"x\", \"action\":\"y\"",
      "action": "{\"a\":1,\"a\":2}",
      "back\\": "\\",
      "back": "ends with a backslash\\",
      "quote\"": "\"",
      "esc\\\"aped": "x\\\\\"",
      "nested": {"note": "}", "action": "]", "x": "{", "y": "[", "z": ","},
      "list": ["\"a\":1", {"note": "a\"", "n\"ote": 1}, [], {}, "\\"],
      "unicode": "naïve café 😀 \u2028 \ud83d\ude00",
      "naïve": 1, "😀": 2, "\u00e9x": 3, "ex": 4,
      "num": -1.5e+3, "t": true, "f": false, "z0": null
    }`;
    assert.equal(scan(text), undefined);
  });

  test('checks objects with many keys (past the linear scan) and finds a repeat of the first key', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `"k${i}":${i}`);
    assert.equal(scan(`{${keys.join(',')}}`), undefined);
    assert.deepEqual(scan(`{"m":{${keys.join(',')},"k0":0}}`), { key: 'k0', path: ['m', 'k0'] });
    assert.deepEqual(scan(`{${keys.join(',')},"\\u006b1999":0}`)?.key, 'k1999');
    // The set of a big object does not leak into the next object at the same depth.
    assert.equal(scan(`[{${keys.join(',')}},{"k0":1,"k1":2}]`), undefined);
  });

  test('follows nesting far deeper than a recursive scanner could', () => {
    const depth = 200_000;
    assert.equal(findDuplicateKey(`${'['.repeat(depth)}{"a":1}${']'.repeat(depth)}`), undefined);
    const dup = findDuplicateKey(`${'{"a":'.repeat(depth)}{"b":1,"b":2}${'}'.repeat(depth)}`);
    assert.equal(dup?.key, 'b');
    assert.equal(dup?.path.length, depth + 1);
  });

  test('always ends on text that is not JSON (every prefix of a document)', () => {
    const text = '[{"a":"x\\\\\\"y","b\\u0063":[1,{"c":{}}],"d":"}"},{"a":1,"\\u0061":2}]';
    assert.equal(scan(text)?.key, 'a');
    for (let cut = 0; cut < text.length; cut++) {
      try {
        findDuplicateKey(text.slice(0, cut));
      } catch (err) {
        assert.ok(err instanceof SyntaxError, String(err));
      }
    }
  });

  test('agrees with a reference parser on many generated documents', () => {
    const random = mulberry32(14);
    let withDuplicate = 0;
    for (let n = 0; n < 4000; n++) {
      const text = generateDocument(random);
      const expected = referenceDuplicate(text);
      assert.deepEqual(findDuplicateKey(text), expected, `document ${n}: ${text}`);
      if (expected) withDuplicate++;
    }
    // Both outcomes must be well represented, or the comparison proves little.
    assert.ok(withDuplicate > 1000 && withDuplicate < 3000, `${withDuplicate} of 4000 had a duplicate`);
  });
});

describe('formatJsonPath', () => {
  test('writes paths as problems name fields', () => {
    assert.equal(formatJsonPath([3, 'actor', 'id']), '[3].actor.id');
    assert.equal(formatJsonPath(['metadata', 'x']), 'metadata.x');
    assert.equal(formatJsonPath(['changes', 0, 'field']), 'changes[0].field');
    assert.equal(formatJsonPath(['metadata', 'odd key']), 'metadata["odd key"]');
    assert.equal(formatJsonPath(['k'.repeat(500)]), JSON.stringify(`${'k'.repeat(57)}...`));
  });
});

/** A small seeded generator, so a failure can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Names that collide in many spellings, names that differ in tricky ways, and awkward characters. */
const KEY_POOL = ['a', 'b', 'action', 'actor', 'id', 'é', '😀', 'a"b', 'a\\b', 'a/b', '', ' ', 'A', '\u2028'];
const STRING_POOL = [
  '',
  'plain',
  '"action":"x"',
  '{"a":1,"a":2}',
  '\\',
  'ends with \\',
  '"',
  'naïve 😀',
  '\u2028\u2029\u0085',
  '}],{[',
];

/** A string as JSON text, each character spelled raw or escaped at random (all spellings decode alike). */
function spell(s: string, random: () => number): string {
  let out = '"';
  for (const unit of s.split('')) {
    const code = unit.charCodeAt(0);
    const r = random();
    if (r < 0.25) {
      const hex = code.toString(16).padStart(4, '0');
      out += `\\u${random() < 0.5 ? hex : hex.toUpperCase()}`;
    } else if (unit === '/' && r < 0.5) out += '\\/';
    else out += JSON.stringify(unit).slice(1, -1);
  }
  return `${out}"`;
}

function generateDocument(random: () => number): string {
  const ws = () => [' ', '', '', '\n', '\t', '\r\n '][Math.floor(random() * 6)]!;
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  let fresh = 0;
  const value = (depth: number): string => {
    const r = random();
    if (depth < 4 && r < 0.3) {
      // Mostly small objects; now and then one past the scanner's linear limit.
      const size = random() < 0.05 ? 34 + Math.floor(random() * 20) : Math.floor(random() * 8);
      const names = Array.from({ length: size }, () => (size > 10 ? `f${fresh++}` : pick(KEY_POOL)));
      // Half the big objects repeat an earlier name (in another spelling) after the linear limit.
      if (size > 10 && random() < 0.5) names[size - 1] = pick(names.slice(0, size - 1));
      const members = names.map(
        (name) => `${ws()}${spell(name, random)}${ws()}:${ws()}${value(depth + 1)}${ws()}`,
      );
      return `{${members.join(',')}${ws()}}`;
    }
    if (depth < 4 && r < 0.45) {
      const size = Math.floor(random() * 4);
      return `[${Array.from({ length: size }, () => `${ws()}${value(depth + 1)}${ws()}`).join(',')}]`;
    }
    if (r < 0.75) return spell(pick(STRING_POOL), random);
    return pick(['0', '-1.5e+3', 'true', 'false', 'null', '12345678901234567890']);
  };
  // The root is an object, as for events, or an array of them.
  return random() < 0.7
    ? `${ws()}${objectRoot(value)}${ws()}`
    : `[${objectRoot(value)},${objectRoot(value)}]`;

  function objectRoot(v: (depth: number) => string): string {
    let text = v(0);
    while (!text.startsWith('{')) text = v(0);
    return text;
  }
}

/**
 * An independent answer: a recursive-descent parser that decodes each name
 * with JSON.parse and keeps a Set per object; the first name found twice,
 * in text order, with its path.
 */
function referenceDuplicate(text: string): DuplicateKey | undefined {
  let i = 0;
  const path: Array<string | number> = [];
  const skipWs = () => {
    while (' \t\n\r'.includes(text[i] ?? 'x')) i++;
  };
  const stringToken = (): string => {
    const m = /^"(?:[^"\\]|\\.)*"/su.exec(text.slice(i));
    assert.ok(m, `a string at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const parseValue = (): DuplicateKey | undefined => {
    skipWs();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      skipWs();
      if (text[i] === '}') {
        i++;
        return undefined;
      }
      for (;;) {
        skipWs();
        const key = stringToken();
        if (seen.has(key)) return { key, path: [...path, key] };
        seen.add(key);
        skipWs();
        assert.equal(text[i++], ':');
        path.push(key);
        const found = parseValue();
        if (found) return found;
        path.pop();
        skipWs();
        if (text[i++] === '}') return undefined;
      }
    }
    if (c === '[') {
      i++;
      skipWs();
      if (text[i] === ']') {
        i++;
        return undefined;
      }
      for (let index = 0; ; index++) {
        path.push(index);
        const found = parseValue();
        if (found) return found;
        path.pop();
        skipWs();
        if (text[i++] === ']') return undefined;
      }
    }
    if (c === '"') {
      stringToken();
      return undefined;
    }
    const m = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i));
    assert.ok(m, `a value at ${i}`);
    i += m[0].length;
    return undefined;
  };
  JSON.parse(text); // the generator makes valid JSON only
  return parseValue();
}

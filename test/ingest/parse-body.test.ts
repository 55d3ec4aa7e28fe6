import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ErrorCode, TrailwardenError } from '../../src/errors.js';
import { parseEventsBody, parseJsonDocument } from '../../src/ingest/parse-body.js';

const LIMITS = { max_batch_events: 3, max_body_bytes: 1024 };
const JSON_TYPE = 'application/json';
const NDJSON = 'application/x-ndjson';

function parse(body: string | Buffer, type: string | undefined = JSON_TYPE, limits = LIMITS): unknown[] {
  return parseEventsBody(typeof body === 'string' ? Buffer.from(body, 'utf8') : body, type, limits);
}

function fails(fn: () => unknown, code: ErrorCode, fragment: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TrailwardenError, `expected a TrailwardenError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (typeof fragment === 'string') assert.ok(err.message.includes(fragment), err.message);
    else assert.match(err.message, fragment);
    return true;
  });
}

describe('parseEventsBody: application/json', () => {
  it('accepts one event object as a batch of one', () => {
    assert.deepEqual(parse('{"action":"user.login"}'), [{ action: 'user.login' }]);
  });

  it('accepts an array of event objects', () => {
    assert.deepEqual(parse('[{"a":1},{"a":2}]'), [{ a: 1 }, { a: 2 }]);
  });

  it('accepts a charset=utf-8 parameter in any case and a leading BOM', () => {
    assert.deepEqual(parse('\uFEFF{"a":1}', 'Application/JSON; Charset="UTF-8"'), [{ a: 1 }]);
  });

  it('refuses an empty array, an empty body and non-object items', () => {
    fails(() => parse('[]'), 'TW_ERR_BAD_REQUEST', 'the batch is empty');
    fails(() => parse('  '), 'TW_ERR_BAD_REQUEST', 'the request body is empty');
    fails(() => parse('[{"a":1}, 5]'), 'TW_ERR_BAD_REQUEST', 'item 1 of the array is a number');
    fails(() => parse('"hello"'), 'TW_ERR_BAD_REQUEST', 'the body is a string');
  });

  it('reports malformed JSON with line and column', () => {
    fails(
      () => parse('{\n  "a": 1,\n  "b": }'),
      'TW_ERR_MALFORMED_JSON',
      'at line 3, column 8: unexpected "}", expected a value',
    );
    fails(() => parse('{"a":1'), 'TW_ERR_MALFORMED_JSON', 'unexpected end of input');
    fails(() => parse('{"a":1} x'), 'TW_ERR_MALFORMED_JSON', 'unexpected text after the JSON value');
  });
});

describe('parseEventsBody: application/x-ndjson', () => {
  it('reads one object per line, skipping blank lines, with CRLF and a trailing newline', () => {
    assert.deepEqual(parse('{"a":1}\r\n\n  \n{"a":2}\n', NDJSON), [{ a: 1 }, { a: 2 }]);
  });

  it('names the line of malformed JSON', () => {
    fails(
      () => parse('{"a":1}\n\n{"a":}\n', NDJSON),
      'TW_ERR_MALFORMED_JSON',
      /^line 3 is not valid JSON at line 1, column 6/,
    );
  });

  it('refuses a line that is not an object', () => {
    fails(() => parse('{"a":1}\n[{"a":2}]\n', NDJSON), 'TW_ERR_BAD_REQUEST', 'line 2 is an array');
  });

  it('refuses a body with only blank lines', () => {
    fails(() => parse('\n\n', NDJSON), 'TW_ERR_BAD_REQUEST', 'empty');
  });
});

describe('parseEventsBody: limits, media types and encoding', () => {
  it('refuses more events than max_batch_events, saying the limit', () => {
    fails(
      () => parse('[{},{},{},{}]'),
      'TW_ERR_PAYLOAD_TOO_LARGE',
      'more than 3 events (limits.max_batch_events)',
    );
    fails(() => parse('{}\n{}\n{}\n{}\n', NDJSON), 'TW_ERR_PAYLOAD_TOO_LARGE', 'more than 3 events');
    assert.equal(parse('[{},{},{}]').length, 3);
  });

  it('refuses a body over max_body_bytes', () => {
    fails(
      () => parse(`{"a":"${'x'.repeat(1100)}"}`),
      'TW_ERR_PAYLOAD_TOO_LARGE',
      'the limit is 1024 bytes (limits.max_body_bytes)',
    );
  });

  it('refuses other media types and a missing Content-Type, naming the accepted ones', () => {
    fails(
      () => parse('{}', 'text/plain'),
      'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
      'application/json or application/x-ndjson',
    );
    fails(
      () => parseEventsBody(Buffer.from('{}'), undefined, LIMITS),
      'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
      'Content-Type is missing',
    );
  });

  it('refuses charsets other than UTF-8', () => {
    fails(
      () => parse('{}', 'application/json; charset=iso-8859-1'),
      'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
      'must be UTF-8',
    );
  });

  it('refuses invalid UTF-8 and says where the first bad byte is', () => {
    const body = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    fails(() => parse(body), 'TW_ERR_INVALID_UTF8', 'first bad byte at offset 6');
    fails(() => parse(Buffer.from([0x7b, 0xff, 0x7d])), 'TW_ERR_INVALID_UTF8', 'offset 1');
  });
});

describe('parseEventsBody: duplicate keys', () => {
  /** The refusal, checked to be TW_ERR_DUPLICATE_KEY with exactly this message start and problem. */
  function refused(fn: () => unknown, detail: string, problem: { index?: number; path: string }): void {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof TrailwardenError, `expected a TrailwardenError, got ${String(err)}`);
      assert.equal(err.code, 'TW_ERR_DUPLICATE_KEY');
      assert.equal(err.status, 400);
      assert.ok(err.message.startsWith(detail), err.message);
      assert.match(err.message, /remove one of them$/);
      assert.deepEqual(
        err.problems?.map(({ index, path }) => ({ index, path })),
        [{ index: undefined, ...problem }],
      );
      return true;
    });
  }

  it('refuses an event that names a key twice, whichever value comes first', () => {
    refused(
      () => parse('{"action":"user.logout","action":"admin.user.delete"}'),
      'the body has the key "action" twice in one object, at action;',
      { index: 0, path: 'action' },
    );
  });

  it('names the event of an array and the path inside it', () => {
    const ok = '{"action":"user.login","actor":{"id":"a"}}';
    refused(
      () =>
        parse(`[${ok},${ok},${ok},{"actor":{"type":"user","id":"a","id":"b"}}]`, JSON_TYPE, {
          max_batch_events: 10,
          max_body_bytes: 1024,
        }),
      'the body has the key "id" twice in one object, at [3].actor.id;',
      { index: 3, path: 'actor.id' },
    );
  });

  it('names the NDJSON line, and the event index counts events, not blank lines', () => {
    const body = '{"a":1}\n\n{"a":2}\n{"a":3}\n\n\n{"metadata":{"y":1,"x":2,"x":3}}\n';
    refused(
      () => parse(body, NDJSON, { max_batch_events: 10, max_body_bytes: 1024 }),
      'line 7 has the key "x" twice in one object, at metadata.x;',
      { index: 3, path: 'metadata.x' },
    );
  });

  it('refuses keys that are equal only once unescaped, in resource, metadata and changes', () => {
    refused(
      () => parse('{"resource":{"type":"doc","\\u0074ype":"user"}}'),
      'the body has the key "type" twice',
      {
        index: 0,
        path: 'resource.type',
      },
    );
    refused(() => parse('{"metadata":{"a":{"b c":1,"b\\u0020c":2}}}'), 'the body has the key "b c" twice', {
      index: 0,
      path: 'metadata.a["b c"]',
    });
    refused(
      () => parse('{"changes":[{"field":"role","old":"user","new":"admin","new":"user"}]}'),
      'the body has the key "new" twice',
      { index: 0, path: 'changes[0].new' },
    );
  });

  it('still reports malformed JSON as such, before looking for duplicates', () => {
    fails(() => parse('{"a":1,"a":2'), 'TW_ERR_MALFORMED_JSON', 'unexpected end of input');
  });

  it('accepts equal keys in different objects and strings that only look like keys', () => {
    assert.deepEqual(parse('[{"a":{"a":1}},{"a":"\\"a\\":2"}]'), [{ a: { a: 1 } }, { a: '"a":2' }]);
  });

  it('parseJsonDocument refuses duplicates in any JSON body, with the full path and no event index', () => {
    refused(
      () => parseJsonDocument('{"headers":{"x-a":"1","x-a":"2"}}', 'the request body'),
      'the request body has the key "x-a" twice in one object, at headers.x-a;',
      { path: 'headers.x-a' },
    );
    fails(
      () => parseJsonDocument('{"a":', 'the request body'),
      'TW_ERR_MALFORMED_JSON',
      'the request body is not valid JSON at line 1, column 6',
    );
    assert.deepEqual(parseJsonDocument('[{"a":1},{"a":2}]', 'the request body'), [{ a: 1 }, { a: 2 }]);
  });
});

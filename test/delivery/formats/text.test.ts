import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEncoder } from '../../../src/delivery/formats/registry.js';
import { auditType, textValue, typeByRule } from '../../../src/delivery/formats/text.js';
import { HOSTILE_STRINGS, hostileEvent } from '../../helpers/hostile.js';

const ctx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'h1' };
const encode = (event: Record<string, unknown>) => createEncoder('text', {}, ctx)(event);

/**
 * A strict reader of the text line: `AUDIT/<TYPE>` then ` key:value` tokens,
 * a value bare (no space, quote or backslash) or in double quotes with only
 * `\\ \" \n \r \t \uXXXX` escapes; a key seen twice fails.
 */
function parseText(line: string): { type: string; fields: Map<string, string> } {
  const head = /^AUDIT\/([A-Z0-9_]+)/.exec(line);
  if (!head) throw new Error(`no AUDIT/<TYPE> at the start: ${line.slice(0, 40)}`);
  const fields = new Map<string, string>();
  let i = head[0].length;
  while (i < line.length) {
    const key = /^ ([a-z_]+):/.exec(line.slice(i));
    if (!key) throw new Error(`no " key:" at ${i}: ${JSON.stringify(line.slice(i, i + 30))}`);
    i += key[0].length;
    let value = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error('unterminated quote');
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const n = line[i + 1];
          if (n === '\\' || n === '"') value += n;
          else if (n === 'n') value += '\n';
          else if (n === 'r') value += '\r';
          else if (n === 't') value += '\t';
          else if (n === 'u' && /^[0-9a-f]{4}$/.test(line.slice(i + 2, i + 6))) {
            value += String.fromCharCode(Number.parseInt(line.slice(i + 2, i + 6), 16));
            i += 4;
          } else throw new Error(`bad escape \\${n}`);
          i += 2;
        } else {
          value += c;
          i++;
        }
      }
      if (i < line.length && line[i] !== ' ') throw new Error('a quoted value must end its token');
    } else {
      const bare = /^[^ "\\]+/.exec(line.slice(i));
      if (!bare) throw new Error(`empty value for ${key[1]}`);
      value = bare[0];
      i += value.length;
    }
    if (fields.has(key[1]!)) throw new Error(`key ${key[1]} twice`);
    fields.set(key[1]!, value);
  }
  return { type: head[1]!, fields };
}

const seedEvent = (over: Record<string, unknown>) => ({
  seq: 1,
  event_id: 'evt_1',
  timestamp: '2026-03-15T08:42:17.003Z',
  tenant_id: 'acme',
  actor: { type: 'user', id: 'usr_admin_1', name: 'helpdeskový_administrátor' },
  action: 'user.password.reset',
  resource: { type: 'user', id: 'usr_123456', name: 'uživatel123456' },
  outcome: 'success',
  ...over,
});

describe('text format', () => {
  test("reproduces seed 004's readable lines: AUDIT/IDENTITY_PASSWORD_RESET status:SUCCESS target:… performed_by:…", () => {
    assert.ok(
      encode(seedEvent({})).startsWith(
        'AUDIT/IDENTITY_PASSWORD_RESET status:SUCCESS target:uživatel123456 target_uuid:usr_123456 ' +
          'performed_by:helpdeskový_administrátor performed_by_uuid:usr_admin_1 target_type:user',
      ),
    );
    assert.ok(
      encode(seedEvent({ outcome: 'failure', reason: 'INSUFFICIENT_PRIVILEGES' })).startsWith(
        'AUDIT/IDENTITY_PASSWORD_RESET status:FAILURE target:uživatel123456 target_uuid:usr_123456 ' +
          'performed_by:helpdeskový_administrátor performed_by_uuid:usr_admin_1 reason:INSUFFICIENT_PRIVILEGES ',
      ),
    );
    assert.equal(
      encode(
        seedEvent({
          action: 'role.created',
          actor: { type: 'user', id: 'usr_1', name: 'admin' },
          resource: { type: 'role', id: 'rol_1', name: 'ADčková_role' },
        }),
      ),
      'AUDIT/ROLE_CREATE status:SUCCESS target:ADčková_role target_uuid:rol_1 performed_by:admin performed_by_uuid:usr_1 ' +
        'target_type:role tenant:acme time:2026-03-15T08:42:17.003Z event_id:evt_1 seq:1',
    );
  });

  test('the type rule: seed names where the catalog has them, else words upper-cased with user → IDENTITY and created → CREATE', () => {
    assert.equal(auditType('user.password.reset'), 'IDENTITY_PASSWORD_RESET');
    assert.equal(auditType('role.created'), 'ROLE_CREATE');
    assert.equal(
      typeByRule('user.password.reset'),
      'IDENTITY_PASSWORD_RESET',
      'the rule agrees with seed 004',
    );
    assert.equal(typeByRule('role.created'), 'ROLE_CREATE', 'the rule agrees with seed 004');
    assert.equal(auditType('user.deleted'), 'IDENTITY_DELETE');
    assert.equal(auditType('role.privilege.added'), 'ROLE_PRIVILEGE_ADD');
    assert.equal(auditType('task.error'), 'TASK_ERROR');
    assert.equal(auditType('billing.invoice.voided'), 'BILLING_INVOICE_VOIDED', 'unknown words are kept');
    assert.equal(auditType('created'), 'CREATED', 'a one-word action is a noun, not a verb');
    assert.equal(auditType('x-y.z w'), 'X_Y_Z_W');
    assert.equal(auditType('!!!'), 'UNKNOWN');
    assert.equal(auditType(undefined), 'UNKNOWN');
  });

  test('names win over ids, and ids stand in only when there is no name', () => {
    const { fields } = parseText(
      encode(seedEvent({ actor: { type: 'user', id: 'usr_a' }, resource: { type: 'user', id: 'usr_b' } })),
    );
    assert.equal(fields.get('performed_by'), 'usr_a');
    assert.equal(fields.get('target'), 'usr_b');
  });

  test('changes show the changed field names only, never old or new values', () => {
    const line = encode(
      seedEvent({
        action: 'user.updated',
        changes: [
          { field: 'disabled', old: false, new: true },
          { field: 'email', old: 'old@example.com', new: 'secret@example.com' },
        ],
        metadata: { note: 'metadata-value' },
      }),
    );
    assert.match(line, / changed:disabled,email /);
    assert.doesNotMatch(line, /example\.com|metadata-value|true|false/);
  });

  test('values are quoted and escaped only when they need it', () => {
    assert.equal(textValue('uživatel123456'), 'uživatel123456');
    assert.equal(textValue('two words'), '"two words"');
    assert.equal(textValue('say "hi"\\'), '"say \\"hi\\"\\\\"');
    assert.equal(textValue('a\nb\rc\td'), '"a\\nb\\rc\\td"');
    assert.equal(
      textValue('nul\u0000 rlo\u202e nbsp\u00a0 ls\u2028'),
      '"nul\\u0000 rlo\\u202e nbsp\\u00a0 ls\\u2028"',
    );
    assert.equal(
      textValue('status:FORGED'),
      'status:FORGED',
      'a colon inside a bare value cannot start a key',
    );
  });

  for (const value of HOSTILE_STRINGS) {
    test(`a hostile value cannot add a line or a key and round-trips exactly: ${JSON.stringify(value.slice(0, 40))}`, () => {
      const line = encode(hostileEvent(value));
      assert.doesNotMatch(line, /[\p{Cc}\u2028\u2029]/u, 'no control character or line break at all');
      const { type, fields } = parseText(line);
      assert.equal(type, 'IDENTITY_PASSWORD_RESET');
      assert.deepEqual(
        [...fields.keys()],
        [
          'status',
          'target',
          'target_uuid',
          'performed_by',
          'performed_by_uuid',
          'reason',
          'target_type',
          'changed',
          'tenant',
          'source_ip',
          'time',
          'event_id',
          'seq',
        ],
      );
      for (const key of ['target', 'performed_by', 'reason']) assert.equal(fields.get(key), value, key);
      assert.equal(fields.get('changed'), 'note');
    });

    test(`a hostile action only changes the type's letters: ${JSON.stringify(value.slice(0, 40))}`, () => {
      const { type, fields } = parseText(encode({ ...hostileEvent(value), action: value }));
      assert.match(type, /^[A-Z0-9_]+$/);
      assert.equal(fields.get('status'), 'FAILURE');
    });
  }

  test('a shaped event with almost every field missing still encodes, leaving the keys out', () => {
    assert.equal(encode({ seq: 7, event_id: 'evt_7' }), 'AUDIT/UNKNOWN event_id:evt_7 seq:7');
    assert.equal(encode({}), 'AUDIT/UNKNOWN');
    assert.equal(
      encode({ actor: '***', resource: null, changes: 'x', outcome: 3, reason: { a: 1 } }),
      'AUDIT/UNKNOWN status:3',
    );
  });
});

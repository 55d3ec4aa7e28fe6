import { findAction } from '../../event/catalog.js';
import { field, type Obj } from './fields.js';
import type { OutputFormat } from './format.js';

/** First action word → the seed's (CzechIdM's) word for it: accounts are identities there. */
const NOUNS: Readonly<Record<string, string>> = { user: 'IDENTITY' };

/** Past participles in our action names → the imperative the seed uses (`role.created` → `ROLE_CREATE`). */
const VERBS: Readonly<Record<string, string>> = {
  added: 'ADD',
  approved: 'APPROVE',
  assigned: 'ASSIGN',
  cancelled: 'CANCEL',
  changed: 'CHANGE',
  completed: 'COMPLETE',
  created: 'CREATE',
  deleted: 'DELETE',
  detected: 'DETECT',
  disabled: 'DISABLE',
  enabled: 'ENABLE',
  expired: 'EXPIRE',
  granted: 'GRANT',
  issued: 'ISSUE',
  locked: 'LOCK',
  paused: 'PAUSE',
  recovered: 'RECOVER',
  rejected: 'REJECT',
  removed: 'REMOVE',
  requested: 'REQUEST',
  resumed: 'RESUME',
  revoked: 'REVOKE',
  sent: 'SEND',
  started: 'START',
  unlocked: 'UNLOCK',
  updated: 'UPDATE',
  verified: 'VERIFY',
};

/**
 * The event type by rule: the action's words upper-cased and joined with
 * `_`, the first word through `NOUNS` (`user` → `IDENTITY`), the last through
 * `VERBS` (`created` → `CREATE`), anything but A–Z, 0–9 and `_` turned into `_`.
 */
export function typeByRule(action: string): string {
  const words = action.split('.');
  const last = words.length - 1;
  const mapped = words.map((w, i) => {
    const lower = w.toLowerCase();
    if (i === 0 && NOUNS[lower]) return NOUNS[lower];
    if (i === last && i > 0 && VERBS[lower]) return VERBS[lower];
    return w.toUpperCase();
  });
  const type = mapped
    .join('_')
    .replace(/[^A-Z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_|_$/g, '');
  return type === '' ? 'UNKNOWN' : type;
}

/**
 * The event type after `AUDIT/`: the upper-snake name seed 004 gives a
 * catalog action (`user.password.reset` → `IDENTITY_PASSWORD_RESET`), else
 * `typeByRule`; `UNKNOWN` when the action is missing.
 */
export function auditType(action: string | undefined): string {
  if (action === undefined) return 'UNKNOWN';
  const seedName = findAction(action)?.seeds?.find(
    (m) => m.seed === '004' && /^[A-Z][A-Z0-9_]*$/.test(m.name),
  );
  return seedName?.name ?? typeByRule(action);
}

/** A value that needs no quotes: no whitespace, quote, backslash, control, format or separator character. */
const BARE = /^[^\s"\\\p{C}\p{Z}]+$/u;
/** Characters written as `\uXXXX` inside quotes: controls, invisible format characters, separators. */
const ESCAPED = /[\p{C}\p{Z}]/u;

/**
 * A value as a token: bare when it is plain, otherwise in double quotes with
 * `\\`, `\"`, `\n`, `\r`, `\t` and `\uXXXX` (UTF-16 units) for control,
 * format and separator characters other than the ordinary space — so a value
 * can never end its token, start a `key:`, or break the line.
 */
export function textValue(value: string): string {
  if (BARE.test(value)) return value;
  let out = '"';
  for (const ch of value) {
    if (ch === '\\' || ch === '"') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch !== ' ' && ESCAPED.test(ch)) {
      for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

/** `changes` → its field names, never the old or new values. */
function changedFields(event: Obj): string | undefined {
  const changes = event['changes'];
  if (!Array.isArray(changes)) return undefined;
  const names = changes
    .map((c: unknown) => (c !== null && typeof c === 'object' ? (c as Obj)['field'] : undefined))
    .filter((f): f is string => typeof f === 'string' && f !== '');
  return names.length > 0 ? names.join(',') : undefined;
}

/**
 * A readable line for people and grep (seed 004):
 * `AUDIT/IDENTITY_PASSWORD_RESET status:FAILURE target:bob target_uuid:usr_9x8y performed_by:alice …`.
 * Names are preferred to ids; attribute values of `changes` never appear.
 */
export const text: OutputFormat = {
  name: 'text',
  description: 'A readable AUDIT/<TYPE> key:value line (seed 004), for log files and syslog read by people.',
  contentType: 'text/plain',
  create: () => (event) => {
    const fields: Array<[string, string | undefined]> = [
      ['status', field(event, 'outcome')?.toUpperCase()],
      ['target', field(event, 'resource', 'name') ?? field(event, 'resource', 'id')],
      ['target_uuid', field(event, 'resource', 'id')],
      ['performed_by', field(event, 'actor', 'name') ?? field(event, 'actor', 'id')],
      ['performed_by_uuid', field(event, 'actor', 'id')],
      ['reason', field(event, 'reason')],
      ['target_type', field(event, 'resource', 'type')],
      ['changed', changedFields(event)],
      ['tenant', field(event, 'tenant_id')],
      ['source_ip', field(event, 'source_ip')],
      ['time', field(event, 'timestamp')],
      ['event_id', field(event, 'event_id')],
      ['seq', field(event, 'seq')],
    ];
    const tokens = fields
      .filter((kv): kv is [string, string] => kv[1] !== undefined)
      .map(([k, v]) => `${k}:${textValue(v)}`);
    return [`AUDIT/${auditType(field(event, 'action'))}`, ...tokens].join(' ');
  },
};

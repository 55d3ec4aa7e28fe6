import type { AuditEvent, JsonValue } from '../event/event.js';
import type { ErasureSubject } from '../store/retention-store.js';
import { searchText } from '../store/stored-event.js';

/** Where an erasure marks a stored event: which erasure removed which fields. */
export interface Redaction {
  erasure_id: string;
  /** Dot paths of the fields removed, in the order they are listed below. */
  fields: string[];
}

/** Personal fields every erasure removes when present (the configured metadata paths follow). */
export const PERSONAL_FIELDS = ['actor.name', 'actor.email', 'source_ip', 'user_agent'] as const;

/** The fields an erasure of this subject kind removes, in order: the fixed ones, `resource.name` for a resource, then `metadataPaths`. */
export function erasedFields(kind: ErasureSubject['kind'], metadataPaths: readonly string[]): string[] {
  return [...PERSONAL_FIELDS, ...(kind === 'resource_id' ? ['resource.name'] : []), ...metadataPaths];
}

/** What redacting one stored event gave. */
export interface RedactedBody {
  /** The new stored JSON, keys in the stored order, `redaction` just before `leaf_hash`. */
  body: string;
  /** The new search text (`searchText` of what is left). */
  search: string;
  /** The fields this erasure removed (absent fields are not listed). */
  removed: string[];
}

type JsonObject = { [key: string]: JsonValue };

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deletes the dot path from `root`; true when something was there. */
function deletePath(root: JsonObject, path: string): boolean {
  const parts = path.split('.');
  const last = parts.pop();
  if (last === undefined) return false;
  let node: JsonValue | undefined = root;
  for (const part of parts) {
    if (!isObject(node)) return false;
    node = node[part];
  }
  if (!isObject(node) || !Object.hasOwn(node, last)) return false;
  delete node[last];
  return true;
}

/**
 * Rewrites a stored event's JSON without `fields` (dot paths) and marks it
 * with `erasureId`. The key order stays as stored (the served event is the
 * stored text); `leaf_hash` stays unchanged, since the tree holds it, and
 * `redaction` is placed just before it. An event an earlier erasure marked
 * keeps the fields that erasure listed, with this one's added, under this
 * erasure's id. Returns undefined when `body` has nothing left to remove
 * and is already marked by this erasure (a resumed erasure skips it).
 */
export function redactStoredJson(
  body: string,
  erasureId: string,
  fields: readonly string[],
): RedactedBody | undefined {
  const parsed: JsonValue = JSON.parse(body);
  if (!isObject(parsed)) throw new Error('a stored event is not a JSON object');
  const removed = fields.filter((f) => deletePath(parsed, f));
  const earlier = parsed['redaction'];
  const earlierFields =
    isObject(earlier) && Array.isArray(earlier['fields'])
      ? earlier['fields'].filter((f): f is string => typeof f === 'string')
      : [];
  if (removed.length === 0 && isObject(earlier) && earlier['erasure_id'] === erasureId) return undefined;
  const listed = [...earlierFields, ...removed.filter((f) => !earlierFields.includes(f))];
  const redaction: JsonObject = { erasure_id: erasureId, fields: listed };
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key === 'redaction') continue;
    if (key === 'leaf_hash') out['redaction'] = redaction;
    out[key] = value;
  }
  if (!Object.hasOwn(out, 'redaction')) out['redaction'] = redaction;
  const text = JSON.stringify(out);
  // Read back as the event it is (what is left of it), for the same search text ingest makes.
  const event: AuditEvent = JSON.parse(text);
  return { body: text, search: searchText(event), removed };
}

import type { StoredEvent } from '../event/event.js';

/**
 * CSV columns of an export: one per top-level field, `actor` and `resource`
 * flattened to their sub-fields, `changes` and `metadata` kept as JSON text
 * (their shape is open-ended).
 */
export const CSV_COLUMNS = [
  'seq',
  'event_id',
  'timestamp',
  'received_at',
  'tenant_id',
  'actor.type',
  'actor.id',
  'actor.name',
  'actor.email',
  'action',
  'resource.type',
  'resource.id',
  'resource.name',
  'outcome',
  'reason',
  'source_ip',
  'user_agent',
  'session_id',
  'request_id',
  'changes',
  'metadata',
  'leaf_hash',
] as const;

/** RFC 4180 quoting: a field with a comma, quote, CR or LF is quoted, quotes doubled. */
export function csvField(value: unknown): string {
  if (value === undefined || value === null) return '';
  const s =
    typeof value === 'string' ? value : typeof value === 'number' ? String(value) : JSON.stringify(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function csvRow(e: StoredEvent): string {
  const cells = CSV_COLUMNS.map((col) => {
    const [top, sub] = col.split('.') as [keyof StoredEvent, string | undefined];
    const v = e[top];
    if (sub === undefined) return csvField(v);
    return csvField((v as Record<string, unknown> | undefined)?.[sub]);
  });
  return `${cells.join(',')}\r\n`;
}

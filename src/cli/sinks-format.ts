/** How `trailwarden sinks` shows what the admin API answers: status lines, tables, JSON. */

/** GET /v1/sinks/{name}/status, as the server sends it. */
export interface SinkStatus {
  name: string;
  type: string;
  source: 'config' | 'api';
  state: string;
  cursor: number;
  head_seq: number;
  lag_events: number;
  lag_seconds: number;
  in_flight_to: number | null;
  paused: boolean;
  disabled_reason: string | null;
  last_error: { at: string; reason: string } | null;
  last_success_at: string | null;
  /** When the next attempt of a failed delivery is due (null when none waits). */
  next_attempt_at: string | null;
  /** The sink's last probe of its peer (no event sent). */
  last_healthcheck: { at: string; ok: boolean; detail: string } | null;
  tenant_id?: string | null;
  counters: { delivered: number; batches: number; retries: number; parked: number; filtered: number } | null;
  dead_letters: number;
  /** The node holding the sink's lease (the one delivering it), or null when none does. */
  node: string | null;
  /** Whether the node that answered is that node (health and counters are known only there). */
  held_here: boolean;
}

/** One entry of GET /v1/sinks (secrets masked). */
export interface ListedSink {
  name: string;
  type: string;
  enabled?: boolean;
  source: 'config' | 'api';
  tenant_id: string | null;
  [field: string]: unknown;
}

/** Pretty-printed JSON and a newline (`--json` output). */
export function writeJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `12.3 s`, `4 min 10 s`, `2 h 5 min` */
export function describeSeconds(s: number): string {
  if (s < 60) return `${Math.round(s * 10) / 10} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A status as the lines an operator reads. */
export function formatStatus(s: SinkStatus): string {
  const state = s.state === 'disabled' && s.disabled_reason ? `disabled (${s.disabled_reason})` : s.state;
  const lines = [
    `sink ${s.name} (${s.type}, defined ${s.source === 'config' ? 'in the config file' : 'through the API'})`,
    `  state:         ${state}`,
    `  delivered by:  ${s.node === null ? 'no node at the moment' : `node ${s.node}`}${s.node !== null && !s.held_here ? ' (not the node that answered: ask it for health and counters)' : ''}`,
    `  lag:           ${s.lag_events} event${s.lag_events === 1 ? '' : 's'}, ${describeSeconds(s.lag_seconds)}`,
    `  cursor:        ${s.cursor} of ${s.head_seq}${s.in_flight_to === null ? '' : ` (delivering up to ${s.in_flight_to})`}`,
    `  last success:  ${s.last_success_at ?? 'none since start'}`,
    `  last error:    ${s.last_error ? `${s.last_error.at} ${s.last_error.reason}` : 'none since start'}`,
  ];
  if (s.next_attempt_at) lines.push(`  next attempt:  ${s.next_attempt_at}`);
  if (s.last_healthcheck) {
    const h = s.last_healthcheck;
    lines.push(`  healthcheck:   ${h.at} ${h.ok ? 'ok' : 'failed'}: ${h.detail}`);
  }
  if (s.counters) {
    const c = s.counters;
    lines.push(
      `  since start:   ${c.delivered} delivered in ${c.batches} batches, ${c.retries} retries, ${c.parked} parked, ${c.filtered} filtered out`,
    );
  }
  lines.push(
    `  dead letters:  ${s.dead_letters}${s.dead_letters > 0 ? ` (trailwarden sinks dead-letters ${s.name})` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Rows as left-aligned columns, the first row the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 2)))
        .join('')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/** What each `trailwarden sinks` subcommand does through the admin API; `sinks.ts` registers them. */

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { substituteEnv } from '../config/substitute-env.js';
import type { ApiClient } from './http-client.js';
import {
  describeSeconds,
  formatStatus,
  type ListedSink,
  type SinkStatus,
  table,
  writeJson,
} from './sinks-format.js';

interface DeadLetterView {
  id: number;
  seq: number;
  event_id: string;
  reason: string;
  attempts: number;
  parked_at: string;
  last_attempt_at: string | null;
}

interface RedriveResult {
  id: number;
  seq: number;
  status: 'delivered' | 'failed' | 'missing' | 'queued';
  reason?: string;
}

/**
 * The URL of a sink: names are scoped per tenant, so an all-tenant admin
 * names a tenant's sink with `tenant` (`?tenant_id=`); a tenant-bound key
 * needs none.
 */
const path = (name: string, rest = '', tenant?: string | null) =>
  `/v1/sinks/${encodeURIComponent(name)}${rest}${tenant ? `?tenant_id=${encodeURIComponent(tenant)}` : ''}`;

/** Flags every command on one sink takes. */
export interface SinkFlags {
  /** The tenant whose sink is meant (all-tenant admin keys). */
  tenant?: string;
}

/** `sinks list`: every sink the key may see, with its state and lag. */
export async function sinksList(
  client: ApiClient,
  flags: { json?: boolean } & SinkFlags,
  out: NodeJS.WritableStream,
) {
  const { sinks } = await client.json<{ sinks: ListedSink[] }>('GET', '/v1/sinks', {
    query: { tenant_id: flags.tenant },
  });
  const statuses = await Promise.all(
    sinks.map((s) => client.json<SinkStatus>('GET', path(s.name, '/status', s.tenant_id))),
  );
  if (flags.json) {
    writeJson(
      out,
      sinks.map((s, i) => ({ ...s, status: statuses[i] })),
    );
    return 0;
  }
  if (sinks.length === 0) {
    out.write('No sinks. Add one under `sinks:` in the config file or with `trailwarden sinks create`.\n');
    return 0;
  }
  const rows = [['NAME', 'TYPE', 'STATE', 'LAG', 'DEAD', 'SOURCE', 'TENANT', 'NODE']];
  sinks.forEach((s, i) => {
    const st = statuses[i]!;
    rows.push([
      s.name,
      s.type,
      st.state,
      `${st.lag_events} (${describeSeconds(st.lag_seconds)})`,
      String(st.dead_letters),
      s.source,
      s.tenant_id ?? '*',
      st.node ?? '-',
    ]);
  });
  out.write(table(rows));
  return 0;
}

/** `sinks status <name>` */
export async function sinksStatus(
  client: ApiClient,
  name: string,
  flags: { json?: boolean } & SinkFlags,
  out: NodeJS.WritableStream,
) {
  const status = await client.json<SinkStatus>('GET', path(name, '/status', flags.tenant));
  if (flags.json) writeJson(out, status);
  else out.write(formatStatus(status));
  return 0;
}

/** `sinks show <name>`: the settings, secrets masked. */
export async function sinksShow(
  client: ApiClient,
  name: string,
  flags: SinkFlags,
  out: NodeJS.WritableStream,
) {
  writeJson(out, await client.json<ListedSink>('GET', path(name, '', flags.tenant)));
  return 0;
}

/** `sinks replay <name> --from-seq N | --from-time ISO` */
export async function sinksReplay(
  client: ApiClient,
  name: string,
  flags: { fromSeq?: number; fromTime?: string } & SinkFlags,
  out: NodeJS.WritableStream,
) {
  if ((flags.fromSeq === undefined) === (flags.fromTime === undefined)) {
    throw new Error('sinks replay: give exactly one of --from-seq or --from-time');
  }
  const body = flags.fromSeq !== undefined ? { from_seq: flags.fromSeq } : { from_time: flags.fromTime };
  const res = await client.json<{ from_seq: number }>('POST', path(name, '/replay', flags.tenant), {
    body: JSON.stringify(body),
    contentType: 'application/json',
  });
  out.write(`Sink ${name} delivers again from seq ${res.from_seq}.\n`);
  return 0;
}

/** `sinks pause <name>` and `sinks resume <name>` */
export async function sinksSetPaused(
  client: ApiClient,
  name: string,
  paused: boolean,
  flags: SinkFlags,
  out: NodeJS.WritableStream,
) {
  const status = await client.json<SinkStatus>(
    'POST',
    path(name, paused ? '/pause' : '/resume', flags.tenant),
  );
  out.write(
    paused
      ? `Paused sink ${name} at seq ${status.cursor} (state: ${status.state}); \`trailwarden sinks resume ${name}\` goes on from there.\n`
      : `Resumed sink ${name} (state: ${status.state}, ${status.lag_events} events behind).\n`,
  );
  return 0;
}

/** `sinks dead-letters <name>` */
export async function sinksDeadLetters(
  client: ApiClient,
  name: string,
  flags: { limit?: number; afterId?: number; json?: boolean } & SinkFlags,
  out: NodeJS.WritableStream,
) {
  const page = await client.json<{ dead_letters: DeadLetterView[]; next_after_id: number | null }>(
    'GET',
    path(name, '/dead-letters'),
    { query: { limit: flags.limit, after_id: flags.afterId, tenant_id: flags.tenant } },
  );
  if (flags.json) {
    writeJson(out, page);
    return 0;
  }
  if (page.dead_letters.length === 0) {
    out.write(`No dead letters in sink ${name}.\n`);
    return 0;
  }
  const rows = [['ID', 'SEQ', 'EVENT ID', 'ATTEMPTS', 'PARKED AT', 'REASON']];
  for (const d of page.dead_letters) {
    rows.push([String(d.id), String(d.seq), d.event_id, String(d.attempts), d.parked_at, d.reason]);
  }
  out.write(table(rows));
  if (page.next_after_id !== null) {
    out.write(`More: trailwarden sinks dead-letters ${name} --after-id ${page.next_after_id}\n`);
  }
  return 0;
}

/**
 * `sinks redrive <name> [--id N ...]`: exit status 1 when any letter was not
 * delivered or queued (through a node that does not deliver the sink, the
 * letters are queued for the node that does).
 */
export async function sinksRedrive(
  client: ApiClient,
  name: string,
  flags: { id?: number[]; json?: boolean } & SinkFlags,
  out: NodeJS.WritableStream,
) {
  const body = flags.id && flags.id.length > 0 ? { ids: flags.id } : {};
  const { results } = await client.json<{ results: RedriveResult[] }>(
    'POST',
    path(name, '/dead-letters/redrive', flags.tenant),
    { body: JSON.stringify(body), contentType: 'application/json' },
  );
  const count = (status: RedriveResult['status']) => results.filter((r) => r.status === status).length;
  const delivered = count('delivered');
  const queued = count('queued');
  if (flags.json) writeJson(out, { results });
  else {
    for (const r of results) {
      const what =
        r.status === 'missing'
          ? 'no such dead letter'
          : r.status === 'queued'
            ? `seq ${r.seq} queued for the node that delivers the sink`
            : `seq ${r.seq} ${r.status}${r.reason ? `: ${r.reason}` : ''}`;
      out.write(`  ${r.id}: ${what}\n`);
    }
    out.write(
      `Redrove ${results.length} dead letter${results.length === 1 ? '' : 's'} of sink ${name}: ${delivered} delivered (and removed), ${queued > 0 ? `${queued} queued for the node that delivers it (see them go with \`trailwarden sinks dead-letters ${name}\`), ` : ''}${results.length - delivered - queued} left.\n`,
    );
  }
  return delivered + queued === results.length ? 0 : 1;
}

/** Reads a sink definition from a JSON or YAML file (`-` reads stdin). */
export async function readSinkFile(file: string, stdin: NodeJS.ReadableStream = process.stdin) {
  let text: string;
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    text = await readFile(file, 'utf8');
  }
  let value: unknown;
  try {
    value = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${file} must hold one sink as an object (name, type, …)`);
  }
  return value as Record<string, unknown>;
}

/**
 * Replaces `${NAME}` references in every string of a sink file from this
 * command's environment (the server never reads its own environment for an
 * API sink), so a secret can stay out of the file.
 */
export function substituteSinkFile(
  value: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  file: string,
): Record<string, unknown> {
  const problems: string[] = [];
  const walk = (v: unknown, where: string): unknown => {
    if (typeof v === 'string') {
      const r = substituteEnv(v, env);
      for (const p of r.problems) problems.push(`${where}: ${p}`);
      return r.value;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${where}[${i}]`));
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, where ? `${where}.${k}` : k)]));
    }
    return v;
  };
  const out = walk(value, '') as Record<string, unknown>;
  if (problems.length > 0) throw new Error(`${file}: ${problems.join('; ')}`);
  return out;
}

/** `sinks create --file sink.yaml`: `${ENV}` references are replaced from this command's environment. */
export async function sinksCreate(
  client: ApiClient,
  flags: { file: string; json?: boolean },
  env: NodeJS.ProcessEnv,
  out: NodeJS.WritableStream,
) {
  const sink = substituteSinkFile(await readSinkFile(flags.file), env, flags.file);
  const created = await client.json<ListedSink>('POST', '/v1/sinks', {
    body: JSON.stringify(sink),
    contentType: 'application/json',
  });
  if (flags.json) writeJson(out, created);
  else
    out.write(
      `Created sink ${created.name} (${created.type}); see \`trailwarden sinks status ${created.name}\`.\n`,
    );
  return 0;
}

/** `sinks delete <name>` */
export async function sinksDelete(
  client: ApiClient,
  name: string,
  flags: SinkFlags,
  out: NodeJS.WritableStream,
) {
  await client.request('DELETE', path(name, '', flags.tenant));
  out.write(`Deleted sink ${name}, its cursor and its dead letters.\n`);
  return 0;
}

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ApiClient, addClientOptions, clientOptionsFrom } from './http-client.js';

/** Where `sinks` commands write and which environment they read (tests replace both). */
export interface SinksIo {
  out: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Receives each command's exit status. */
  exit: (code: number) => void;
}

const processIo: SinksIo = {
  out: process.stdout,
  env: process.env,
  exit: (code) => {
    process.exitCode = code;
  },
};

interface ClientFlags {
  url?: string;
  key?: string;
}

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
  counters: { delivered: number; batches: number; retries: number; parked: number; filtered: number } | null;
  dead_letters: number;
}

/** One entry of GET /v1/sinks (secrets masked). */
interface ListedSink {
  name: string;
  type: string;
  enabled?: boolean;
  source: 'config' | 'api';
  tenant_id: string | null;
  [field: string]: unknown;
}

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
  status: 'delivered' | 'failed' | 'missing';
  reason?: string;
}

const path = (name: string, rest = '') => `/v1/sinks/${encodeURIComponent(name)}${rest}`;

function writeJson(out: NodeJS.WritableStream, value: unknown): void {
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
    `  lag:           ${s.lag_events} event${s.lag_events === 1 ? '' : 's'}, ${describeSeconds(s.lag_seconds)}`,
    `  cursor:        ${s.cursor} of ${s.head_seq}${s.in_flight_to === null ? '' : ` (delivering up to ${s.in_flight_to})`}`,
    `  last success:  ${s.last_success_at ?? 'none since start'}`,
    `  last error:    ${s.last_error ? `${s.last_error.at} ${s.last_error.reason}` : 'none since start'}`,
  ];
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

function table(rows: string[][]): string {
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

/** `sinks list`: every sink the key may see, with its state and lag. */
export async function sinksList(client: ApiClient, flags: { json?: boolean }, out: NodeJS.WritableStream) {
  const { sinks } = await client.json<{ sinks: ListedSink[] }>('GET', '/v1/sinks');
  const statuses = await Promise.all(
    sinks.map((s) => client.json<SinkStatus>('GET', path(s.name, '/status'))),
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
  const rows = [['NAME', 'TYPE', 'STATE', 'LAG', 'DEAD', 'SOURCE', 'TENANT']];
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
    ]);
  });
  out.write(table(rows));
  return 0;
}

/** `sinks status <name>` */
export async function sinksStatus(
  client: ApiClient,
  name: string,
  flags: { json?: boolean },
  out: NodeJS.WritableStream,
) {
  const status = await client.json<SinkStatus>('GET', path(name, '/status'));
  if (flags.json) writeJson(out, status);
  else out.write(formatStatus(status));
  return 0;
}

/** `sinks show <name>`: the settings, secrets masked. */
export async function sinksShow(client: ApiClient, name: string, out: NodeJS.WritableStream) {
  writeJson(out, await client.json<ListedSink>('GET', path(name)));
  return 0;
}

/** `sinks replay <name> --from-seq N | --from-time ISO` */
export async function sinksReplay(
  client: ApiClient,
  name: string,
  flags: { fromSeq?: number; fromTime?: string },
  out: NodeJS.WritableStream,
) {
  if ((flags.fromSeq === undefined) === (flags.fromTime === undefined)) {
    throw new Error('sinks replay: give exactly one of --from-seq or --from-time');
  }
  const body = flags.fromSeq !== undefined ? { from_seq: flags.fromSeq } : { from_time: flags.fromTime };
  const res = await client.json<{ from_seq: number }>('POST', path(name, '/replay'), {
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
  out: NodeJS.WritableStream,
) {
  const status = await client.json<SinkStatus>('POST', path(name, paused ? '/pause' : '/resume'));
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
  flags: { limit?: number; afterId?: number; json?: boolean },
  out: NodeJS.WritableStream,
) {
  const page = await client.json<{ dead_letters: DeadLetterView[]; next_after_id: number | null }>(
    'GET',
    path(name, '/dead-letters'),
    { query: { limit: flags.limit, after_id: flags.afterId } },
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

/** `sinks redrive <name> [--id N ...]`: exit status 1 when any letter was not delivered. */
export async function sinksRedrive(
  client: ApiClient,
  name: string,
  flags: { id?: number[]; json?: boolean },
  out: NodeJS.WritableStream,
) {
  const body = flags.id && flags.id.length > 0 ? { ids: flags.id } : {};
  const { results } = await client.json<{ results: RedriveResult[] }>(
    'POST',
    path(name, '/dead-letters/redrive'),
    { body: JSON.stringify(body), contentType: 'application/json' },
  );
  const delivered = results.filter((r) => r.status === 'delivered').length;
  if (flags.json) writeJson(out, { results });
  else {
    for (const r of results) {
      const what =
        r.status === 'missing'
          ? 'no such dead letter'
          : `seq ${r.seq} ${r.status}${r.reason ? `: ${r.reason}` : ''}`;
      out.write(`  ${r.id}: ${what}\n`);
    }
    out.write(
      `Redrove ${results.length} dead letter${results.length === 1 ? '' : 's'} of sink ${name}: ${delivered} delivered (and removed), ${results.length - delivered} left.\n`,
    );
  }
  return delivered === results.length ? 0 : 1;
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

/** `sinks create --file sink.yaml`: `${ENV}` references go as written; the server resolves them. */
export async function sinksCreate(
  client: ApiClient,
  flags: { file: string; json?: boolean },
  out: NodeJS.WritableStream,
) {
  const sink = await readSinkFile(flags.file);
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
export async function sinksDelete(client: ApiClient, name: string, out: NodeJS.WritableStream) {
  await client.request('DELETE', path(name));
  out.write(`Deleted sink ${name}, its cursor and its dead letters.\n`);
  return 0;
}

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError('expected a whole number of at least 1');
  }
  return Number(value);
}

function isoTime(value: string): string {
  if (Number.isNaN(Date.parse(value)) || !/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    throw new InvalidArgumentError('expected an ISO 8601 time such as 2025-01-31T08:00:00Z');
  }
  return value;
}

function collectIds(value: string, previous: number[] = []): number[] {
  return [...previous, positiveInt(value)];
}

/** Adds `trailwarden sinks …`, the admin API of delivery over HTTP (admin key). */
export function registerSinksCommand(program: Command, io: SinksIo = processIo): Command {
  const sinks = program
    .command('sinks')
    .summary('manage delivery sinks on a running server')
    .description(
      'Manage the sinks a running server delivers events to, through its admin API (an admin key; ' +
        'a tenant-bound admin key sees only its tenant’s sinks). See docs/delivery.md.',
    );
  const client = (flags: ClientFlags) => new ApiClient(clientOptionsFrom(flags, io.env));
  const sub = (spec: string, summary: string, description: string) =>
    addClientOptions(sinks.command(spec).summary(summary).description(description));
  const done = io.exit;

  sub(
    'list',
    'list sinks with their state and lag',
    'List the sinks this key may see, with state, lag and dead letters.',
  )
    .option('--json', 'JSON output: the settings (secrets masked) and the status of each sink')
    .action(async (flags: ClientFlags & { json?: boolean }) =>
      done(await sinksList(client(flags), flags, io.out)),
    );

  sub(
    'status',
    'show the health of a sink',
    'Show a sink’s state (healthy, retrying, failing, paused, disabled, stopped), its lag in events ' +
      'and seconds, its last success and error, counters since the server started, and how many ' +
      'events wait in its dead-letter list.',
  )
    .argument('<name>', 'sink name')
    .option('--json', 'the raw GET /v1/sinks/{name}/status answer')
    .action(async (name: string, flags: ClientFlags & { json?: boolean }) =>
      done(await sinksStatus(client(flags), name, flags, io.out)),
    );

  sub('show', 'print the settings of a sink', 'Print a sink’s settings as JSON, secrets masked.')
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) => done(await sinksShow(client(flags), name, io.out)));

  sub(
    'replay',
    'deliver events again from a seq or a time',
    'Move the sink’s cursor so delivery starts again at --from-seq, or at the first event received at ' +
      'or after --from-time. Events from there on are delivered again (with new delivery ids); the ' +
      'attempt in progress is abandoned.',
  )
    .argument('<name>', 'sink name')
    .option('--from-seq <seq>', 'first seq to deliver again (1 = the whole log)', positiveInt)
    .option('--from-time <iso>', 'first receive time to deliver again, e.g. 2025-01-31T08:00:00Z', isoTime)
    .addHelpText('after', '\nGive exactly one of --from-seq and --from-time.')
    .action(async (name: string, flags: ClientFlags & { fromSeq?: number; fromTime?: string }) =>
      done(await sinksReplay(client(flags), name, flags, io.out)),
    );

  sub(
    'pause',
    'stop delivering to a sink',
    'Pause a sink after the attempt in progress. Its cursor stays, so `resume` goes on where it stopped.',
  )
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) =>
      done(await sinksSetPaused(client(flags), name, true, io.out)),
    );

  sub(
    'resume',
    'resume a paused or disabled sink',
    'Resume a paused sink, or re-enable one the receiver disabled (HTTP 410 Gone); retrying starts afresh.',
  )
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) =>
      done(await sinksSetPaused(client(flags), name, false, io.out)),
    );

  sub(
    'dead-letters',
    'list events a sink gave up on',
    'List the dead letters of a sink: events refused for good (e.g. HTTP 400) or whose retry schedule ran out.',
  )
    .argument('<name>', 'sink name')
    .option('--limit <n>', 'at most this many (1-1000; default 100)', positiveInt)
    .option('--after-id <id>', 'the page after this dead-letter id', positiveInt)
    .option('--json', 'JSON output')
    .action(async (name: string, flags: ClientFlags & { limit?: number; afterId?: number; json?: boolean }) =>
      done(await sinksDeadLetters(client(flags), name, flags, io.out)),
    );

  sub(
    'redrive',
    'deliver dead letters again',
    'Deliver dead letters again, once each, now: all of them (up to 1000), or those given with --id. ' +
      'Delivered ones leave the list; the others stay with the new reason.',
  )
    .argument('<name>', 'sink name')
    .option('--id <id>', 'a dead-letter id (repeat for several)', collectIds)
    .option('--json', 'JSON output')
    .addHelpText('after', '\nExits with status 1 when any dead letter was not delivered.')
    .action(async (name: string, flags: ClientFlags & { id?: number[]; json?: boolean }) =>
      done(await sinksRedrive(client(flags), name, flags, io.out)),
    );

  sub(
    'create',
    'create a sink from a JSON or YAML file',
    'Create a sink from a file holding one sink (the same fields as an entry under `sinks:` in the ' +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a ${ENV} reference, meant literally
      'config file). `${ENV}` references are sent as written and resolved by the server, so secrets ' +
      'can stay in the server’s environment.',
  )
    .requiredOption('-f, --file <file>', 'sink definition (.json, .yaml or .yml; "-" reads stdin)')
    .option('--json', 'print the created sink (secrets masked)')
    .addHelpText(
      'after',
      '\nExample sink.yaml:\n' +
        '  name: siem\n' +
        '  type: webhook\n' +
        '  url: https://siem.example.com/hook\n' +
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a ${ENV} reference, meant literally
        '  secret: ${SIEM_WEBHOOK_SECRET}\n' +
        '  filter:\n' +
        "    include_actions: ['user.*']",
    )
    .action(async (flags: ClientFlags & { file: string; json?: boolean }) =>
      done(await sinksCreate(client(flags), flags, io.out)),
    );

  sub(
    'delete',
    'delete a sink',
    'Delete a sink created through the API, with its cursor and dead letters. Sinks of the config ' +
      'file are removed there.',
  )
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) => done(await sinksDelete(client(flags), name, io.out)));

  return sinks;
}

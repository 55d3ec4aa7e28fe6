import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type Command, Option } from 'commander';
import {
  ApiClient,
  addClientOptions,
  addFilterOptions,
  clientOptionsFrom,
  type FilterFlags,
  filterQuery,
  type QueryValue,
} from './http-client.js';
import { createProgress, type Progress } from './progress.js';

export const EXPORT_FORMATS = ['jsonl', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const ACCEPT: Record<ExportFormat, string> = { jsonl: 'application/x-ndjson', csv: 'text/csv' };

export interface ExportOptions {
  client: ApiClient;
  format: ExportFormat;
  /** Filter query parameters for GET /v1/export. */
  query: Record<string, QueryValue>;
  /** Where the body goes; it is ended when the export ends. */
  out: Writable;
  progress?: Progress;
  signal?: AbortSignal;
}

/** How much was written. `lines` counts newlines: events for jsonl, rows plus header for csv. */
export interface ExportResult {
  bytes: number;
  lines: number;
}

/** Streams GET /v1/export into `out` with backpressure; memory stays bounded whatever the size. */
export async function exportEvents(opts: ExportOptions): Promise<ExportResult> {
  const res = await opts.client.request('GET', '/v1/export', {
    query: { ...opts.query, format: opts.format },
    headers: { accept: ACCEPT[opts.format] },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const result: ExportResult = { bytes: 0, lines: 0 };
  if (!res.body) {
    opts.out.end();
    return result;
  }
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      result.bytes += chunk.length;
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) result.lines++;
      const what = opts.format === 'jsonl' ? `${result.lines} events` : `${result.lines} lines`;
      opts.progress?.update(`exported ${what}, ${(result.bytes / 1048576).toFixed(1)} MiB`);
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), count, opts.out);
  } finally {
    opts.progress?.done();
  }
  return result;
}

interface ExportFlags extends FilterFlags {
  url?: string;
  key?: string;
  format: ExportFormat;
  from?: string;
  to?: string;
  out?: string;
}

/** Adds `trailwarden export`. */
export function registerExportCommand(program: Command): Command {
  const cmd = program
    .command('export')
    .summary('export events as JSON lines or CSV')
    .description(
      'Stream the events matching the filters from GET /v1/export, oldest first, to a file or stdout. ' +
        'A jsonl export keeps every field (seq, leaf_hash included), so `trailwarden verify` can check it.',
    )
    .addOption(
      new Option('--format <format>', 'output format').choices([...EXPORT_FORMATS]).makeOptionMandatory(),
    )
    .option('--out <file>', 'write to this file (written as FILE.partial, renamed when complete)')
    .option('--from <time>', 'only events with timestamp at or after this time (ISO 8601)')
    .option('--to <time>', 'only events with timestamp before this time (ISO 8601)');
  addFilterOptions(cmd);
  addClientOptions(cmd)
    .addHelpText(
      'after',
      '\nProgress is shown on stderr when it is a terminal.\n\n' +
        'Examples:\n' +
        '  trailwarden export --format jsonl --tenant-id acme --out acme.jsonl\n' +
        '  trailwarden export --format csv --action "user.*" --from 2026-03-01T00:00:00Z > march.csv',
    )
    .action(async (flags: ExportFlags) => {
      await runExport(flags);
    });
  return cmd;
}

/** The `export` action. With `--out`, a failed export leaves no file behind that looks complete. */
export async function runExport(
  flags: ExportFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ExportResult> {
  const client = new ApiClient(clientOptionsFrom(flags, env));
  const query = { ...filterQuery(flags), from: flags.from, to: flags.to };
  const progress = createProgress(process.stderr);
  if (flags.out === undefined) {
    // Leave stdout open for whatever the shell does next: end only the pass-through.
    const passThrough = new Transform({ transform: (chunk, _enc, done) => done(null, chunk) });
    passThrough.pipe(process.stdout, { end: false });
    return exportEvents({ client, format: flags.format, query, out: passThrough, progress });
  }
  const partial = `${flags.out}.partial`;
  try {
    const result = await exportEvents({
      client,
      format: flags.format,
      query,
      out: createWriteStream(partial),
      progress,
    });
    await rename(partial, flags.out);
    const what = flags.format === 'jsonl' ? `${result.lines} events` : `${result.lines} lines`;
    process.stderr.write(`exported ${what} (${result.bytes} bytes) to ${flags.out}\n`);
    return result;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

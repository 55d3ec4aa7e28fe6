import { createReadStream } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { ApiClient, ApiError, addClientOptions, clientOptionsFrom, describeProblem } from './http-client.js';
import { createProgress, type Progress } from './progress.js';

/** One event read from the input: the line its object starts on and its JSON on one line. */
export interface InputRecord {
  line: number;
  text: string;
}

/** Bad input: not JSON, not an object, not closed. */
export class InputError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'InputError';
    this.line = line;
  }
}

/** The server allows at most 1 MiB per event; anything far larger is a broken input, not an event. */
const MAX_RECORD_CHARS = 8 * 1024 * 1024;

/**
 * Streams events out of NDJSON, a JSON array, or a single (possibly
 * pretty-printed) JSON object. The first non-blank character decides: `[` is
 * an array, `{` starts a sequence of objects (NDJSON being the usual case).
 * Only object boundaries are found here (depth counting that skips strings);
 * each object is then checked with `JSON.parse`. Memory holds one object.
 */
export async function* readRecords(
  input: AsyncIterable<string | Buffer> | Iterable<string | Buffer>,
): AsyncGenerator<InputRecord> {
  let mode: 'detect' | 'objects' | 'array' | 'done' = 'detect';
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let expectComma = false;
  let buf = '';
  let startLine = 0;
  const decoder = new TextDecoder();

  for await (const piece of input) {
    const chunk = typeof piece === 'string' ? piece : decoder.decode(piece, { stream: true });
    let segStart = depth > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (depth > 0) {
        if (inString) {
          if (escaped) escaped = false;
          else if (c === '\\') escaped = true;
          else if (c === '"') inString = false;
        } else if (c === '"') inString = true;
        else if (c === '{' || c === '[') depth++;
        else if (c === '}' || c === ']') {
          depth--;
          if (depth === 0) {
            yield toRecord(buf + chunk.slice(segStart, i + 1), startLine);
            buf = '';
            segStart = -1;
            expectComma = true;
          }
        }
      } else if (c === '\n') {
        // counted below
      } else if (c === ' ' || c === '\t' || c === '\r' || c === '\ufeff') {
        // whitespace between values
      } else if (mode === 'detect' && c === '[') {
        mode = 'array';
      } else if (mode === 'array' && c === ',' && expectComma) {
        expectComma = false;
      } else if (mode === 'array' && c === ']') {
        mode = 'done';
      } else if (c === '{' && mode !== 'done' && !(mode === 'array' && expectComma)) {
        if (mode === 'detect') mode = 'objects';
        depth = 1;
        startLine = line;
        segStart = i;
      } else if (mode === 'done') {
        throw new InputError(line, 'unexpected text after the closing "]" of the array');
      } else if (mode === 'array' && expectComma) {
        throw new InputError(line, `expected "," or "]" between array elements, found ${JSON.stringify(c)}`);
      } else {
        throw new InputError(line, `expected a JSON object ("{"), found ${JSON.stringify(c)}`);
      }
      if (c === '\n') line++;
    }
    if (depth > 0) {
      buf += chunk.slice(segStart);
      if (buf.length > MAX_RECORD_CHARS) {
        throw new InputError(
          startLine,
          `the object starting here is larger than ${MAX_RECORD_CHARS} characters`,
        );
      }
    }
  }
  if (depth > 0) throw new InputError(startLine, 'the object starting here is never closed');
  if (mode === 'array') throw new InputError(line, 'the JSON array is never closed (missing "]")');
}

function toRecord(value: string, line: number): InputRecord {
  try {
    JSON.parse(value);
  } catch (err) {
    throw new InputError(line, `invalid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  // A raw line break cannot occur inside a valid JSON string, so outside strings it is
  // only whitespace: replacing it yields the same value on one NDJSON line.
  return { line, text: value.replace(/[\r\n]+/g, ' ') };
}

export interface SendOptions {
  client: ApiClient;
  input: AsyncIterable<string | Buffer> | Iterable<string | Buffer>;
  /** Events per request, 1 to 1000. */
  batchSize: number;
  /** Bytes per request body; keep under the server's `limits.max_body_bytes`. */
  maxBatchBytes: number;
  progress?: Progress;
}

/** What the server stored. */
export interface SendSummary {
  events: number;
  created: number;
  duplicates: number;
  /** Input lines before this one were all sent (0 when nothing was read). */
  nextLine: number;
}

/** A batch or the input failed; events before `summary.nextLine` are stored, the rest were not sent. */
export class SendError extends Error {
  readonly summary: SendSummary;
  /** Problems mapped back to input lines. */
  readonly lines: { line: number | undefined; text: string }[];
  /**
   * True when the failed batch may have been stored anyway (no answer, or a
   * 5xx such as an emit timeout, after which the events stay stored).
   */
  readonly uncertain: boolean;
  constructor(
    message: string,
    summary: SendSummary,
    lines: { line: number | undefined; text: string }[],
    uncertain = false,
  ) {
    super(message);
    this.name = 'SendError';
    this.summary = summary;
    this.lines = lines;
    this.uncertain = uncertain;
  }
}

interface IngestResponse {
  accepted?: number;
  events?: { event_id: string; status: 'created' | 'duplicate' }[];
}

/**
 * Posts the input to POST /v1/events as NDJSON batches, in input order, one
 * request at a time. Stops at the first failure, saying which input lines the
 * server refused (its 422 problems carry an index within the batch).
 */
export async function sendEvents(opts: SendOptions): Promise<SendSummary> {
  const summary: SendSummary = { events: 0, created: 0, duplicates: 0, nextLine: 0 };
  let batch: InputRecord[] = [];
  let batchBytes = 0;

  const flush = async () => {
    if (batch.length === 0) return;
    const body = `${batch.map((r) => r.text).join('\n')}\n`;
    let res: IngestResponse;
    try {
      res = await opts.client.json<IngestResponse>('POST', '/v1/events', {
        body,
        contentType: 'application/x-ndjson',
      });
    } catch (err) {
      const sent = batch;
      const lines =
        err instanceof ApiError
          ? err.problems.map((p) => ({
              line: p.index === undefined ? undefined : sent[p.index]?.line,
              text: describeProblem(p.index !== undefined && sent[p.index] ? { ...p, index: undefined } : p),
            }))
          : [];
      const what =
        err instanceof ApiError ? `${err.code}: ${err.detail}` : String((err as Error).message ?? err);
      throw new SendError(
        `the batch of ${lineRange(sent)} was refused: ${what}`,
        { ...summary, nextLine: sent[0]!.line },
        lines,
        !(err instanceof ApiError) || err.status >= 500,
      );
    }
    const statuses = res.events ?? [];
    const duplicates = statuses.filter((e) => e.status === 'duplicate').length;
    const accepted = statuses.length > 0 ? statuses.length : (res.accepted ?? batch.length);
    summary.events += accepted;
    summary.duplicates += duplicates;
    summary.created += accepted - duplicates;
    summary.nextLine = batch.at(-1)!.line + 1;
    opts.progress?.update(`sent ${summary.events} events (line ${summary.nextLine - 1})`);
    batch = [];
    batchBytes = 0;
  };

  try {
    for await (const record of readRecords(opts.input)) {
      const bytes = Buffer.byteLength(record.text) + 1;
      if (batch.length > 0 && (batch.length >= opts.batchSize || batchBytes + bytes > opts.maxBatchBytes)) {
        await flush();
      }
      batch.push(record);
      batchBytes += bytes;
    }
    await flush();
  } catch (err) {
    if (err instanceof InputError) {
      // The batch being filled is not sent, so "everything before nextLine is stored" holds.
      const nextLine = batch[0]?.line ?? err.line;
      throw new SendError(`cannot read the input: ${err.message}`, { ...summary, nextLine }, []);
    }
    throw err;
  } finally {
    opts.progress?.done();
  }
  return summary;
}

function lineRange(batch: InputRecord[]): string {
  const first = batch[0]!.line;
  const last = batch.at(-1)!.line;
  return first === last ? `line ${first}` : `lines ${first}–${last}`;
}

/** `1200 events sent: 1190 created, 10 duplicates` */
export function describeSummary(s: SendSummary): string {
  return `${s.events} events sent: ${s.created} created, ${s.duplicates} duplicate${s.duplicates === 1 ? '' : 's'}`;
}

export const DEFAULT_BATCH_SIZE = 500;
export const MAX_BATCH_SIZE = 1000;
/** Under the server's default `limits.max_body_bytes` (5 MiB), with room to spare. */
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024;

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > max) {
      throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
    }
    return n;
  };
}

interface SendFlags {
  url?: string;
  key?: string;
  batchSize: number;
  maxBatchBytes: number;
}

/** Adds `trailwarden send`. */
export function registerSendCommand(program: Command): Command {
  const cmd = program
    .command('send')
    .summary('send events from a file or stdin')
    .description(
      'Send events to POST /v1/events. The input is NDJSON (one event per line), a JSON array of ' +
        'events, or a single JSON object; the first non-blank character tells which. It is read as a ' +
        'stream and posted in batches, in order. Events with an event_id are idempotent, so sending ' +
        'the same input again only reports duplicates.',
    )
    .argument('[file]', 'file to read; "-" or nothing reads stdin');
  addClientOptions(cmd)
    .option(
      '--batch-size <n>',
      `events per request (at most ${MAX_BATCH_SIZE})`,
      positiveInt(MAX_BATCH_SIZE),
      DEFAULT_BATCH_SIZE,
    )
    .option(
      '--max-batch-bytes <n>',
      "bytes per request (keep under the server's limits.max_body_bytes)",
      positiveInt(100 * 1024 * 1024),
      DEFAULT_MAX_BATCH_BYTES,
    )
    .addHelpText(
      'after',
      "\nOn a refused batch the command prints the server's problems with the input line of each\n" +
        'event, says up to which line events were stored, and exits with status 1. Progress is shown\n' +
        'on stderr when it is a terminal.\n\n' +
        'Examples:\n' +
        '  trailwarden send events.ndjson\n' +
        '  gunzip -c events.ndjson.gz | trailwarden send --batch-size 1000 -',
    )
    .action(async (file: string | undefined, flags: SendFlags) => {
      await runSend(file, flags);
    });
  return cmd;
}

/** The `send` action: prints the summary, or the failure and throws so the exit status is 1. */
export async function runSend(
  file: string | undefined,
  flags: SendFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SendSummary> {
  const fromStdin = file === undefined || file === '-';
  if (fromStdin && process.stdin.isTTY) {
    throw new Error('send: no input; give a FILE or pipe events into stdin');
  }
  const input = fromStdin ? process.stdin.setEncoding('utf8') : createReadStream(file, { encoding: 'utf8' });
  try {
    const summary = await sendEvents({
      client: new ApiClient(clientOptionsFrom(flags, env)),
      input,
      batchSize: flags.batchSize,
      maxBatchBytes: flags.maxBatchBytes,
      progress: createProgress(process.stderr),
    });
    process.stdout.write(`${describeSummary(summary)}\n`);
    return summary;
  } catch (err) {
    if (!(err instanceof SendError)) throw err;
    const out = [`trailwarden send: ${err.message}`];
    for (const l of err.lines) out.push(`  ${l.line === undefined ? '' : `line ${l.line}: `}${l.text}`);
    const s = err.summary;
    if (s.events > 0) out.push(`stored: ${describeSummary(s)}, from the input lines before ${s.nextLine}`);
    out.push(
      err.uncertain
        ? `the batch starting at line ${s.nextLine} may or may not have been stored (resending is safe for events with an event_id)`
        : s.events > 0
          ? `nothing from line ${s.nextLine} on was stored`
          : 'nothing was stored',
    );
    process.stderr.write(`${out.join('\n')}\n`);
    throw new Error(`send failed at input line ${s.nextLine}`);
  }
}

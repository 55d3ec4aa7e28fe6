import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { StoredEvent } from '../event/event.js';
import { formatLine } from './format-line.js';
import {
  ApiClient,
  ApiError,
  addClientOptions,
  addFilterOptions,
  clientOptionsFrom,
  type FilterFlags,
  filterQuery,
  type QueryValue,
} from './http-client.js';

/** What a Server-Sent Events stream carries, item by item. */
export type SseItem =
  | {
      kind: 'message';
      /** The last event ID seen so far (it persists across messages, as in the EventSource spec). */
      id: string | undefined;
      /** `event:` field, `message` when absent. */
      event: string;
      /** `data:` lines joined with `\n`. */
      data: string;
    }
  | { kind: 'comment'; text: string }
  | { kind: 'retry'; ms: number };

/**
 * An incremental SSE parser (WHATWG HTML, "Parsing an event stream"): feed it
 * text as it arrives, in chunks of any size, and it returns the complete items.
 * Lines end in CRLF, LF or CR, even when a CRLF is split across two chunks.
 */
export class SseParser {
  #partial = '';
  #afterCR = false;
  #started = false;
  #data: string[] = [];
  #event = '';
  #lastId: string | undefined;

  constructor(lastEventId?: string) {
    this.#lastId = lastEventId;
  }

  /** The ID a reconnect sends as `Last-Event-ID`. */
  get lastEventId(): string | undefined {
    return this.#lastId;
  }

  /** Parses the next chunk; returns the items it completes. */
  feed(chunk: string): SseItem[] {
    const out: SseItem[] = [];
    let text = chunk;
    if (!this.#started && text.length > 0) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let i = 0;
    if (this.#afterCR && text.startsWith('\n')) i = 1;
    if (text.length > 0) this.#afterCR = false;
    const eol = /[\r\n]/g;
    while (i < text.length) {
      eol.lastIndex = i;
      const m = eol.exec(text);
      if (!m) {
        this.#partial += text.slice(i);
        break;
      }
      const line = this.#partial + text.slice(i, m.index);
      this.#partial = '';
      let next = m.index + 1;
      if (m[0] === '\r') {
        if (next === text.length) this.#afterCR = true;
        else if (text[next] === '\n') next++;
      }
      i = next;
      this.#line(line, out);
    }
    return out;
  }

  #line(line: string, out: SseItem[]): void {
    if (line === '') {
      if (this.#data.length > 0) {
        out.push({
          kind: 'message',
          id: this.#lastId,
          event: this.#event || 'message',
          data: this.#data.join('\n'),
        });
      }
      this.#data = [];
      this.#event = '';
      return;
    }
    if (line.startsWith(':')) {
      out.push({ kind: 'comment', text: line.slice(1).replace(/^ /, '') });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) out.push({ kind: 'retry', ms: Number(value) });
  }
}

/** Reconnect delays: doubled after each failed attempt, reset once a connection delivers. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 1000, maxMs: 30_000 };
/** No byte (event or `: ping`) for this long means the connection is dead even if TCP has not noticed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export interface TailOptions {
  client: ApiClient;
  /** Filter query parameters for GET /v1/stream. */
  query: Record<string, QueryValue>;
  /** Start after this `seq` (sent as `Last-Event-ID`); the server's default when absent. */
  after?: string | undefined;
  /** Print the event JSON instead of the readable line. */
  json: boolean;
  /** Receives one output line (without newline) per event. */
  write: (line: string) => void;
  /** Receives notices: connection lost, reconnecting. */
  notice: (text: string) => void;
  /** Stops following. */
  signal?: AbortSignal;
  backoff?: Backoff;
  idleTimeoutMs?: number;
}

/**
 * Follows GET /v1/stream until `signal` aborts, printing each event. A dropped
 * connection is retried with backoff, resuming with `Last-Event-ID` so no
 * event is skipped or repeated. Errors the server will keep giving (bad
 * key, bad filter: 4xx other than 408/429) end the call instead.
 */
export async function tailEvents(opts: TailOptions): Promise<void> {
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  let lastId = opts.after;
  let delay = backoff.initialMs;
  while (!opts.signal?.aborted) {
    const parser = new SseParser(lastId);
    const conn = new AbortController();
    const stop = () => conn.abort();
    opts.signal?.addEventListener('abort', stop, { once: true });
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.abort(new Error(`no data for ${idleTimeoutMs} ms`)), idleTimeoutMs);
    };
    let reason = 'the server closed the stream';
    try {
      arm();
      const res = await opts.client.request('GET', '/v1/stream', {
        query: opts.query,
        headers: {
          accept: 'text/event-stream',
          ...(lastId === undefined ? {} : { 'last-event-id': lastId }),
        },
        signal: conn.signal,
      });
      if (!res.body) throw new Error('the server sent no body');
      const decoder = new TextDecoder();
      for await (const chunk of res.body) {
        arm();
        for (const item of parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))) {
          delay = backoff.initialMs;
          if (item.kind === 'message' && item.event === 'audit') {
            printEvent(item.data, opts);
            lastId = item.id ?? lastId;
          }
        }
      }
    } catch (err) {
      if (opts.signal?.aborted) break;
      if (
        err instanceof ApiError &&
        err.status >= 400 &&
        err.status < 500 &&
        ![408, 429].includes(err.status)
      ) {
        throw err;
      }
      reason = conn.signal.aborted
        ? String((conn.signal.reason as Error)?.message ?? 'aborted')
        : errorText(err);
    } finally {
      clearTimeout(idle);
      opts.signal?.removeEventListener('abort', stop);
    }
    if (opts.signal?.aborted) break;
    opts.notice(`connection lost (${reason}); reconnecting in ${Math.round(delay / 100) / 10} s`);
    try {
      await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : {});
    } catch {
      break;
    }
    delay = Math.min(delay * 2, backoff.maxMs);
  }
}

function printEvent(data: string, opts: TailOptions): void {
  let event: StoredEvent;
  try {
    event = JSON.parse(data) as StoredEvent;
  } catch {
    opts.notice(`skipped an event whose data is not JSON: ${data.slice(0, 80)}`);
    return;
  }
  // Multi-line data is still one JSON value; re-serialise so one event stays one line.
  opts.write(opts.json ? (data.includes('\n') ? JSON.stringify(event) : data) : formatLine(event));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface TailFlags extends FilterFlags {
  url?: string;
  key?: string;
  after?: string;
  json?: boolean;
}

/** Adds `trailwarden tail`. */
export function registerTailCommand(program: Command): Command {
  const cmd = program
    .command('tail')
    .summary('follow the live stream of events')
    .description(
      'Follow the live event stream (GET /v1/stream) and print one line per event as it is stored. ' +
        'A dropped connection is retried (1 s, doubling up to 30 s) and resumes after the last event ' +
        'printed, so nothing is skipped or printed twice. Stop with Ctrl-C.',
    );
  addFilterOptions(cmd);
  addClientOptions(cmd)
    .option('--after <seq>', 'start after this seq instead of at the head of the log')
    .option('--json', 'print each event as one line of JSON instead of the readable line')
    .addHelpText(
      'after',
      '\nLine format:\n' +
        '  2026-03-15T08:42:17.003Z #123 acme user.password.reset failure actor=alice(usr_k1l2)\n' +
        '  resource=user:bob(usr_9x8y) reason=INSUFFICIENT_PRIVILEGES ip=203.0.113.42\n' +
        'Values with spaces, quotes or control characters are printed "quoted\\nand escaped".\n\n' +
        'Examples:\n' +
        '  trailwarden tail --action "user.*" --outcome failure\n' +
        '  trailwarden tail --after 1200 --json | jq .action',
    )
    .action((flags: TailFlags) => runTail(flags));
  return cmd;
}

/** The `tail` action: follows until Ctrl-C or a closed stdout. */
export async function runTail(flags: TailFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (flags.after !== undefined && !/^\d+$/.test(flags.after)) {
    throw new Error(`--after: expected a seq (a whole number), got "${flags.after}"`);
  }
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  // `tail | head` closes stdout: stop quietly rather than crash on EPIPE.
  const onStdoutError = () => controller.abort();
  process.stdout.on('error', onStdoutError);
  try {
    await tailEvents({
      client: new ApiClient(clientOptionsFrom(flags, env)),
      query: filterQuery(flags),
      after: flags.after,
      json: flags.json === true,
      write: (line) => process.stdout.write(`${line}\n`),
      notice: (text) => process.stderr.write(`trailwarden tail: ${text}\n`),
      signal: controller.signal,
    });
  } finally {
    process.off('SIGINT', onSigint);
    process.stdout.off('error', onStdoutError);
  }
}

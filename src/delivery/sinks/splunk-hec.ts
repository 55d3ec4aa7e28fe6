import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, buildConnector, request } from 'undici';
import { z } from 'zod';
import { TrailwardenError } from '../../errors.js';
import { VERSION } from '../../version.js';
import {
  type DeliveryBatch,
  type DeliveryOutcome,
  defineSink,
  disable,
  ok,
  permanent,
  retry,
  type SinkContext,
  type SinkOptions,
} from '../sink.js';
import { describeError, snippet } from './net/describe-error.js';
import { httpUrl } from './net/http-url.js';
import { forbiddenAddressIn, sinkNetworkGuard } from './net/network-guard.js';
import { retryAfterMs } from './net/retry-after.js';
import { TLS_HOST_OPTIONS, tlsConnectionOptions, tlsSchema } from './net/tls-options.js';

/** HEC answers are a few dozen bytes; anything past this is cut (and the connection dropped). */
const RESPONSE_LIMIT_BYTES = 65_536;
/** Where HEC listens, below the base URL (Splunk docs: "HTTP Event Collector REST API endpoints"). */
const EVENT_PATH = '/services/collector/event';
const ACK_PATH = '/services/collector/ack';
const HEALTH_PATH = '/services/collector/health';
/** 408 and 429 ask the client to come back; 5xx (HEC: 503 "Server is busy", code 9) is transient. */
const RETRY_STATUSES = new Set([408, 429]);
/** HEC answers a missing, disabled or invalid token with 401 or 403 (codes 1–4). */
const TOKEN_STATUSES = new Set([401, 403]);
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const TOKEN = /^[^\s\u0000-\u001f\u007f]+$/;

const url = httpUrl({
  expected: 'expected the HEC base URL, e.g. https://splunk.example.com:8088',
  rules: (u) =>
    u.username || u.password || u.search || u.hash
      ? 'give the HEC base URL alone: no credentials, ?query or #fragment (the token goes in token)'
      : /\/services\/collector(\/|$)/.test(u.pathname)
        ? `give the HEC base URL without ${EVENT_PATH}, e.g. ${u.origin}`
        : null,
});

const ms = (def: number, max = 600_000) => z.number().int().min(1).max(max).default(def);

const ackSchema = z.strictObject({
  enabled: z.boolean().default(false),
  poll_interval_ms: ms(1_000, 60_000),
  timeout_ms: ms(60_000, 3_600_000),
});

const splunkHecOptionsShape = {
  url,
  token: z
    .string({ error: 'expected the HEC token (a GUID from Settings › Data inputs › HTTP Event Collector)' })
    .regex(TOKEN, { error: 'the token cannot be empty or contain spaces or control characters' }),
  ack: ackSchema.prefault({}),
  connect_timeout_ms: ms(5_000),
  request_timeout_ms: ms(15_000),
  tls: tlsSchema().optional(),
  allow_private_networks: z.boolean().default(false),
  max_connections: z.number().int().min(1).max(256).default(4),
  /**
   * Overrides the common `format` field (kind options are spread after the
   * common ones): HEC takes only its own envelope, so the format defaults to
   * `splunk_hec` and no other is accepted. `format_options` then set
   * sourcetype, source, index and host.
   */
  format: z
    .literal('splunk_hec', {
      error: 'the splunk_hec sink sends format splunk_hec only; set sourcetype, index… in format_options',
    })
    .default('splunk_hec'),
};

/** The splunk_hec sink's options after validation (defaults applied). */
export type SplunkHecOptions = SinkOptions<typeof splunkHecOptionsShape>;

/** What HEC answers, event and ack endpoints alike (fields as far as we read them). */
interface HecReply {
  text?: string;
  code?: number;
  ackId?: number;
  acks?: Record<string, boolean>;
}

function configError(ctx: SinkContext, message: string): TrailwardenError {
  return new TrailwardenError('TW_ERR_CONFIG', `sink ${ctx.name}: ${message}`);
}

type ResponseBody = Awaited<ReturnType<typeof request>>['body'];

/** Reads a (small) response body; a larger one is cut, which also closes its connection. */
async function readReply(body: ResponseBody): Promise<{ raw: string; reply: HecReply }> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    total += chunk.length;
    if (total > RESPONSE_LIMIT_BYTES) break;
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  try {
    const parsed: unknown = JSON.parse(raw);
    return { raw, reply: parsed !== null && typeof parsed === 'object' ? (parsed as HecReply) : {} };
  } catch {
    return { raw, reply: {} };
  }
}

/** `HTTP 400: Invalid data format (code 6)`, or the raw body quoted when it is not HEC's JSON. */
function describeReply(status: number, raw: string, reply: HecReply): string {
  if (typeof reply.text === 'string') {
    const code = typeof reply.code === 'number' ? ` (code ${reply.code})` : '';
    return `HTTP ${status}: ${snippet(reply.text)}${code}`;
  }
  const text = snippet(raw);
  return text ? `HTTP ${status}: ${text}` : `HTTP ${status}`;
}

/** The outcome of an answer that is not a 2xx. */
function classifyFailure(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  raw: string,
  reply: HecReply,
  now: number,
): DeliveryOutcome {
  const what = describeReply(status, raw, reply);
  // Every batch would be refused the same way: stop until an operator fixes the token.
  if (TOKEN_STATUSES.has(status)) return disable(`token rejected: ${what}`);
  if (status >= 300 && status < 400)
    return permanent(`${what}: redirects are not followed; set url to the HEC base address`);
  if (RETRY_STATUSES.has(status) || status >= 500)
    return retry(what, retryAfterMs(headers['retry-after'], now));
  return permanent(what);
}

function endpoint(base: URL, path: string): URL {
  return new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base);
}

/**
 * Sends batches to Splunk's HTTP Event Collector: the events in the
 * splunk_hec envelope, one after another in one request, authorised with
 * `Authorization: Splunk <token>`. 2xx is delivered (with `ack.enabled`,
 * only once the indexers acknowledged the batch); 401/403 disables the sink
 * (the token was rejected); 408/429/5xx and network errors retry; other 4xx
 * (HEC's 400 "Invalid data format", "Incorrect index", …) are permanent.
 * Connections, TLS and the private-network guard are built as the webhook
 * sink's are, from the shared helpers in `net/`.
 */
export const splunkHecSink = defineSink({
  kind: 'splunk_hec',
  description: 'Splunk HTTP Event Collector, with optional indexer acknowledgement.',
  options: splunkHecOptionsShape,
  secretFields: ['token', 'tls.key'],
  hostOptions: ['allow_private_networks', ...TLS_HOST_OPTIONS],
  retryDefault: 'webhook',
  batchDefault: { max_events: 100, max_bytes: 1_048_576, max_wait_ms: 200 },
  create(options, ctx) {
    if (ctx.format !== 'splunk_hec')
      throw configError(ctx, `the splunk_hec sink needs format splunk_hec, got ${ctx.format}`);
    const base = new URL(options.url);
    if (options.tls && base.protocol !== 'https:') throw configError(ctx, 'tls options need an https:// url');
    const eventUrl = endpoint(base, EVENT_PATH);
    const ackUrl = endpoint(base, ACK_PATH);
    const healthUrl = endpoint(base, HEALTH_PATH);

    const guard = sinkNetworkGuard(options.allow_private_networks, ctx);
    const connect = guard.connector(
      buildConnector({
        ...tlsConnectionOptions(options.tls, ctx, 'splunk_hec'),
        timeout: options.connect_timeout_ms,
        ...(guard.active ? { lookup: guard.lookup } : {}),
      }),
    );
    const agent = new Agent({ connections: options.max_connections, connect });
    // One channel per running sink: HEC keeps ack ids per channel, and load balancers use it for stickiness.
    const channel = randomUUID();
    const headers = {
      authorization: `Splunk ${options.token}`,
      'content-type': 'application/json',
      'user-agent': `trailwarden/${VERSION}`,
      'x-splunk-request-channel': channel,
    };
    let warnedNoAck = false;
    // Ends a healthcheck in flight at close(), which would otherwise wait for it (the agent closes gracefully).
    const closing = new AbortController();

    /** One POST to HEC; a thrown error is a connection-level failure turned into an outcome. */
    async function post(
      target: URL,
      body: string,
      signal: AbortSignal,
    ): Promise<
      | {
          status: number;
          headers: Record<string, string | string[] | undefined>;
          raw: string;
          reply: HecReply;
        }
      | DeliveryOutcome
    > {
      const timeout = AbortSignal.timeout(options.request_timeout_ms);
      try {
        const res = await request(target, {
          dispatcher: agent,
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.any([signal, timeout]),
        });
        const { raw, reply } = await readReply(res.body);
        return { status: res.statusCode, headers: res.headers, raw, reply };
      } catch (err) {
        const forbidden = forbiddenAddressIn(err);
        if (forbidden) return permanent(forbidden.message);
        if (signal.aborted) return retry('delivery aborted: the sink is stopping');
        if (timeout.aborted)
          return retry(`no complete response within request_timeout_ms (${options.request_timeout_ms} ms)`);
        return retry(describeError(err, base.host));
      }
    }

    /**
     * Polls the ack endpoint until the indexers confirm `ackId`. Splunk answers
     * false both for "not yet" and for an id it no longer knows, so only the
     * deadline ends the wait; the batch is then sent again (it may be indexed
     * twice, which HEC's at-least-once model accepts).
     */
    async function waitForAck(ackId: number, signal: AbortSignal): Promise<DeliveryOutcome> {
      const deadline = ctx.now() + options.ack.timeout_ms;
      const body = JSON.stringify({ acks: [ackId] });
      let last = 'not acknowledged yet';
      while (ctx.now() < deadline) {
        try {
          await sleep(options.ack.poll_interval_ms, undefined, { signal });
        } catch {
          return retry('delivery aborted while waiting for the indexer acknowledgement');
        }
        const res = await post(ackUrl, body, signal);
        if ('kind' in res) {
          if (res.kind !== 'retry' || signal.aborted) return res;
          last = res.reason;
          continue;
        }
        if (res.status >= 200 && res.status < 300) {
          if (res.reply.acks?.[String(ackId)] === true) return ok();
          continue;
        }
        if (TOKEN_STATUSES.has(res.status))
          return disable(`token rejected: ${describeReply(res.status, res.raw, res.reply)}`);
        if (res.status >= 400 && res.status < 500 && !RETRY_STATUSES.has(res.status)) {
          return disable(
            `ack endpoint refused: ${describeReply(res.status, res.raw, res.reply)}; enable indexer acknowledgement on the token or set ack.enabled: false`,
          );
        }
        last = describeReply(res.status, res.raw, res.reply);
      }
      return retry(
        `indexer acknowledgement ${ackId} not received within ack.timeout_ms (${options.ack.timeout_ms} ms); last: ${last}`,
      );
    }

    return {
      async deliver(batch: DeliveryBatch, signal) {
        // HEC's batch format: event objects one after another (no array); a newline between them is allowed.
        const payload = `${batch.events.map((e) => e.text).join('\n')}\n`;
        const res = await post(eventUrl, payload, signal);
        if ('kind' in res) return res;
        if (res.status < 200 || res.status >= 300)
          return classifyFailure(res.status, res.headers, res.raw, res.reply, ctx.now());
        if (!options.ack.enabled) return ok();
        const ackId = res.reply.ackId;
        if (typeof ackId !== 'number') {
          // The token has acknowledgement off: the events were received, and sending them again would duplicate them.
          if (!warnedNoAck) {
            warnedNoAck = true;
            ctx.log.warn(
              'splunk_hec: ack.enabled is set but HEC returned no ackId; indexer acknowledgement is off for this token',
              {
                sink: ctx.name,
              },
            );
          }
          return ok();
        }
        return waitForAck(ackId, signal);
      },

      async healthcheck() {
        // HEC's health endpoint needs no token and sends no event.
        try {
          const res = await request(healthUrl, {
            dispatcher: agent,
            method: 'GET',
            headers: { 'user-agent': headers['user-agent'] },
            signal: AbortSignal.any([closing.signal, AbortSignal.timeout(options.request_timeout_ms)]),
          });
          const { raw, reply } = await readReply(res.body);
          const detail = describeReply(res.statusCode, raw, reply);
          return { ok: res.statusCode === 200, detail };
        } catch (err) {
          if (closing.signal.aborted)
            return { ok: false, detail: 'healthcheck aborted: the sink is closing' };
          const forbidden = forbiddenAddressIn(err);
          return { ok: false, detail: forbidden ? forbidden.message : describeError(err, base.host) };
        }
      },

      async close() {
        closing.abort();
        await agent.close();
      },
    };
  },
});

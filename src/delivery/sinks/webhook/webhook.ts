import type { IncomingHttpHeaders } from 'node:http';
import { Socket } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { z } from 'zod';
import { TrailwardenError } from '../../../errors.js';
import { VERSION } from '../../../version.js';
import { formatByName } from '../../formats/registry.js';
import {
  type DeliveryBatch,
  type DeliveryOutcome,
  defineSink,
  disable,
  type HealthcheckResult,
  ok,
  permanent,
  retry,
  type SinkContext,
  type SinkOptions,
} from '../../sink.js';
import { describeError, SNIPPET_CHARS, snippet } from '../net/describe-error.js';
import { httpUrl } from '../net/http-url.js';
import { forbiddenAddressIn, sinkNetworkGuard } from '../net/network-guard.js';
import { retryAfterMs } from '../net/retry-after.js';
import { TLS_HOST_OPTIONS, tlsConnectionOptions, tlsSchema } from '../net/tls-options.js';
import { decodeSecret, signatureHeader, webhookSecretSchema } from './webhook-signature.js';

/** Error bodies up to this size are read to the end so the connection stays reusable. */
const DRAIN_LIMIT_BYTES = 65_536;
/** Formats whose events are JSON values, so they can form an array or be sent alone. */
const JSON_CONTENT_TYPES = new Set(['application/json', 'application/x-ndjson']);
/** 408 and 429 ask the client to come back; every 5xx is treated as transient. */
const RETRY_STATUSES = new Set([408, 429]);

/** Headers a user may not set: hop-by-hop, computed by the HTTP client, or part of the signature scheme. */
const RESERVED_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'content-length',
  'host',
]);
const RESERVED_PREFIXES = ['webhook-', 'x-trailwarden-'];
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const BAD_HEADER_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

const url = httpUrl({
  expected: 'expected an http(s) URL',
  unparsable: 'expected an http(s) URL, e.g. https://siem.example.com/hook',
  rules: (u) =>
    u.username || u.password
      ? 'put credentials in headers (e.g. authorization), not in the URL'
      : u.hash
        ? 'a webhook URL has no #fragment'
        : null,
});

const headers = z
  .record(z.string(), z.string({ error: 'header values must be strings' }))
  .superRefine((value, ctx) => {
    for (const [name, v] of Object.entries(value)) {
      const lower = name.toLowerCase();
      if (!HEADER_NAME.test(name)) {
        ctx.addIssue({ code: 'custom', path: [name], message: `"${name}" is not a valid header name` });
      } else if (RESERVED_HEADERS.has(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `"${name}" is set by Trailwarden and cannot be overridden`,
        });
      } else if (BAD_HEADER_VALUE.test(v)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: 'header values cannot contain control characters',
        });
      }
    }
  });

const ms = (def: number) => z.number().int().min(1).max(600_000).default(def);

const webhookOptionsShape = {
  url,
  method: z.enum(['POST', 'PUT'], { error: 'expected "POST" or "PUT"' }).default('POST'),
  headers: headers.default({}),
  secret: webhookSecretSchema.optional(),
  body: z.enum(['array', 'object', 'lines'], { error: 'expected "array", "object" or "lines"' }).optional(),
  connect_timeout_ms: ms(5_000),
  request_timeout_ms: ms(15_000),
  tls: tlsSchema().optional(),
  allow_private_networks: z.boolean().default(false),
  max_connections: z.number().int().min(1).max(256).default(4),
};

/** The webhook sink's options after validation (defaults applied). */
export type WebhookOptions = SinkOptions<typeof webhookOptionsShape>;

/** How a batch becomes a request body. */
export type WebhookBody = 'array' | 'object' | 'lines';

function configError(ctx: SinkContext, message: string): TrailwardenError {
  return new TrailwardenError('TW_ERR_CONFIG', `sink ${ctx.name}: ${message}`);
}

function userAgent(): string {
  return `trailwarden/${VERSION}`;
}

type ResponseBody = Awaited<ReturnType<typeof request>>['body'];

/** Reads the start of an error body for the reason; drains small bodies so the connection is reused. */
async function readSnippet(body: ResponseBody): Promise<string> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (kept < SNIPPET_CHARS * 4) {
      chunks.push(chunk);
      kept += chunk.length;
    }
    total += chunk.length;
    if (total > DRAIN_LIMIT_BYTES) break; // leaving the loop destroys the body and its connection
  }
  return snippet(Buffer.concat(chunks).toString('utf8'));
}

/** Turns an HTTP response into an outcome, always consuming its body. */
async function classify(
  status: number,
  headers: IncomingHttpHeaders,
  body: ResponseBody,
  now: number,
): Promise<DeliveryOutcome> {
  if (status >= 200 && status < 300) {
    await body.dump({ limit: DRAIN_LIMIT_BYTES });
    return ok();
  }
  const text = await readSnippet(body);
  const quoted = text ? `: ${text}` : '';
  if (status === 410) return disable(`HTTP 410 Gone: the receiver retired this webhook${quoted}`);
  if (status >= 300 && status < 400) {
    const location = headers.location ? ` (Location: ${snippet(String(headers.location))})` : '';
    return permanent(`HTTP ${status}: redirects are not followed; set url to the final address${location}`);
  }
  if (RETRY_STATUSES.has(status) || (status >= 500 && status < 600)) {
    return retry(`HTTP ${status}${quoted}`, retryAfterMs(headers['retry-after'], now));
  }
  return permanent(`HTTP ${status}${quoted}`);
}

function encodeBody(shape: WebhookBody, batch: DeliveryBatch): string {
  const texts = batch.events.map((e) => e.text);
  if (shape === 'object') return texts[0] ?? '';
  if (shape === 'array') return `[${texts.join(',')}]`;
  return `${texts.join('\n')}\n`;
}

/**
 * Posts batches to an HTTP(S) endpoint, signed with Standard Webhooks headers.
 * The response decides the outcome: 2xx ok, 408/429/5xx and network errors
 * retry (honouring Retry-After), 410 disables the sink, 3xx and other 4xx are
 * permanent. Connections are kept alive and shared; addresses in private
 * ranges are refused unless `allow_private_networks` is set (never for a
 * tenant-bound admin's sink).
 */
export const webhookSink = defineSink({
  kind: 'webhook',
  description: 'HTTP(S) POST of event batches, signed with Standard Webhooks headers.',
  options: webhookOptionsShape,
  secretFields: ['secret', 'headers', 'tls.key'],
  hostOptions: ['allow_private_networks', ...TLS_HOST_OPTIONS],
  retryDefault: 'webhook',
  batchDefault: { max_events: 100, max_bytes: 1_048_576, max_wait_ms: 200 },
  batchCap: (options) => (options.body === 'object' ? { max_events: 1 } : {}),
  create(options, ctx) {
    const format = formatByName(ctx.format);
    const isJson = JSON_CONTENT_TYPES.has(format.contentType);
    const shape: WebhookBody = options.body ?? (format.name === 'json' ? 'array' : 'lines');
    if (shape !== 'lines' && !isJson) {
      throw configError(
        ctx,
        `body "${shape}" needs a JSON format; with format ${format.name} use body: lines`,
      );
    }
    const contentType =
      shape !== 'lines' ? 'application/json' : isJson ? 'application/x-ndjson' : format.contentType;

    const target = new URL(options.url);
    if (options.tls && target.protocol !== 'https:')
      throw configError(ctx, 'tls options need an https:// url');
    const secrets = options.secret === undefined ? [] : [options.secret].flat();
    const keys = secrets.map((s) => {
      const key = decodeSecret(s);
      if (typeof key === 'string') throw configError(ctx, `secret: ${key}`);
      return key;
    });

    const guard = sinkNetworkGuard(options.allow_private_networks, ctx);
    const connect = guard.connector(
      buildConnector({
        ...tlsConnectionOptions(options.tls, ctx, 'webhook'),
        timeout: options.connect_timeout_ms,
        ...(guard.active ? { lookup: guard.lookup } : {}),
      }),
    );
    const agent = new Agent({ connections: options.max_connections, connect });
    const fixedHeaders: Record<string, string> = { 'content-type': contentType, 'user-agent': userAgent() };
    for (const [name, value] of Object.entries(options.headers)) fixedHeaders[name.toLowerCase()] = value;
    /** Healthchecks in flight, each with what ends it (close() ends them all). */
    const probes = new Set<() => void>();

    return {
      async deliver(batch, signal) {
        if (shape === 'object' && batch.events.length !== 1) {
          return permanent(
            `body: object sends one event per request, got ${batch.events.length}; set batch.max_events: 1`,
          );
        }
        const payload = encodeBody(shape, batch);
        const timestamp = Math.floor(ctx.now() / 1000);
        const headers: Record<string, string> = {
          ...fixedHeaders,
          'webhook-id': batch.id,
          'webhook-timestamp': String(timestamp),
          'x-trailwarden-seq-first': String(batch.firstSeq),
          'x-trailwarden-seq-last': String(batch.lastSeq),
          'x-trailwarden-attempt': String(batch.attempt),
        };
        if (keys.length > 0)
          headers['webhook-signature'] = signatureHeader(keys, batch.id, timestamp, payload);

        const timeout = AbortSignal.timeout(options.request_timeout_ms);
        try {
          const res = await request(target, {
            dispatcher: agent,
            method: options.method,
            headers,
            body: payload,
            signal: AbortSignal.any([signal, timeout]),
          });
          return await classify(res.statusCode, res.headers, res.body, ctx.now());
        } catch (err) {
          const forbidden = forbiddenAddressIn(err);
          if (forbidden) return permanent(forbidden.message);
          if (signal.aborted) return retry('delivery aborted: the sink is stopping');
          if (timeout.aborted)
            return retry(`no complete response within request_timeout_ms (${options.request_timeout_ms} ms)`);
          return retry(describeError(err, target.host));
        }
      },

      healthcheck() {
        // Resolve and connect (TLS handshake included), then hang up: no request, no event.
        return new Promise((resolve) => {
          const opts = {
            hostname: target.hostname,
            host: target.host,
            protocol: target.protocol,
            port: target.port,
          };
          const settle = (result: HealthcheckResult) => {
            probes.delete(end);
            resolve(result);
          };
          const end = () => {
            if (socket instanceof Socket) socket.destroy();
            settle({ ok: false, detail: 'healthcheck aborted: the sink is closing' });
          };
          probes.add(end);
          const socket: unknown = connect(opts, (err, connected) => {
            if (!probes.has(end)) {
              connected?.destroy();
              return;
            }
            if (err) {
              const forbidden = forbiddenAddressIn(err);
              settle({ ok: false, detail: forbidden ? forbidden.message : describeError(err, target.host) });
              return;
            }
            connected?.destroy();
            settle({ ok: true, detail: `connected to ${target.host}` });
          });
        });
      },

      async close() {
        for (const end of [...probes]) end();
        await agent.close();
      },
    };
  },
});

import { hostname } from 'node:os';
import { z } from 'zod';
import { TrailwardenError } from '../../../errors.js';
import { defineSink, ok, permanent, retry, type SinkContext, type SinkOptions } from '../../sink.js';
import { forbiddenAddressIn, sinkNetworkGuard } from '../net/network-guard.js';
import { TLS_HOST_OPTIONS, tlsConnectionOptions, tlsSchema } from '../net/tls-options.js';
import { buildMessage, datagram, frameText, type SyslogMessageOptions } from './syslog-message.js';
import { createTransport, SyslogTransportError } from './syslog-transport.js';

/** RFC 5612 reserves 32473 for documentation; operators put their own PEN here. */
const EXAMPLE_PEN = 32473;
/** 1500-byte Ethernet MTU minus IPv4 and UDP headers: a datagram that is never fragmented. */
const SAFE_DATAGRAM_BYTES = 1472;
/** The largest UDP payload over IPv4. */
const MAX_DATAGRAM_BYTES = 65_507;
/** RFC 5426 §3.2: every receiver accepts 480 bytes. */
const MIN_DATAGRAM_BYTES = 480;

const syslogOptionsShape = {
  host: z.string({ error: 'expected the collector host name or address' }).min(1),
  /** Default 514 for udp and tcp, 6514 for tls. */
  port: z.number().int().min(1).max(65_535).optional(),
  protocol: z.enum(['udp', 'tcp', 'tls'], { error: 'expected "udp", "tcp" or "tls"' }).default('tcp'),
  /** TCP/TLS only; default octet-counting (RFC 6587 §3.4.1). */
  framing: z
    .enum(['octet-counting', 'newline'], { error: 'expected "octet-counting" or "newline"' })
    .default('octet-counting'),
  rfc: z.enum(['5424', '3164'], { error: 'expected "5424" or "3164"' }).default('5424'),
  facility: z.number().int().min(0).max(23).default(13),
  hostname: z.string().min(1).optional(),
  app_name: z.string().min(1).default('trailwarden'),
  enterprise_id: z.number().int().min(1).max(4_294_967_295).default(EXAMPLE_PEN),
  tls: tlsSchema().optional(),
  /**
   * Collectors usually live on the internal network, so the operator's syslog
   * sinks may reach private addresses unless this is false; a tenant-bound
   * admin's never do.
   */
  allow_private_networks: z.boolean().default(true),
  connect_timeout_ms: z.number().int().min(1).max(600_000).default(5_000),
  udp_max_bytes: z
    .number()
    .int()
    .min(MIN_DATAGRAM_BYTES)
    .max(MAX_DATAGRAM_BYTES)
    .default(SAFE_DATAGRAM_BYTES),
};

/** The syslog sink's options after validation (defaults applied). */
export type SyslogOptions = SinkOptions<typeof syslogOptionsShape>;

function configError(ctx: SinkContext, message: string): TrailwardenError {
  return new TrailwardenError('TW_ERR_CONFIG', `sink ${ctx.name}: ${message}`);
}

/**
 * Sends events to a syslog collector (rsyslog, syslog-ng, a SIEM's syslog
 * input) as RFC 5424 messages (or legacy RFC 3164) over UDP, TCP or TLS. On a
 * stream a batch is one write of concatenated frames and is confirmed once it
 * was handed to an open connection; over UDP, once every datagram was sent.
 * Any failure is a `retry` (the streaming schedule backs off and never gives
 * up), but a target the network guard refuses, which no retry can change.
 */
export const syslogSink = defineSink({
  kind: 'syslog',
  description: 'RFC 5424 (or RFC 3164) syslog messages over UDP, TCP or TLS.',
  options: syslogOptionsShape,
  secretFields: ['tls.key'],
  hostOptions: ['allow_private_networks', ...TLS_HOST_OPTIONS],
  retryDefault: 'streaming',
  batchDefault: { max_events: 1000, max_bytes: 1_048_576, max_wait_ms: 0 },
  create(options, ctx) {
    if (options.tls && options.protocol !== 'tls') throw configError(ctx, 'tls options need protocol: tls');
    const stream = options.protocol !== 'udp';
    const message: SyslogMessageOptions = {
      rfc: options.rfc,
      facility: options.facility,
      hostname: options.hostname ?? hostname(),
      appName: options.app_name,
      enterpriseId: options.enterprise_id,
      singleLine: stream && options.framing === 'newline',
      now: ctx.now,
    };
    const port = options.port ?? (options.protocol === 'tls' ? 6514 : 514);
    const transport = createTransport({
      protocol: options.protocol,
      host: options.host,
      port,
      connectTimeoutMs: options.connect_timeout_ms,
      guard: sinkNetworkGuard(options.allow_private_networks, ctx),
      ...(options.protocol === 'tls' ? { tls: tlsConnectionOptions(options.tls, ctx, 'syslog') } : {}),
    });
    const where = `${options.protocol}://${options.host}:${port}`;

    return {
      async deliver(batch, signal) {
        // A stream batch becomes one string and one buffer: far less allocation than a buffer per frame.
        const payload = stream
          ? [
              Buffer.from(
                batch.events.map((e) => frameText(buildMessage(e, message), options.framing)).join(''),
                'utf8',
              ),
            ]
          : batch.events.map((e) => datagram(e, message, options.udp_max_bytes));
        try {
          await transport.send(payload, signal);
          return ok();
        } catch (err) {
          if (signal.aborted) return retry('delivery aborted: the sink is stopping');
          const forbidden = forbiddenAddressIn(err);
          if (forbidden) return permanent(forbidden.message);
          const reason =
            err instanceof SyslogTransportError ? err.message : `cannot send to ${where}: ${err}`;
          return retry(reason);
        }
      },

      async healthcheck() {
        try {
          await transport.probe();
          return { ok: true, detail: stream ? `connected to ${where}` : `resolved ${options.host}` };
        } catch (err) {
          return { ok: false, detail: (err as Error).message };
        }
      },

      close: () => transport.close(),
    };
  },
});

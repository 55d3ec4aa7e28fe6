import { isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { emitSchema, SINK_NAME_PATTERN, sinkConfigSchema } from '../delivery/sink-config.js';
import { cidrProblem } from '../delivery/sinks/net/network-guard.js';

/**
 * The config file's schema (docs/configuration.md documents every field).
 * Every object is strict, so a misspelt key is an error rather than a setting
 * silently ignored. Messages are written to follow the field's path, as in
 * `limits.max_event_bytes: must be an integer between 1024 and 1048576`.
 */

/** Log levels, as pino names them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Store backends that exist today: `sqlite`, or PostgreSQL named by its `postgres://` URL. */
export const STORE_KINDS = ['sqlite', 'postgres'] as const;

/** A PostgreSQL connection URL as `store` takes it. */
export const POSTGRES_URL_PATTERN = /^postgres(ql)?:\/\//;

/** Largest `pool_size` a `postgres://` store URL may ask for. */
export const MAX_POSTGRES_POOL_SIZE = 1000;

function intBetween(min: number, max: number) {
  const error = `must be an integer between ${min} and ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

const KIB = 1024;
const MIB = 1024 * KIB;
const SECOND_MS = 1000;
const DAY_MS = 86_400_000;

/** `HOST:PORT`, `[IPv6]:PORT`; the port may be 0 (any free port, for tests). */
const LISTEN_PATTERN = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** Splits a validated `listen` value into the host and port `net.Server#listen` takes. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = LISTEN_PATTERN.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`listen: expected HOST:PORT, got "${listen}"`);
  return { host: m[1] ?? m[2] ?? '', port };
}

const listenSchema = z.string({ error: 'expected HOST:PORT, e.g. "127.0.0.1:8080"' }).refine(
  (v) => {
    try {
      parseListen(v);
      return true;
    } catch {
      return false;
    }
  },
  { error: 'expected HOST:PORT with a port from 0 to 65535, e.g. "127.0.0.1:8080" or "[::1]:8080"' },
);

/**
 * `sqlite`, or a `postgres://` (`postgresql://`) URL; the URL may carry
 * `pool_size=N` (connections per node, default 10) beside libpq's parameters.
 */
const storeSchema = z
  .string({ error: (iss) => `expected "sqlite" or a postgres:// URL, got ${JSON.stringify(iss.input)}` })
  .superRefine((v, ctx) => {
    if (v === 'sqlite') return;
    if (!POSTGRES_URL_PATTERN.test(v)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected "sqlite" or a postgres:// URL, got ${JSON.stringify(v)}`,
      });
      return;
    }
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not a valid postgres:// URL' });
      return;
    }
    const pool = url.searchParams.get('pool_size');
    if (
      pool !== null &&
      !(/^\d+$/.test(pool) && Number(pool) >= 1 && Number(pool) <= MAX_POSTGRES_POOL_SIZE)
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `pool_size in the postgres:// URL must be an integer between 1 and ${MAX_POSTGRES_POOL_SIZE}`,
      });
    }
  });

const nonEmpty = (what: string) =>
  z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}, got an empty string` });

const limitsSchema = z
  .strictObject({
    max_event_bytes: intBetween(1 * KIB, 1 * MIB).default(32 * KIB),
    max_batch_events: intBetween(1, 10_000).default(1000),
    max_body_bytes: intBetween(1 * KIB, 100 * MIB).default(5 * MIB),
    max_metadata_depth: intBetween(1, 32).default(8),
    max_metadata_keys: intBetween(1, 10_000).default(256),
    max_string_length: intBetween(16, 65_536).default(1024),
    max_text_length: intBetween(16, 1 * MIB).default(8192),
    max_array_length: intBetween(1, 10_000).default(256),
    max_clock_skew_ms: intBetween(0, DAY_MS).default(300_000),
    /** `null`: events of any age are accepted. */
    max_event_age_ms: intBetween(SECOND_MS, 3650 * DAY_MS)
      .nullable()
      .default(null),
    max_page_size: intBetween(1, 10_000).default(1000),
    /**
     * Bytes of request bodies (as their Content-Length declares; a chunked
     * body counts as `max_body_bytes`) the server receives at once; a request
     * past it is refused with a 503 before its body is read.
     */
    max_inflight_body_bytes: intBetween(1 * KIB, 4096 * MIB).default(64 * MIB),
    /** From a request's first byte to the end of its headers. */
    headers_timeout_ms: intBetween(100, 600 * SECOND_MS).default(10 * SECOND_MS),
    /** From a request's first byte to the end of its body. */
    request_timeout_ms: intBetween(100, 3600 * SECOND_MS).default(60 * SECOND_MS),
    /** How long a kept-alive connection may wait for its next request. */
    keep_alive_timeout_ms: intBetween(100, 3600 * SECOND_MS).default(72 * SECOND_MS),
    /** How long a connection may go without a byte sent or received while a request is open. */
    idle_timeout_ms: intBetween(1 * SECOND_MS, 3600 * SECOND_MS).default(300 * SECOND_MS),
  })
  .superRefine((l, ctx) => {
    if (l.max_body_bytes < l.max_event_bytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['max_body_bytes'],
        message: `must be at least limits.max_event_bytes (${l.max_event_bytes}), or no event could be sent`,
      });
    }
    if (l.max_inflight_body_bytes < l.max_body_bytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['max_inflight_body_bytes'],
        message: `must be at least limits.max_body_bytes (${l.max_body_bytes}), or a body of the largest size could never be received`,
      });
    }
    if (l.headers_timeout_ms > l.request_timeout_ms) {
      ctx.addIssue({
        code: 'custom',
        path: ['headers_timeout_ms'],
        message: `must be at most limits.request_timeout_ms (${l.request_timeout_ms}): the headers are part of the request`,
      });
    }
  });

const checkpointsSchema = z.strictObject({
  every_events: intBetween(1, 1_000_000).default(1000),
  every_ms: intBetween(100, DAY_MS).default(10_000),
  /** `null`: derived on first start and kept in the store. */
  origin: nonEmpty('a log origin line')
    .refine((v) => !/[\r\n]/.test(v), { error: 'must be a single line' })
    .nullable()
    .default(null),
  key_file: nonEmpty('a file path').nullable().default(null),
  key_name: nonEmpty('a key name')
    .refine((v) => !/[\s+]/.test(v), { error: 'must not contain spaces or "+" (C2SP signed-note key name)' })
    .nullable()
    .default(null),
});

const clusterSchema = z.strictObject({
  /**
   * How long the sequencer lease and each sink's delivery lease last without
   * renewal: when a node dies, its work moves to another node within this.
   */
  lease_ms: intBetween(1 * SECOND_MS, 300 * SECOND_MS).default(10_000),
  /** This node's name in leases and /readyz; `null`: host name, process id and a random suffix. */
  node_id: nonEmpty('a node name').max(128, { error: 'at most 128 characters' }).nullable().default(null),
  /**
   * Flow control: while more events than this, acknowledged by nodes that
   * are not the sequencer, wait for it, those nodes hold new appends.
   */
  max_pending_events: intBetween(100, 1_000_000).default(5000),
  /** How long a held append waits for room before it is refused with a 503 and Retry-After. */
  pending_wait_ms: intBetween(0, 300 * SECOND_MS).default(10_000),
});

const secretsSchema = z.strictObject({
  /**
   * File of the keys that encrypt the secrets of sinks created through the
   * API (one base64 key per line, the first current); else
   * `TRAILWARDEN_SECRETS_KEY`; else, with SQLite, a key made in the data
   * folder. `null`: not from a file.
   */
  key_file: nonEmpty('a file path').nullable().default(null),
});

/** The longest retention period: 100 years (as the API allows). */
const MAX_RETENTION_DAYS = 36_500;
const MINUTE_MS = 60 * SECOND_MS;

/** A dot path into an event's `metadata` that an erasure removes, e.g. `metadata.phone`. */
const METADATA_PATH = /^metadata(\.[A-Za-z0-9_-]{1,128}){1,8}$/;

const retentionSchema = z
  .strictObject({
    /** Days events are kept unless a tenant has its own period; `null`: kept forever. */
    default_days: intBetween(1, MAX_RETENTION_DAYS).nullable().default(null),
    /** The shortest period anyone may set (the default or through the API). */
    minimum_days: intBetween(1, MAX_RETENTION_DAYS).default(1),
    /** How often the pruner runs. */
    prune_interval_ms: intBetween(MINUTE_MS, 7 * DAY_MS).default(60 * MINUTE_MS),
    /** Sinks that must have confirmed an event before it is pruned. */
    prune_after_delivered: z
      .array(
        z
          .string({ error: 'expected a sink name' })
          .regex(SINK_NAME_PATTERN, { error: 'expected a sink name' }),
      )
      .max(100, { error: 'at most 100 sinks' })
      .default([]),
    /** Events the pruner decides on and prunes per transaction. */
    chunk_events: intBetween(100, 50_000).default(500),
    /** While events are being appended, the share of the writer's time the pruner may take. */
    busy_share_percent: intBetween(1, 100).default(5),
    erasure: z
      .strictObject({
        /** Fields of `metadata` an erasure removes beside the fixed personal fields. */
        metadata_paths: z
          .array(
            z.string({ error: 'expected a dot path such as metadata.phone' }).regex(METADATA_PATH, {
              error:
                'expected a dot path into metadata such as metadata.phone (letters, digits, _ and -; up to 8 levels)',
            }),
          )
          .max(64, { error: 'at most 64 paths' })
          .default([]),
      })
      .prefault({}),
  })
  .superRefine((r, ctx) => {
    if (r.default_days !== null && r.default_days < r.minimum_days) {
      ctx.addIssue({
        code: 'custom',
        path: ['default_days'],
        message: `must be at least retention.minimum_days (${r.minimum_days})`,
      });
    }
  });

const streamSchema = z.strictObject({
  heartbeat_ms: intBetween(1 * SECOND_MS, 300 * SECOND_MS).default(15_000),
  max_buffered_bytes: intBetween(64 * KIB, 100 * MIB).default(1 * MIB),
});

/** Whether `a` is `b` or lies below it (both absolute). */
function within(a: string, b: string): boolean {
  const rel = relative(b, a);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * `file_sink_root`: the only folder file sinks created through the API may
 * write under (`null`: none may), and where a config-file sink's relative
 * `path` is taken from. Absolute; apart from `data_dir` (checked below).
 */
const fileSinkRootSchema = nonEmpty('an absolute folder path')
  .refine((v) => isAbsolute(v), {
    error: 'must be an absolute path, e.g. "/var/log/trailwarden/sinks"',
  })
  .nullable()
  .default(null);

/** The file as written, with defaults filled in. `prefault` runs the defaults of nested objects too. */
export const fileConfigSchema = z
  .strictObject({
    listen: listenSchema.default('127.0.0.1:8080'),
    data_dir: nonEmpty('a directory path').default('./data'),
    file_sink_root: fileSinkRootSchema,
    store: storeSchema.default('sqlite'),
    default_tenant: nonEmpty('a tenant id').default('default'),
    strict_actions: z.boolean({ error: 'expected true or false' }).default(false),
    audit_reads: z.boolean({ error: 'expected true or false' }).default(true),
    limits: limitsSchema.prefault({}),
    checkpoints: checkpointsSchema.prefault({}),
    stream: streamSchema.prefault({}),
    cluster: clusterSchema.prefault({}),
    log_level: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    sinks: z.array(sinkConfigSchema).max(100, { error: 'at most 100 sinks' }).default([]),
    /** Seed 003's emitToAllOf / emitAtLeastOneOf / emitTimeoutInSec; null = answer on commit. */
    emit: emitSchema.nullable().default(null),
    secrets: secretsSchema.prefault({}),
    retention: retentionSchema.prefault({}),
    /**
     * Private networks (CIDRs) that sinks held to public addresses — every
     * tenant-bound admin's sink, and sinks without allow_private_networks —
     * may still reach, e.g. an egress proxy.
     */
    allowed_private_networks: z
      .array(
        z.string().superRefine((v, ctx) => {
          const problem = cidrProblem(v);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
      )
      .max(100, { error: 'at most 100 networks' })
      .default([]),
  })
  .superRefine((c, ctx) => {
    if (c.file_sink_root !== null) {
      // Lexical, at load; the engine checks the real paths (symbolic links) again before a sink writes.
      const root = resolve(c.file_sink_root);
      const dataDir = resolve(c.data_dir);
      if (within(root, dataDir) || within(dataDir, root)) {
        ctx.addIssue({
          code: 'custom',
          path: ['file_sink_root'],
          message:
            `${root} ${within(root, dataDir) ? 'is inside' : 'contains'} data_dir (${dataDir}), ` +
            'where the log, its WAL and the signing key live; choose a folder apart from it',
        });
      }
    }
    const names = new Set<string>();
    c.sinks.forEach((sink, i) => {
      const name = sink.name;
      if (names.has(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['sinks', i, 'name'],
          message: `${name} is used by another sink`,
        });
      }
      names.add(name);
    });
    // A connection with nothing moving on it for idle_timeout_ms is closed: every
    // wait the server makes a client sit through in silence must be shorter.
    const idle = c.limits.idle_timeout_ms;
    const waits = [
      { path: ['stream', 'heartbeat_ms'], ms: c.stream.heartbeat_ms, why: 'an idle stream would be closed' },
      {
        path: ['cluster', 'pending_wait_ms'],
        ms: c.cluster.pending_wait_ms,
        why: 'a held append would be closed before its answer',
      },
      ...(c.emit
        ? [
            {
              path: ['emit', 'timeout_ms'],
              ms: c.emit.timeout_ms,
              why: 'a producer waiting for the emit policy would be closed before its answer',
            },
          ]
        : []),
    ];
    for (const { path, ms, why } of waits) {
      if (ms >= idle) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `must be less than limits.idle_timeout_ms (${idle}), or ${why}; lower it or raise limits.idle_timeout_ms`,
        });
      }
    }
    if (c.emit) {
      for (const key of ['to_all_of', 'at_least_one_of'] as const) {
        c.emit[key].forEach((name, i) => {
          if (!names.has(name)) {
            ctx.addIssue({
              code: 'custom',
              path: ['emit', key, i],
              message: `no sink named ${name} in sinks`,
            });
          }
        });
      }
    }
  });

export type FileConfig = z.output<typeof fileConfigSchema>;

/**
 * Trailwarden's configuration after loading: the file, environment overrides
 * and CLI flags merged, validated, defaults filled in.
 */
export type Config = Omit<FileConfig, 'checkpoints'> & {
  checkpoints: FileConfig['checkpoints'] & {
    /** Ed25519 private key (PEM) from `TRAILWARDEN_SIGNING_KEY`; never read from the file. */
    key_pem: string | null;
  };
};

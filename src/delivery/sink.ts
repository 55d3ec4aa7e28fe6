import { z } from 'zod';

/**
 * What one delivery attempt came to. The worker acts on it: `ok` moves the
 * sink's cursor, `retry` waits (honouring `afterMs`, e.g. Retry-After) and
 * tries the same delivery again, `permanent` parks the events in the
 * dead-letter list and goes on, `disable` stops the sink until an operator
 * resumes it (e.g. HTTP 410 Gone).
 */
export type DeliveryOutcome =
  | { kind: 'ok' }
  | {
      kind: 'retry';
      reason: string;
      afterMs?: number;
      /**
       * The peer refused the sink's settings (a bucket missing, access
       * denied, bad credentials): retried, and never parked however long it
       * lasts, but the sink is `failing` at once with its alert, as after a
       * refusal for good, since only the operator can mend it.
       */
      refused?: true;
    }
  | {
      kind: 'permanent';
      reason: string;
      /**
       * Only these events (seqs of the batch) failed for good; the others
       * were delivered. The worker parks just them, instead of sending the
       * batch again one event at a time (which would deliver the others
       * twice).
       */
      seqs?: number[];
    }
  | { kind: 'disable'; reason: string };

export const ok = (): DeliveryOutcome => ({ kind: 'ok' });
export const retry = (reason: string, afterMs?: number): DeliveryOutcome =>
  afterMs === undefined ? { kind: 'retry', reason } : { kind: 'retry', reason, afterMs };
/** A retry of settings the peer refused: see `refused` on {@link DeliveryOutcome}. */
export const refusedRetry = (reason: string, afterMs?: number): DeliveryOutcome =>
  afterMs === undefined
    ? { kind: 'retry', reason, refused: true }
    : { kind: 'retry', reason, afterMs, refused: true };
export const permanent = (reason: string, seqs?: number[]): DeliveryOutcome =>
  seqs === undefined ? { kind: 'permanent', reason } : { kind: 'permanent', reason, seqs };
export const disable = (reason: string): DeliveryOutcome => ({ kind: 'disable', reason });

/** One event on its way out: filtered, shaped and encoded for this sink. */
export interface OutgoingEvent {
  seq: number;
  eventId: string;
  tenantId: string;
  action: string;
  /**
   * The event after projection and redaction. May be parsed from `text` on
   * first read (a JSON sink without shaping sends the stored text as it is),
   * so a sink that needs only the text should not touch it.
   */
  readonly event: Record<string, unknown>;
  /** The event encoded with the sink's format (one line for line formats, no trailing newline). */
  text: string;
  /**
   * For an unshaped event, the fields a message header needs, read from the
   * log's columns, so a sink can build its header without parsing `event`.
   */
  header?: { timestamp: string; outcome: string; actorId: string; resourceId: string | null };
  /** The stored event's `received_at`, whatever the shape left of it (an archive partitions by it). */
  receivedAt: string;
  /** The stored event's `timestamp`, whatever the shape left of it. */
  timestamp: string;
}

/** What a sink is asked to deliver in one attempt. */
export interface DeliveryBatch {
  /**
   * Stable id of this delivery: the same for every retry of the same events,
   * also after a restart (the worker persists the in-flight range), so a
   * receiver can drop duplicates (Standard Webhooks `webhook-id`).
   */
  id: string;
  /** 1-based attempt number of this delivery. */
  attempt: number;
  /** Range of the log this delivery covers (events filtered out included). */
  firstSeq: number;
  lastSeq: number;
  /** Never empty. */
  events: OutgoingEvent[];
  /**
   * Set when this delivery is a signed checkpoint (`send_checkpoints`): its
   * one event is the checkpoint record, and a sink that keeps checkpoints as
   * such (an archive writes the note as an object of its own) reads them
   * here rather than from the record's fields. Other sinks send the record.
   */
  checkpoint?: { treeSize: number; note: string };
}

/** How many events the worker packs into one delivery. */
export interface BatchLimits {
  max_events: number;
  max_bytes: number;
  /** How long to wait for more events before sending a partial batch. */
  max_wait_ms: number;
}

/** What a healthcheck found: whether the sink could deliver now, and what it saw (never a secret). */
export interface HealthcheckResult {
  ok: boolean;
  /** What was tried and what came of it, e.g. `connected to siem.example.com` or the connection error. */
  detail: string;
}

/** A running sink: delivers batches and confirms only once the peer has them. */
export interface Sink {
  deliver(batch: DeliveryBatch, signal: AbortSignal): Promise<DeliveryOutcome>;
  /**
   * A cheap check that the peer (or the file system, the stream) would take
   * a delivery now: a connection or TLS handshake, a health endpoint, a
   * writable check. It sends no event and is no delivery attempt. The worker
   * probes with it while it waits out a long retry delay, and retries at once
   * when a peer the probe had found unreachable answers again
   * (retry-wait.ts); the status shows the last result. It must settle within
   * the kind's own timeouts, and report a failure as `ok: false` rather than
   * throw (a throw is taken as one). `close()` ends one in progress.
   */
  healthcheck(): Promise<HealthcheckResult>;
  close(): Promise<void>;
}

/**
 * Who defined a sink: the operator's config file, or the admin API — by an
 * all-tenant admin (`tenantId: null`) or a tenant-bound one, whose sinks
 * never reach the host or private networks.
 */
export interface SinkOwner {
  source: 'config' | 'api';
  tenantId: string | null;
}

/** What a sink factory gets besides its options. */
export interface SinkContext {
  name: string;
  owner: SinkOwner;
  /** The sink's output format (from the formats table). */
  format: string;
  dataDir: string;
  /**
   * Private networks (CIDRs, the operator's `allowed_private_networks`) that
   * sinks held to public addresses may still reach.
   */
  allowedPrivateNetworks: readonly string[];
  /** `file_sink_root`: the only folder API-created file sinks may write under (`null`: none may). */
  fileRoot: string | null;
  /** Milliseconds since the epoch; tests replace it to control rotation. */
  now: () => number;
  log: { info(msg: string, extra?: object): void; warn(msg: string, extra?: object): void };
}

/** Where a sink would act, for {@link SinkDefinition.placementProblems}: the same facts its context gets. */
export type SinkPlacement = { owner: SinkContext['owner']; fileRoot: string | null; dataDir: string };

/** Which retry schedule a kind uses unless its config says otherwise. */
export type RetryDefault = 'webhook' | 'streaming';

/** A kind's own options as its schema leaves them (defaults filled in). */
export type SinkOptions<Shape extends z.ZodRawShape> = z.output<z.ZodObject<Shape>>;

/** A sink's settings as validated: the common fields and the kind's own options, side by side. */
export type SinkSettings = Readonly<Record<string, unknown>>;

/** What a kind of sink declares about itself, apart from what it does. */
interface SinkKindFacts<Shape extends z.ZodRawShape> {
  kind: string;
  description: string;
  /** Zod shape of the kind-specific options (flat, beside the common fields). */
  options: Shape;
  /**
   * Options whose values are secrets (dotted paths, e.g. `tls.key`; an object
   * such as `headers` is secret in every value): never returned by the API or
   * logged, and encrypted when stored.
   */
  secretFields: readonly string[];
  /** The kind writes on the server's host (a file, the process's stdout): never for tenant-bound admins. */
  hostOnly?: boolean;
  /**
   * Options that reach the host or its private networks (dotted paths such as
   * `allow_private_networks` or `tls.ca_file`): a tenant-bound admin may not
   * set them.
   */
  hostOptions?: readonly string[];
  retryDefault: RetryDefault;
  batchDefault: BatchLimits;
  /** The highest batch limits the kind accepts (default {@link BATCH_MAX}). */
  batchMax?: BatchLimits;
  /** Whether `send_checkpoints` is on unless the config says otherwise (default false). */
  sendCheckpointsDefault?: boolean;
}

/** The highest batch limits a kind accepts unless it declares its own `batchMax`. */
export const BATCH_MAX: BatchLimits = {
  max_events: 10_000,
  max_bytes: 64 * 1024 * 1024,
  max_wait_ms: 60_000,
};

/** What {@link SinkKind.settingsProblems} sees of a sink's common settings besides the kind's options. */
export interface CommonSettings {
  format: string;
  /** `filter.tenants`: the only tenants whose events the sink gets (`null`: every tenant). */
  tenants: readonly string[] | null;
}

/**
 * A kind of sink as its module writes it: its options schema, and what it
 * does with options of exactly that shape. {@link defineSink} makes it the
 * {@link SinkDefinition} listed in `sinks/registry.ts`.
 */
export interface SinkKind<Shape extends z.ZodRawShape> extends SinkKindFacts<Shape> {
  /** Limits the kind's options impose on batching (e.g. one event per request). */
  batchCap?(options: SinkOptions<Shape>): Partial<BatchLimits>;
  /**
   * What is wrong with where the sink would act (a file sink's path outside
   * `file_sink_root`, inside the data folder, through a symbolic link …). The
   * engine asks before a sink is stored or started: problems refuse an API
   * change (422 `TW_ERR_INVALID_SINK`) or the start with the config file
   * (`TW_ERR_CONFIG`). `path` names the option.
   */
  placementProblems?(
    options: SinkOptions<Shape>,
    placement: SinkPlacement,
  ): Array<{ path: string; message: string }>;
  /**
   * What is wrong with the kind's options given the sink's common settings
   * (an archive's key template that can put two tenants in one key when
   * the filter lets several through). Checked with the schema, so problems
   * refuse an API change (422 `TW_ERR_INVALID_SINK`) or the config file
   * (`TW_ERR_CONFIG`). `path` names the option.
   */
  settingsProblems?(
    options: SinkOptions<Shape>,
    common: CommonSettings,
  ): Array<{ path: string; message: string }>;
  create(options: SinkOptions<Shape>, ctx: SinkContext): Sink | Promise<Sink>;
}

/**
 * A kind of sink as the engine and the registry see it, whatever its
 * options: each method takes a sink's validated settings and reads the
 * kind's own options from them with the kind's schema (see
 * {@link SinkKind} for what each method means).
 */
export interface SinkDefinition extends SinkKindFacts<z.ZodRawShape> {
  batchCap?(settings: SinkSettings): Partial<BatchLimits>;
  placementProblems?(
    settings: SinkSettings,
    placement: SinkPlacement,
  ): Array<{ path: string; message: string }>;
  settingsProblems?(settings: SinkSettings): Array<{ path: string; message: string }>;
  create(settings: SinkSettings, ctx: SinkContext): Sink | Promise<Sink>;
}

const commonSettingsSchema = z.object({
  format: z.string(),
  filter: z.object({ tenants: z.array(z.string()).nullable() }),
});

/** The common settings {@link SinkKind.settingsProblems} sees, read from a sink's validated settings. */
export function commonSettingsOf(settings: SinkSettings): CommonSettings {
  const common = commonSettingsSchema.parse(settings);
  return { format: common.format, tenants: common.filter.tenants };
}

/**
 * Registers a kind's typed methods behind the registry's common signature.
 * Each call reads the kind's options out of the settings with its own schema
 * (the settings were validated with that schema, so this only narrows their
 * type, at the cost of one parse when a sink is checked or started), so no
 * cast stands between a sink's settings and the options its kind expects.
 */
export function defineSink<Shape extends z.ZodRawShape>(kind: SinkKind<Shape>): SinkDefinition {
  const schema = z.object(kind.options);
  const optionsOf = (settings: SinkSettings): SinkOptions<Shape> => schema.parse(settings);
  const { batchCap, placementProblems, settingsProblems, create, ...facts } = kind;
  return {
    ...facts,
    ...(batchCap ? { batchCap: (settings: SinkSettings) => batchCap(optionsOf(settings)) } : {}),
    ...(placementProblems
      ? {
          placementProblems: (settings: SinkSettings, placement: SinkPlacement) =>
            placementProblems(optionsOf(settings), placement),
        }
      : {}),
    ...(settingsProblems
      ? {
          settingsProblems: (settings: SinkSettings) =>
            settingsProblems(optionsOf(settings), commonSettingsOf(settings)),
        }
      : {}),
    create: (settings, ctx) => create(optionsOf(settings), ctx),
  };
}

import { z } from 'zod';
import { TrailwardenError } from '../errors.js';
import { FORMAT_NAMES, formatOptionsProblems } from './formats/registry.js';
import { DEFAULT_RETRY, type RetryConfig, retrySchema } from './retry-policy.js';
import { BATCH_MAX, type BatchLimits, type SinkDefinition } from './sink.js';
import { mapSecrets } from './sink-secrets.js';
import { SINK_KINDS, SINKS } from './sinks/registry.js';

export const SINK_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** An action name, a prefix pattern (`user.*`) or `*`. */
const ACTION_PATTERN = /^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$/;
const TENANT_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** A field path in an event: `source_ip`, `actor.email`, `metadata.device.id`. */
const FIELD_PATH = /^[a-z_][a-z0-9_]*(\.[A-Za-z0-9_-]+)*$/;

const actionList = z
  .array(
    z.string().regex(ACTION_PATTERN, { error: 'expected an action (user.login), a prefix (user.*) or *' }),
  )
  .max(1000);

const filterSchema = z.strictObject({
  include_actions: actionList.nullable().default(null),
  exclude_actions: actionList.default([]),
  tenants: z
    .array(z.string().regex(TENANT_PATTERN, { error: 'expected a tenant id' }))
    .max(1000)
    .nullable()
    .default(null),
  outcomes: z
    .array(z.enum(['success', 'failure', 'denied']))
    .nullable()
    .default(null),
});

const redactionSchema = z.strictObject({
  path: z
    .string()
    .regex(FIELD_PATH, { error: 'expected a field path such as actor.email or metadata.device' }),
  mode: z.enum(['drop', 'mask', 'hash'], { error: 'expected drop, mask or hash' }),
});

const shapeSchema = z.strictObject({
  /** Fields that go out (top-level names or dotted paths); null = all. `seq` and `event_id` always go. */
  fields: z
    .array(z.string().regex(FIELD_PATH, { error: 'expected a field path such as actor.id' }))
    .max(100)
    .nullable()
    .default(null),
  redact: z.array(redactionSchema).max(100).default([]),
  /** Seed 000: metadata is left out unless the action matches this list; null = always included. */
  metadata_for_actions: actionList.nullable().default(null),
  /** Key of the HMAC behind `hash` redactions (a secret); without it a plain SHA-256 is used. */
  hash_key: z.string().min(16, { error: 'use at least 16 characters' }).nullable().default(null),
});

/** A kind's batch limits: its defaults, up to its maximums. */
function batchSchema(d: BatchLimits, max: BatchLimits) {
  return z.strictObject({
    max_events: z.number().int().min(1).max(max.max_events).default(d.max_events),
    max_bytes: z.number().int().min(1024).max(max.max_bytes).default(d.max_bytes),
    /** How long the oldest event of a partial batch may wait for company (an archive object's maximum age). */
    max_wait_ms: z.number().int().min(0).max(max.max_wait_ms).default(d.max_wait_ms),
  });
}

/** The fields every sink has, with the kind's defaults. */
function commonShape(def: SinkDefinition) {
  return {
    name: z.string().regex(SINK_NAME_PATTERN, {
      error: 'expected 1-63 lowercase letters, digits, - or _, starting with a letter or digit',
    }),
    type: z.literal(def.kind),
    enabled: z.boolean().default(true),
    format: z
      .string()
      .refine((f) => FORMAT_NAMES.includes(f), { error: `expected one of ${FORMAT_NAMES.join(', ')}` })
      .default('json'),
    /** Options of the chosen format (e.g. LEEF's version and delimiter); see docs/formats.md. */
    format_options: z.record(z.string(), z.unknown()).default({}),
    /** Where a new sink starts: only events from now on, or the whole log. */
    start_from: z.enum(['now', 'beginning']).default('now'),
    filter: filterSchema.prefault({}),
    shape: shapeSchema.prefault({}),
    batch: batchSchema(def.batchDefault, def.batchMax ?? BATCH_MAX).prefault({}),
    retry: retrySchema.optional(),
    /**
     * Also deliver each new signed checkpoint of the log as a record of its
     * own (action `log.checkpoint.signed`), once every event it covers has
     * passed: the receiver keeps witnesses a verifier can check the log
     * against (`verify --trusted-checkpoint`).
     */
    send_checkpoints: z.boolean().default(def.sendCheckpointsDefault ?? false),
    /**
     * Also deliver every `log.erasure.completed` of the sink's tenants,
     * whatever `filter` says of actions and outcomes: the receiver learns
     * which erasure to apply to its own copy (docs/retention.md).
     */
    erasure_notices: z.boolean().default(false),
    /** After this long without a successful delivery the sink is `failing` and an alert event is recorded. */
    failing_after_ms: z
      .number()
      .int()
      .min(1000)
      .max(7 * 24 * 3_600_000)
      .default(900_000),
  };
}

/**
 * One kind's settings: the common fields with the kind's defaults, its own
 * options, its format's options, and what the kind finds wrong with its
 * options beside the common fields ({@link SinkDefinition.settingsProblems}).
 */
export function kindSchema(def: SinkDefinition) {
  return z.strictObject({ ...commonShape(def), ...def.options }).superRefine((sink, ctx) => {
    for (const [path, message] of formatOptionsProblems(sink.format, sink.format_options)) {
      ctx.addIssue({ code: 'custom', path: ['format_options', ...path], message });
    }
    for (const p of def.settingsProblems?.(sink) ?? []) {
      ctx.addIssue({ code: 'custom', path: p.path.split('.'), message: p.message });
    }
  });
}

const [firstKind, ...otherKinds] = Object.values(SINKS).map(kindSchema);
if (firstKind === undefined) throw new Error('sinks/registry.ts lists no kind of sink');

/** One sink's settings as written (config file or API). */
export const sinkConfigSchema = z.discriminatedUnion('type', [firstKind, ...otherKinds], {
  error: (iss) =>
    iss.code === 'invalid_union' && !hasType(iss.input)
      ? `type is required: one of ${SINK_KINDS.join(', ')}`
      : `type must be one of ${SINK_KINDS.join(', ')}`,
});

function hasType(input: unknown): boolean {
  return typeof input === 'object' && input !== null && 'type' in input && input.type !== undefined;
}

/**
 * Validates one sink's settings as given (an API body, a stored record, or
 * a config-file entry the loader already substituted: API sinks never
 * resolve `${…}`); problems name their field path.
 */
export function parseSinkConfig(raw: unknown): SinkConfig {
  const parsed = sinkConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '');
    return { path: path || '(sink)', message: `${path || '(sink)'}: ${issue.message}` };
  });
  throw new TrailwardenError(
    'TW_ERR_INVALID_SINK',
    `the sink configuration is invalid: ${problems.map((p) => p.message).join('; ')}`,
    { problems },
  );
}

/** A validated sink configuration with every default filled in. */
export interface SinkConfig {
  name: string;
  type: string;
  enabled: boolean;
  format: string;
  format_options: Record<string, unknown>;
  start_from: 'now' | 'beginning';
  filter: z.output<typeof filterSchema>;
  shape: z.output<typeof shapeSchema>;
  batch: BatchLimits;
  retry?: RetryConfig;
  send_checkpoints: boolean;
  erasure_notices: boolean;
  failing_after_ms: number;
  /** Kind-specific options. */
  [option: string]: unknown;
}

/** The retry policy of a sink: its own, or its kind's default. */
export function retryPolicyOf(config: SinkConfig): RetryConfig {
  return config.retry ?? DEFAULT_RETRY[SINKS[config.type]!.retryDefault];
}

/** The emit policy (seed 003): which sinks must confirm before POST /v1/events answers. */
export const emitSchema = z.strictObject({
  to_all_of: z.array(z.string().regex(SINK_NAME_PATTERN)).default([]),
  at_least_one_of: z.array(z.string().regex(SINK_NAME_PATTERN)).default([]),
  timeout_ms: z.number().int().min(1).max(600_000).default(60_000),
});

export type EmitPolicy = z.output<typeof emitSchema>;

export const MASK = '********';

/** A sink configuration safe to show: every secret value replaced. */
export function maskSecrets(config: Record<string, unknown>): Record<string, unknown> {
  return mapSecrets(config, () => MASK);
}

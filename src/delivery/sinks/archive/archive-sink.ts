import { z } from 'zod';
import { FORMATS } from '../../formats/registry.js';
import {
  type BatchLimits,
  commonSettingsOf,
  type SinkContext,
  type SinkDefinition,
  type SinkPlacement,
} from '../../sink.js';
import { ArchiveWriter } from './archive-writer.js';
import {
  DEFAULT_KEY_TEMPLATE,
  KEY_TEMPLATE_MAX,
  keyTemplateProblems,
  parseKeyTemplate,
} from './key-template.js';
import type { ObjectStore } from './object-store.js';

const MIB = 1024 * 1024;
const HOUR = 3_600_000;

/**
 * Archive objects are large and few: up to 5,000 events or 8 MiB of lines
 * each, and an object waits up to five minutes for company (the seeds'
 * intervals are minutes, not seconds).
 */
export const ARCHIVE_BATCH_DEFAULT: BatchLimits = {
  max_events: 5_000,
  max_bytes: 8 * MIB,
  max_wait_ms: 300_000,
};

/** The largest objects an archive sink may be set to: 100,000 events, 64 MiB of lines, a day's wait. */
export const ARCHIVE_BATCH_MAX: BatchLimits = {
  max_events: 100_000,
  max_bytes: 64 * MIB,
  max_wait_ms: 24 * HOUR,
};

/** The options every archive kind has, beside its provider's. */
export const archiveOptionsShape = {
  /** Where each object goes; see docs/sinks/archive.md. Checked with the filter in view (settingsProblems). */
  key_template: z.string().min(1).max(KEY_TEMPLATE_MAX).default(DEFAULT_KEY_TEMPLATE),
  gzip: z.boolean().default(true),
  /** Which instant places an event in a date partition. */
  partition_by: z
    .enum(['received_at', 'timestamp'], { error: 'expected "received_at" or "timestamp"' })
    .default('received_at'),
};

/** A provider's options as its schema leaves them (defaults filled in). */
export type ProviderOptions<P extends z.ZodRawShape> = z.output<ReturnType<typeof z.object<P>>>;

/** What a provider module (S3, Azure Blob, GCS) gives the archive builder. */
export interface ArchiveKind<P extends z.ZodRawShape> {
  kind: string;
  description: string;
  /** The provider's own options (bucket or container, region, endpoint, credentials …). */
  options: P;
  secretFields: readonly string[];
  hostOptions: readonly string[];
  /** The tenant rule and other placement problems of the provider's options (docs/security.md). */
  placementProblems(
    options: ProviderOptions<P>,
    placement: SinkPlacement,
  ): Array<{ path: string; message: string }>;
  /** Opens the bucket or container; imports the provider's SDK (lazily: only when such a sink starts). */
  createStore(options: ProviderOptions<P>, ctx: SinkContext): Promise<ObjectStore>;
}

/**
 * A kind of archive sink: the provider's options and object store, with
 * what every archive shares: `key_template`, `gzip`, `partition_by`, the
 * archive batch limits, signed checkpoints on by default, and a retry that
 * never gives up (an archive with parked events has a gap `verify --archive`
 * reports; a refused write waits for the operator, see sink.ts).
 */
export function defineArchiveSink<P extends z.ZodRawShape>(archive: ArchiveKind<P>): SinkDefinition {
  // Each half of the options is read with its own schema; the kind validates both together (`options`).
  const providerSchema = z.object(archive.options);
  const archiveSchema = z.object(archiveOptionsShape);
  return {
    kind: archive.kind,
    description: archive.description,
    options: { ...archive.options, ...archiveOptionsShape },
    secretFields: archive.secretFields,
    hostOptions: archive.hostOptions,
    retryDefault: 'streaming',
    batchDefault: ARCHIVE_BATCH_DEFAULT,
    batchMax: ARCHIVE_BATCH_MAX,
    sendCheckpointsDefault: true,
    settingsProblems: (settings) =>
      keyTemplateProblems(archiveSchema.parse(settings).key_template, commonSettingsOf(settings).tenants).map(
        (message) => ({ path: 'key_template', message }),
      ),
    placementProblems: (settings, placement) =>
      archive.placementProblems(providerSchema.parse(settings), placement),
    async create(settings, ctx) {
      const options = archiveSchema.parse(settings);
      const parsed = parseKeyTemplate(options.key_template);
      // Checked when the sink was validated; a template that fails here was stored before that check.
      if (!parsed.ok) throw new Error(`sink ${ctx.name}: key_template: ${parsed.problems.join('; ')}`);
      const store = await archive.createStore(providerSchema.parse(settings), ctx);
      return new ArchiveWriter(store, {
        template: parsed.template,
        format: ctx.format,
        jsonLines: isJsonFormat(ctx.format),
        gzip: options.gzip,
        partitionBy: options.partition_by,
      });
    },
  };
}

/** Whether a format's lines are JSON (json, jsonl, ocsf, ecs, splunk_hec): `.jsonl` objects. */
export function isJsonFormat(format: string): boolean {
  return FORMATS[format]?.contentType.includes('json') ?? false;
}

import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { TrailwardenError } from '../../../errors.js';
import { type DeliveryOutcome, defineSink, disable, ok, permanent, retry } from '../../sink.js';
import { confinementProblem, placeFile, placementProblemsOf } from './file-placement.js';
import { DEFAULT_FILE_PATTERN, filePatternProblem } from './rotated-file-names.js';
import { RotatingFileWriter } from './rotating-file-writer.js';
import { RefusedFileError } from './rotation-manifest.js';

const KIB = 1024;
const MIB = 1024 * KIB;

function intAtLeast(min: number) {
  const error = `must be an integer of at least ${min}`;
  return z.number({ error }).int({ error }).min(min, { error });
}

/** `0o640` from YAML's `0o640`, or the strings `"0640"` / `"640"` (a bare `0640` is decimal 640 in YAML 1.2). */
const fileMode = z.union(
  [
    z.number().int().min(0).max(0o777),
    z
      .string()
      .regex(/^(?:0o?)?[0-7]{3}$/)
      .transform((s) => Number.parseInt(s.replace(/^0o?/, ''), 8)),
  ],
  { error: 'expected a file mode such as 0o640 or "0640"' },
);

/** Options of the file sink (beside the common sink fields). docs/sinks/file.md documents them. */
const fileOptionsShape = {
  path: z
    .string({ error: 'expected a file path' })
    .min(1, { error: 'expected a file path, got an empty string' }),
  rotate: z
    .strictObject({
      daily: z.boolean({ error: 'expected true or false' }).default(true),
      /** `null`: no size limit. */
      max_bytes: intAtLeast(4 * KIB)
        .nullable()
        .default(null),
    })
    .default({ daily: true, max_bytes: null }),
  /** `null`: {@link DEFAULT_FILE_PATTERN}. */
  file_pattern: z
    .string({ error: 'expected a file name pattern such as "{base}.{date}.{index}{ext}"' })
    .superRefine((p, ctx) => {
      const problem = filePatternProblem(p);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .nullable()
    .default(null),
  compress: z.boolean({ error: 'expected true or false' }).default(true),
  /** Days of rotated files to keep; `null`: all. */
  max_history: intAtLeast(1).nullable().default(90),
  /** `null`: no cap. */
  total_size_cap_bytes: intAtLeast(1).nullable().default(null),
  fsync: z
    .enum(['every_batch', 'interval', 'never'], { error: 'expected "every_batch", "interval" or "never"' })
    .default('every_batch'),
  fsync_interval_ms: intAtLeast(10).default(1000),
  mode: fileMode.default(0o640),
  timezone: z
    .literal('UTC', { error: 'only "UTC" is supported: files rotate at UTC midnight' })
    .default('UTC'),
};

/** The options alone, validated as the config loader does beside the common fields (tests, docs). */
export const fileOptionsSchema = z.object(fileOptionsShape);

/** The file sink's options once validated and defaulted. */
export type FileOptions = z.output<typeof fileOptionsSchema>;

/**
 * Whether a text would split its record. `includes` of one character is a
 * memchr, some 15× faster than a `/[\n\r]/` test on typical events, so the
 * check stays on for every format (it guards against a format's bug).
 */
const hasLineBreak = (text: string): boolean => text.includes('\n') || text.includes('\r');

/** Errors that cannot go away by waiting: the path names a directory. */
const PERMANENT_CODES = new Set(['EISDIR']);

function outcomeOf(err: unknown, path: string): DeliveryOutcome {
  // Not ours to touch: stop, keeping the events in the log, until an operator fixes it and resumes.
  if (err instanceof RefusedFileError) return disable(err.message);
  const e = err as NodeJS.ErrnoException;
  const reason = `cannot write ${path}: ${e.code ?? 'error'}: ${e.message}`;
  return e.code && PERMANENT_CODES.has(e.code) ? permanent(reason) : retry(reason);
}

/**
 * The audit log as a local file, one line per event (seed 003's logback
 * appender's file, seed 004's text log for syslog/SIEM shippers). A batch is one
 * write, confirmed after it (and its fsync, per policy) succeeded; a failed
 * write is cut back so the file never holds a torn line. Rotation, gzip and
 * pruning are the {@link RotatingFileWriter}'s.
 */
export const fileSink = defineSink({
  kind: 'file',
  description:
    'One line per event appended to a local file, rotated daily and/or by size, gzipped and pruned.',
  options: fileOptionsShape,
  secretFields: [],
  hostOnly: true,
  retryDefault: 'streaming',
  batchDefault: { max_events: 1000, max_bytes: 4 * MIB, max_wait_ms: 0 },
  placementProblems: placementProblemsOf,
  async create(options, ctx) {
    const { placed, problems } = placeFile(options, {
      owner: ctx.owner,
      fileRoot: ctx.fileRoot,
      dataDir: ctx.dataDir,
    });
    if (placed === null) {
      // The engine checked before storing the sink; this holds for sinks stored by an earlier version.
      throw new TrailwardenError(
        'TW_ERR_INVALID_SINK',
        `sink ${ctx.name} cannot write there: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        { problems },
      );
    }
    const { path, confinement } = placed;
    const writer = new RotatingFileWriter({
      path,
      daily: options.rotate.daily,
      maxBytes: options.rotate.max_bytes,
      filePattern: options.file_pattern ?? DEFAULT_FILE_PATTERN,
      compress: options.compress,
      maxHistory: options.max_history,
      totalSizeCapBytes: options.total_size_cap_bytes,
      fsync: options.fsync,
      fsyncIntervalMs: options.fsync_interval_ms,
      mode: options.mode,
      now: ctx.now,
      log: ctx.log,
      owner: { sink: ctx.name, tenantId: ctx.owner.tenantId },
      foreignFiles: ctx.owner.source === 'config' ? 'adopt' : 'refuse',
      confine: (dir) => confinementProblem(dir, confinement),
    });
    try {
      await writer.start();
    } catch (err) {
      // Not fatal: the directory may be fixed while we run; every delivery tries again.
      ctx.log.warn('cannot open the file yet; deliveries will retry', {
        sink: ctx.name,
        path,
        error: String(err),
      });
    }
    return {
      async deliver(batch, signal) {
        if (signal.aborted) return retry('delivery aborted before writing');
        const broken = batch.events.find((e) => hasLineBreak(e.text));
        if (broken) {
          return permanent(
            `event seq ${broken.seq} encodes to text with a line break, which would split its record; ` +
              `format "${ctx.format}" must produce one line per event`,
          );
        }
        const data = Buffer.from(`${batch.events.map((e) => e.text).join('\n')}\n`, 'utf8');
        try {
          await writer.append(data);
          return ok();
        } catch (err) {
          return outcomeOf(err, path);
        }
      },
      async healthcheck() {
        // Healthy: the file can be appended to or, while it does not exist, created (the writer
        // makes missing folders, so the nearest existing one must be writable). Nothing is written.
        try {
          await access(path, constants.W_OK);
          return { ok: true, detail: `can write to ${path}` };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
            return { ok: false, detail: `cannot write to ${path}: ${(err as Error).message}` };
          }
        }
        let dir = dirname(path);
        for (;;) {
          try {
            await access(dir, constants.W_OK);
            return { ok: true, detail: `can create ${path} in ${dir}` };
          } catch (err) {
            const parent = dirname(dir);
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) {
              return { ok: false, detail: `cannot write to ${dir}: ${(err as Error).message}` };
            }
            dir = parent;
          }
        }
      },
      close: () => writer.close(),
    };
  },
});

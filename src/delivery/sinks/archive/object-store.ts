import type { HealthcheckResult } from '../../sink.js';

/**
 * Names of the metadata every archive object carries (underscores, not
 * hyphens: Azure requires metadata names to be C# identifiers; S3 sends them
 * as `x-amz-meta-<name>`, GCS as custom metadata).
 */
export const OBJECT_METADATA = {
  /** `seq` of the first event in the object (decimal). */
  firstSeq: 'trailwarden_first_seq',
  /** `seq` of the last event in the object (decimal). */
  lastSeq: 'trailwarden_last_seq',
  /** Number of events (lines) in the object (decimal). */
  events: 'trailwarden_events',
  /** SHA-256 of the object's bytes as written (after gzip), lowercase hex. */
  sha256: 'trailwarden_sha256',
} as const;

/** One object of an archive sink, ready to write: its key and bytes never change for the same range. */
export interface ArchiveObject {
  key: string;
  body: Buffer;
  /** e.g. `application/x-ndjson`, or `text/plain; charset=utf-8` for a checkpoint note. */
  contentType: string;
  /** `gzip` when the body is gzipped (stored as Content-Encoding so readers know). */
  contentEncoding?: 'gzip';
  /** {@link OBJECT_METADATA} names to their values (ASCII). */
  metadata: Readonly<Record<string, string>>;
  /** SHA-256 of `body`, lowercase hex (also in `metadata`): compared with an object already at the key. */
  sha256: string;
}

/**
 * What a conditional write found: the object is now there because this
 * call wrote it, or an object was already at the key (a retry after a
 * crash or a timeout), whose `trailwarden_sha256` metadata is given (`null`
 * when it has none). The archive sink treats the same SHA-256 as success.
 */
export type PutResult = { status: 'created' } | { status: 'exists'; sha256: string | null };

/**
 * Why a provider call failed, classified for the sink:
 * - `transient`: network error, timeout, 5xx, an upload interrupted: retried
 *   on the sink's schedule.
 * - `throttled`: 429, 503 SlowDown / ServerBusy and the like: retried after
 *   `retryAfterMs` when the provider gave a hint.
 * - `refused`: the sink's settings are wrong (bucket or container missing,
 *   access denied, bad or expired credentials, a forbidden address): the
 *   sink is `failing` at once and keeps retrying, nothing is parked, and it
 *   resumes once the operator fixes it.
 * - `rejected`: this one object can never be written as it is (key too long
 *   or invalid, object too large): its events are parked as dead letters.
 */
export type ObjectStoreErrorKind = 'transient' | 'throttled' | 'refused' | 'rejected';

/** A provider call that failed, with the provider's own error code (shown in the sink's status; never a secret). */
export class ObjectStoreError extends Error {
  override readonly name = 'ObjectStoreError';
  constructor(
    readonly kind: ObjectStoreErrorKind,
    /** The provider's error code, e.g. `NoSuchBucket`, `ContainerNotFound`, `AuthorizationFailure`, or the HTTP status / errno. */
    readonly code: string,
    message: string,
    readonly options: { status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/**
 * One bucket or container, as the archive sink writes to it. Each provider
 * (S3, Azure Blob, GCS) implements it over its official SDK; the archive
 * writer does the rest (keys, splitting, encoding, gzip, metadata,
 * checkpoints, outcomes).
 */
export interface ObjectStore {
  /** Where the objects go, for status and logs, e.g. `s3://audit-bucket` (never a secret). */
  readonly target: string;
  /**
   * Writes the object only if no object is at its key (S3 `If-None-Match: *`,
   * Azure `ifNoneMatch: '*'`, GCS `ifGenerationMatch=0`), in one request up
   * to the provider's single-put size and in parts / blocks / a resumable
   * upload above it. When the key is taken, reads the existing object's
   * SHA-256 metadata and answers `exists`. Fails with {@link ObjectStoreError}
   * only; honours `signal` (an aborted upload leaves no object at the key).
   */
  put(obj: ArchiveObject, signal: AbortSignal): Promise<PutResult>;
  /**
   * Whether the bucket or container can be reached with these credentials,
   * without writing (S3 HeadBucket, Azure container properties, GCS bucket
   * metadata); `detail` names what was tried and the provider's error code.
   */
  healthcheck(signal: AbortSignal): Promise<HealthcheckResult>;
  /** Ends open connections and uploads in progress; no handle is left. */
  close(): Promise<void>;
}

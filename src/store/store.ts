import type { CanonicalEvent } from '../event/canonical.js';
import type { AuditEvent, Outcome, StoredEvent } from '../event/event.js';
import type { RetentionStore } from './retention-store.js';

/**
 * The store contract. Both backends (`sqlite/`, the embedded default, and
 * `postgres/`, for several nodes) implement it and pass the one conformance
 * suite, `test/store/store-conformance.test.ts`. All methods are async so
 * the networked backend fits; the SQLite backend answers reads
 * synchronously inside them.
 */
export interface Store {
  /** Backend name for logs and `/readyz` (`sqlite`, `postgres`). */
  readonly kind: string;

  /**
   * Appends a batch atomically and durably (committed and fsync'd before the
   * promise resolves; sequenced too, unless an outcome's `seq` is null). Each event is idempotent on (`tenant_id`, `event_id`)
   * for as long as it is kept (once pruned, the same id is a new event):
   * same content → `duplicate` (nothing stored), other content → the whole
   * batch is refused with `TW_ERR_EVENT_CONFLICT` and nothing is stored.
   * Concurrent calls are group-committed.
   */
  append(events: PreparedEvent[]): Promise<AppendOutcome[]>;

  /**
   * True while this instance assigns `seq`, extends the tree and signs
   * checkpoints: always on SQLite (one process), and on PostgreSQL while it
   * holds the sequencer lease.
   */
  isSequencer(): boolean;

  /** Highest `seq` in the log (0 when empty). */
  headSeq(): Promise<number>;

  /**
   * The next `limit` kept events after `afterSeq`, ascending, no filter.
   * Pruning leaves gaps in seq, so the events returned may reach past
   * `afterSeq + limit`, and the event at a given seq may be missing (its
   * leaf is in `retention.prunedLeaves`); fewer than `limit` means the head.
   */
  readRange(afterSeq: number, limit: number): Promise<StoredEvent[]>;

  /**
   * The same events as `readRange`, unparsed: the columns delivery filters on
   * and the stored JSON text, which is byte-identical to
   * `JSON.stringify(storedEvent)` (so a JSON sink can send it as it is).
   */
  readRangeRaw(afterSeq: number, limit: number): Promise<RawStoredEvent[]>;

  /** One page of a filtered query, keyset-paginated on `seq`. */
  query(filter: EventFilter, page: PageRequest): Promise<StoredEvent[]>;

  /** Events with this `event_id`, limited to one tenant when `tenantId` is set. */
  findByEventId(eventId: string, tenantId: string | null): Promise<StoredEvent[]>;

  /** Merkle tree: the persisted interior hashes and proofs over them. */
  readonly tree: TreeReader;

  addCheckpoint(cp: CheckpointRecord): Promise<void>;
  latestCheckpoint(): Promise<CheckpointRecord | undefined>;
  /** Checkpoints with tree size in [`fromSize`, `toSize`], ascending, at most `limit`. */
  listCheckpoints(range: { fromSize?: number; toSize?: number; limit: number }): Promise<CheckpointRecord[]>;
  checkpointAt(treeSize: number): Promise<CheckpointRecord | undefined>;

  createKey(key: ApiKeyRecord): Promise<void>;
  getKey(keyId: string): Promise<ApiKeyRecord | undefined>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked; false when no such key (or already revoked). */
  revokeKey(keyId: string, at: string): Promise<boolean>;
  countKeys(): Promise<number>;

  /** Small durable settings (e.g. the log origin chosen on first start). */
  getMeta(name: string): Promise<string | undefined>;
  /**
   * Sets `name` unless it is already set, and returns the value kept: the
   * first one ever set wins, so nodes starting together agree on it.
   */
  initMeta(name: string, value: string): Promise<string>;

  /** Sink configurations, cursors and dead letters. */
  readonly delivery: DeliveryStore;

  /** Retention periods, legal holds, prune runs, pruned leaves and erasures. */
  readonly retention: RetentionStore;

  /** Called after each commit that added events, with the new head `seq`. */
  onAppend(listener: (headSeq: number) => void): () => void;

  /**
   * Why writes fail for now, when they fail for a reason that passes by
   * itself (SQLite's disk is full), or `undefined`. `/readyz` reports it.
   */
  writeBlock(): WriteBlock | undefined;

  /** Calls `listener` when such an episode starts, and with `undefined` when writes succeed again. */
  onWriteBlock(listener: (block: WriteBlock | undefined) => void): () => void;

  close(): Promise<void>;
}

/** An episode in which the store refuses writes until a condition passes (see `Store.writeBlock`). */
export interface WriteBlock {
  /** What is wrong and what the operator should do, e.g. that the disk is full. */
  reason: string;
  /** When the first write failed for it (ISO 8601). */
  since: string;
}

/** An event ready for the log: validated, normalised, with its content hash (made by `prepareEvent`). */
export interface PreparedEvent {
  event: AuditEvent;
  /** `contentHashOf(event)`: compared on a repeated `event_id`. */
  contentHash: string;
  /** The event's JCS, computed once for the content hash and reused for the leaf hash. */
  canonical: CanonicalEvent;
}

/** A stored event as its JSON text, with the fields delivery filters on beside it. */
export interface RawStoredEvent {
  seq: number;
  event_id: string;
  tenant_id: string;
  action: string;
  outcome: Outcome;
  timestamp: string;
  actor_id: string;
  resource_id: string | null;
  /** `JSON.stringify` of the {@link StoredEvent}, byte for byte. */
  body: string;
}

/**
 * What became of one event of an append. `seq` is where it is in the log, or
 * `null` when it is acknowledged but not sequenced yet: a PostgreSQL node
 * that does not hold the sequencer lease commits events for the sequencer
 * and answers without waiting for it.
 */
export type AppendOutcome = { status: 'created' | 'duplicate'; seq: number | null };

/**
 * An acknowledged event's `seq`, or `null` while it is stored but not yet
 * sequenced (see {@link AppendOutcome}); `eventId` and `tenantId` find its
 * `seq` once it is (`findByEventId`).
 */
export interface EventSeq {
  seq: number | null;
  eventId: string;
  tenantId: string;
}

/** Filters shared by query, stream and export. Every field narrows the result. */
export interface EventFilter {
  /** Tenants the caller may see; `null` = all tenants. */
  tenantIds: string[] | null;
  /** Inclusive lower bound on `timestamp` (UTC ISO 8601, normalised). */
  from?: string;
  /** Exclusive upper bound on `timestamp`. */
  to?: string;
  /** Exact action, or a prefix when `actionPrefix` is true (`user.*` → `user.`). */
  action?: { value: string; prefix: boolean };
  actorId?: string;
  resourceType?: string;
  resourceId?: string;
  outcome?: Outcome;
  /** Case-insensitive text in actor/resource names, actor email, reason. */
  q?: string;
}

export interface PageRequest {
  order: 'asc' | 'desc';
  /** Exclusive `seq` bound: `seq > afterSeq` (asc) or `seq < afterSeq` (desc). */
  afterSeq?: number;
  limit: number;
}

/** Read access to the persisted Merkle tree (RFC 6962 / 9162). */
export interface TreeReader {
  /** Number of leaves (equals `headSeq`). */
  size(): Promise<number>;
  /** Root hash of the first `treeSize` leaves. */
  rootAt(treeSize: number): Promise<Buffer>;
  /** Audit path for `leafIndex` in the tree of `treeSize` leaves. */
  inclusionProof(leafIndex: number, treeSize: number): Promise<Buffer[]>;
  /** Consistency proof between tree sizes `from` ≤ `to`. */
  consistencyProof(from: number, to: number): Promise<Buffer[]>;
}

/** A signed checkpoint as kept in the store. */
export interface CheckpointRecord {
  treeSize: number;
  /** Base64 root hash. */
  rootHash: string;
  /** When it was issued (UTC ISO 8601). */
  issuedAt: string;
  /** The full C2SP signed note text. */
  note: string;
}

export const ROLES = ['publisher', 'auditor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** An API key; only a hash of its secret is kept. */
export interface ApiKeyRecord {
  keyId: string;
  /** Base64 SHA-256 of the secret part of the token. */
  secretHash: string;
  role: Role;
  /** `null` = all tenants. */
  tenantId: string | null;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

/**
 * What the delivery engine keeps: sinks defined through the API, each sink's
 * cursor (moved only by compare-and-set) and its dead letters. Writes
 * resolve once committed but need not be fsync'd (losing the last cursor moves
 * in a power cut only re-delivers events), and never block the caller's event
 * loop on a lock.
 */
export interface DeliveryStore {
  /** Sinks created through the API (sinks from the config file are not stored). */
  listSinkConfigs(): Promise<SinkConfigRecord[]>;
  putSinkConfig(rec: SinkConfigRecord): Promise<void>;
  deleteSinkConfig(name: string): Promise<boolean>;

  /** A sink's delivery state; created at `initialCursor` the first time. */
  ensureSinkState(name: string, initialCursor: number): Promise<SinkState>;
  getSinkState(name: string): Promise<SinkState | undefined>;
  /**
   * Compare-and-set of a sink's cursor: succeeds only if the stored cursor is
   * still `expected`. Dead letters in `park` are written in the same
   * transaction, so an event is either parked and passed, or neither.
   */
  moveSinkCursor(
    name: string,
    expected: number,
    next: number,
    opts?: { inflightTo?: number | null; park?: DeadLetterInput[]; epochBump?: boolean },
  ): Promise<CursorMove>;
  setSinkFlags(name: string, flags: { paused?: boolean; disabledReason?: string | null }): Promise<void>;
  deleteSinkState(name: string): Promise<void>;

  listDeadLetters(sink: string, page: { afterId?: number; limit: number }): Promise<DeadLetter[]>;
  getDeadLetters(sink: string, ids: number[]): Promise<DeadLetter[]>;
  countDeadLetters(sink: string): Promise<number>;
  /** Removes dead letters (after a successful redrive); returns how many were removed. */
  removeDeadLetters(sink: string, ids: number[]): Promise<number>;
  /** Counts a failed redrive of a letter; also ends a redrive requested for it. */
  recordDeadLetterAttempt(sink: string, id: number, reason: string): Promise<void>;
  /**
   * Asks the node that delivers `sink` to redrive these letters (a redrive
   * made through another node); returns the letters that exist, now
   * marked, by id.
   */
  requestRedrive(sink: string, ids: number[], at: string): Promise<DeadLetter[]>;
  /** Letters whose redrive was requested and not yet attempted, oldest first. */
  redriveRequests(sink: string, limit: number): Promise<DeadLetter[]>;

  /**
   * Takes or renews lease `name` for `ttlMs`, in one atomic statement: true
   * when `holder` holds it afterwards (it was free, expired, or already
   * `holder`'s), false when another holder's lease has not expired. Expiry is
   * judged by the store's clock (the database's `now()`), never a node's.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives lease `name` up at once if `holder` holds it (so another node need not wait for expiry). */
  releaseLease(name: string, holder: string): Promise<void>;
  /** Who holds lease `name`, or `undefined` when it is free or expired. */
  leaseHolder(name: string): Promise<LeaseRecord | undefined>;
}

/** A lease that has not expired. */
export interface LeaseRecord {
  holder: string;
  /** When it expires unless renewed (UTC ISO 8601, by the store's clock). */
  expiresAt: string;
}

/** A sink defined through the API, kept as its validated JSON. */
export interface SinkConfigRecord {
  name: string;
  /** The sink's settings as JSON; `${ENV}` references are kept unresolved. */
  config: string;
  /** The tenant a tenant-bound admin limited it to; `null` = all tenants. */
  tenantId: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Where a sink stands in the log. */
export interface SinkState {
  name: string;
  /** Last `seq` the sink confirmed (or passed: filtered out or parked). */
  cursor: number;
  /** End of the delivery in flight, so a restart resends exactly the same batch. */
  inflightTo: number | null;
  /** Bumped by each replay, so replayed deliveries get fresh delivery ids. */
  epoch: number;
  paused: boolean;
  disabledReason: string | null;
  updatedAt: string;
}

export type CursorMove = { ok: true; state: SinkState } | { ok: false; actual: number | undefined };

export interface DeadLetterInput {
  seq: number;
  eventId: string;
  reason: string;
  attempts: number;
}

/** An event a sink gave up on; the event itself stays in the log at `seq`. */
export interface DeadLetter extends DeadLetterInput {
  id: number;
  sink: string;
  parkedAt: string;
  lastAttemptAt: string;
  /** When a redrive was asked for through a node that does not deliver the sink; null once attempted. */
  redriveRequestedAt: string | null;
}

import type { Database } from 'better-sqlite3';

/**
 * Versioned migrations, applied in order inside one transaction on open. The
 * version lives in SQLite's `user_version`, so a newer file opened by older
 * code is refused instead of misread.
 */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    event_id      TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    ts            TEXT NOT NULL,
    action        TEXT NOT NULL,
    actor_id      TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    outcome       TEXT NOT NULL,
    search        TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    leaf_hash     BLOB NOT NULL,
    body          TEXT NOT NULL
  );
  -- Every index costs about as much per insert as the row itself (bench/index-cost.ts),
  -- so there is none that another serves: lookups by event_id or action without a
  -- tenant go through the tenant-prefixed indexes for each row of \`tenants\`.
  CREATE UNIQUE INDEX events_tenant_event_id ON events (tenant_id, event_id);
  CREATE INDEX events_tenant_action ON events (tenant_id, action, seq);
  CREATE INDEX events_tenant_ts ON events (tenant_id, ts);
  CREATE INDEX events_ts ON events (ts);
  CREATE INDEX events_actor ON events (actor_id, seq);
  CREATE INDEX events_resource ON events (resource_type, resource_id, seq);

  -- Every tenant that has an event, written by the writer in the transaction
  -- that stores the tenant's first event.
  CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY
  ) WITHOUT ROWID;

  -- Perfect-subtree hashes of the Merkle tree above the leaves (level >= 1):
  -- node (level, idx) covers leaves [idx * 2^level, (idx + 1) * 2^level).
  -- Leaves (level 0) are events.leaf_hash at seq = idx + 1.
  CREATE TABLE tree_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
  ) WITHOUT ROWID;

  CREATE TABLE checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root_hash TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    note      TEXT NOT NULL
  );

  CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant_id   TEXT,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
  );

  CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  `
  CREATE TABLE sink_configs (
    name       TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    tenant_id  TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );

  CREATE TABLE sink_states (
    name            TEXT PRIMARY KEY,
    cursor          INTEGER NOT NULL,
    inflight_to     INTEGER,
    epoch           INTEGER NOT NULL DEFAULT 0,
    paused          INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    updated_at      TEXT NOT NULL
  );

  CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    parked_at       TEXT NOT NULL,
    last_attempt_at TEXT NOT NULL
  );
  CREATE INDEX dead_letters_sink ON dead_letters (sink, id);
  `,
  `
  -- Time-limited leases (a sink's delivery, the sequencer): one holder at a
  -- time; \`expires_at\` is Unix milliseconds.
  CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- A redrive asked for through a node that does not deliver the sink: the
  -- node that does finds it here (the same column as in PostgreSQL).
  ALTER TABLE dead_letters ADD COLUMN redrive_requested_at TEXT;
  `,
  `
  -- Sink names are scoped per tenant: a tenant-bound admin's sink is kept
  -- under the key <tenant>/<name> (settings, cursor, dead letters, lease),
  -- so two tenants may use one name and neither learns of the other's.
  UPDATE sink_states SET name = (
    SELECT c.tenant_id || '/' || c.name FROM sink_configs c WHERE c.name = sink_states.name
  ) WHERE name IN (SELECT name FROM sink_configs WHERE tenant_id IS NOT NULL);
  UPDATE dead_letters SET sink = (
    SELECT c.tenant_id || '/' || c.name FROM sink_configs c WHERE c.name = dead_letters.sink
  ) WHERE sink IN (SELECT name FROM sink_configs WHERE tenant_id IS NOT NULL);
  DELETE FROM leases WHERE name IN (
    SELECT 'sink:' || name FROM sink_configs WHERE tenant_id IS NOT NULL
  );
  UPDATE sink_configs SET name = tenant_id || '/' || name WHERE tenant_id IS NOT NULL;
  `,
  `
  -- Retention, legal holds and erasure (docs/retention.md). A pruned event's
  -- row leaves \`events\`; its leaf stays here, so the tree stays whole.
  CREATE TABLE pruned_leaves (
    seq       INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    leaf_hash BLOB NOT NULL,
    run_id    TEXT NOT NULL
  );
  CREATE INDEX pruned_leaves_run ON pruned_leaves (run_id, tenant_id, seq);

  CREATE TABLE retention_policies (
    tenant_id  TEXT PRIMARY KEY,
    days       INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
  );

  CREATE TABLE legal_holds (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    match       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    lifted_at   TEXT,
    lifted_by   TEXT,
    lift_reason TEXT
  );
  CREATE INDEX legal_holds_tenant ON legal_holds (tenant_id, created_at);

  CREATE TABLE prune_runs (
    id              TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    state           TEXT NOT NULL,
    plan            TEXT NOT NULL,
    scanned_through INTEGER NOT NULL,
    pruned          INTEGER NOT NULL
  );

  CREATE TABLE erasures (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    subject_kind  TEXT NOT NULL,
    reason        TEXT NOT NULL,
    requested_at  TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    state         TEXT NOT NULL,
    seqs          TEXT NOT NULL,
    held          INTEGER NOT NULL,
    redacted      INTEGER NOT NULL,
    finished_at   TEXT,
    completed_seq INTEGER
  );
  CREATE INDEX erasures_tenant ON erasures (tenant_id, requested_at);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Makes a file without tables give pages freed by pruning back to the file
 * system, step by step (`incremental_vacuum` in `reclaimSpace`). It must run
 * before the first table and before WAL mode writes the file's header; a
 * file made before keeps `auto_vacuum = NONE` and reuses its freed pages
 * for new events (an offline `VACUUM` converts it, docs/retention.md).
 */
export function useIncrementalVacuumIfNew(db: Database): void {
  if (db.prepare('SELECT COUNT(*) FROM sqlite_schema').pluck().get() === 0) {
    db.pragma('auto_vacuum = INCREMENTAL');
  }
}

/** Brings the database to the current schema version. */
export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `database schema version ${current} is newer than this trailwarden (${SCHEMA_VERSION}); upgrade trailwarden`,
    );
  }
  const apply = db.transaction(() => {
    for (let v = current; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  apply.immediate();
}

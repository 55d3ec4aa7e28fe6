// Longer than 400 lines on purpose: the migrations are one ordered list that
// is only ever appended to (a released migration is never edited or moved),
// and several of them define the SQL functions the sequencer's fence runs.
import type { PoolClient } from 'pg';
import { ensureMonthlyPartitions, monthsBetween } from './partitions.js';

/**
 * Versioned migrations, applied in order on open inside one transaction while
 * holding a session advisory lock, so several nodes starting at once apply
 * each migration exactly once. The version lives in `schema_version`; a
 * database newer than this code is refused instead of misread. A migration
 * is SQL, or a function for what SQL alone cannot say (partitions by month).
 *
 * Text columns that are compared by range (`ts`, `action`) use the "C"
 * collation so ordering is by code point, as in SQLite, whatever the
 * database's locale is (the action-prefix filter is a range up to U+FFFF).
 */
const MIGRATIONS: Array<string | ((client: PoolClient) => Promise<void>)> = [
  `
  CREATE TABLE events (
    seq           BIGINT PRIMARY KEY,
    event_id      TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    ts            TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    actor_id      TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    outcome       TEXT NOT NULL,
    search        TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    leaf_hash     BYTEA NOT NULL,
    body          TEXT NOT NULL
  );
  CREATE UNIQUE INDEX events_tenant_event_id ON events (tenant_id, event_id);
  CREATE INDEX events_tenant_action ON events (tenant_id, action, seq);
  CREATE INDEX events_tenant_ts ON events (tenant_id, ts);
  CREATE INDEX events_ts ON events (ts);
  CREATE INDEX events_actor ON events (actor_id, seq);
  CREATE INDEX events_resource ON events (resource_type, resource_id, seq);

  -- Every tenant that has an event, written in the transaction that stores its first event.
  CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY
  );

  -- Perfect-subtree hashes above the leaves (level >= 1); leaves are events.leaf_hash at seq = idx + 1.
  CREATE TABLE tree_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
  );

  CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY,
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
    cursor          BIGINT NOT NULL,
    inflight_to     BIGINT,
    epoch           INTEGER NOT NULL DEFAULT 0,
    paused          BOOLEAN NOT NULL DEFAULT false,
    disabled_reason TEXT,
    updated_at      TEXT NOT NULL
  );

  CREATE TABLE dead_letters (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink            TEXT NOT NULL,
    seq             BIGINT NOT NULL,
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
  -- time; expiry is judged by the database clock, never a node's.
  CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
  );
  `,
  partitionEvents,
  `
  -- A tenant's time window filtered by action (the core issue's first-page
  -- query) reads the window's index entries and checks the action there,
  -- fetching only matching rows; with (tenant_id, ts) alone PostgreSQL
  -- fetched every row of the window, or combined two broad index scans
  -- (200 ms at 10M events). Replaces that index rather than adding one.
  CREATE INDEX events_tenant_ts_action ON events (tenant_id, ts, action);
  DROP INDEX events_tenant_ts;
  `,
  `
  -- The log's size, advanced by every sequencing transaction as its last
  -- step, compare-and-set under a row lock: a transaction built on a size
  -- the log no longer has cannot commit, so the sequencer can build and
  -- write its next group while the one before is still committing. Also
  -- cheaper to read than MAX(seq) over every partition.
  CREATE TABLE log_head (
    one  BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    size BIGINT NOT NULL
  );
  INSERT INTO log_head (size) SELECT COALESCE(MAX(seq), 0) FROM events;

  -- The fence, run as a sequencing transaction's last statement (sent
  -- together with its COMMIT): locks the lease row, then the head; checks
  -- that the caller still holds the lease by the database's clock now and
  -- that the log is still p_from events long; moves the head and
  -- announces it (the NOTIFY goes out at commit). A would-be successor's
  -- takeover waits on the lease row lock, so two holders never both commit
  -- on one head. Raises TWL01 (lease gone) or TWH01 (head elsewhere).
  CREATE FUNCTION trailwarden_advance_head(p_holder TEXT, p_from BIGINT, p_to BIGINT) RETURNS VOID
  LANGUAGE plpgsql AS $fn$
  DECLARE
    mine BOOLEAN;
    at_size BIGINT;
  BEGIN
    SELECT l.holder = p_holder AND l.expires_at > clock_timestamp() INTO mine
      FROM leases l WHERE l.name = 'sequencer' FOR UPDATE;
    IF mine IS NOT TRUE THEN
      RAISE EXCEPTION 'the sequencer lease is no longer held by %', p_holder USING ERRCODE = 'TWL01';
    END IF;
    SELECT size INTO at_size FROM log_head FOR UPDATE;
    IF at_size <> p_from THEN
      RAISE EXCEPTION 'the log is % events long, not %', at_size, p_from USING ERRCODE = 'TWH01';
    END IF;
    UPDATE log_head SET size = p_to;
    PERFORM pg_notify('trailwarden_append', p_to || ' ' || p_holder);
  END
  $fn$;

  -- A node of an older version still running when this migration ran would
  -- go on sequencing without moving log_head, and a node of this version
  -- would later number events from a stale head: seqs used twice. Inserts
  -- into events are refused unless the transaction says it sequences for
  -- this schema (SEQUENCER_MARK); an old node's appends fail until it is
  -- replaced, and nothing is numbered twice.
  CREATE FUNCTION trailwarden_sequencer_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
  BEGIN
    IF current_setting('trailwarden.sequencer', true) IS DISTINCT FROM '6' THEN
      RAISE EXCEPTION 'only a trailwarden of schema version 6 or later appends events here; upgrade every node'
        USING ERRCODE = 'TWV06';
    END IF;
    RETURN NULL;
  END
  $fn$;
  CREATE TRIGGER trailwarden_sequencer_guard BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION trailwarden_sequencer_guard();
  `,
  `
  -- A follower's commit is handed to the sequencer as one row holding its
  -- events (a JSON array, in acknowledgement order) instead of a row per
  -- event: a row inserted, read back and deleted per event was most of what
  -- several nodes cost PostgreSQL over one. Events still waiting move over
  -- as batches of one, in their order.
  CREATE TABLE pending_batches (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size > 0),
    events      TEXT NOT NULL
  );
  INSERT INTO pending_batches (received_at, size, events)
    SELECT received_at, 1, '[' || event || ']' FROM pending_events ORDER BY id;
  DROP TABLE pending_events;
  `,
  `
  -- A pending batch (tens of KB of JSON) is compressed as it is stored out of
  -- line; lz4 costs PostgreSQL a fraction of the CPU of the default pglz at
  -- about the same size (three nodes: ~41 -> ~35 µs of PostgreSQL CPU per
  -- event, docs/BENCHMARKS.md). A server built without lz4, or older than
  -- 14, keeps the default: the statement is run dynamically so that either
  -- refusal is caught here.
  DO $$
  BEGIN
    EXECUTE 'ALTER TABLE pending_batches ALTER COLUMN events SET COMPRESSION lz4';
  EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'pending_batches.events keeps the default compression: %', SQLERRM;
  END
  $$;
  `,
  `
  -- A redrive asked for through a node that does not deliver the sink: the
  -- node that does finds it here at its next lease renewal.
  ALTER TABLE dead_letters ADD COLUMN redrive_requested_at TEXT;
  `,
  `
  -- A key a follower claims gets its seq from the sequencer moments later, an
  -- UPDATE of a row just inserted. On full pages nearly none of those updates
  -- could stay on the row's page, so each wrote a new primary-key entry too;
  -- with half of each page kept free, ~95 % do (HOT), and three nodes cost
  -- PostgreSQL ~10 % less CPU and WAL per event (docs/BENCHMARKS.md). The
  -- price is this table's heap taking about twice the room (tens of bytes per
  -- event, beside the events' kilobyte or more). Pages written from now on.
  ALTER TABLE event_keys SET (fillfactor = 50);
  `,
  keyColumnsByCodePoint,
  `
  -- A sequencing group waits for the group before it (its ticket: a
  -- transaction-level advisory lock in space 0x7477 = 29815) before its fence.
  -- Waiting on the lock alone would not do when this group's statement
  -- reaches PostgreSQL before that group's has taken its ticket (another
  -- connection, a busy machine): the lock is free, and the fence would fail.
  -- So: wait for the ticket, then look at the head; not there yet, poll
  -- until it is or a quarter second passed (the group before failed; the
  -- fence then fails this one too). The lock is taken and released at
  -- session level so that this group holds nothing the group before needs.
  CREATE FUNCTION trailwarden_follow(p_before INTEGER, p_from BIGINT) RETURNS VOID
  LANGUAGE plpgsql AS $fn$
  DECLARE
    at_size BIGINT;
    deadline TIMESTAMPTZ := clock_timestamp() + interval '250 milliseconds';
  BEGIN
    LOOP
      PERFORM pg_advisory_lock(29815, p_before);
      PERFORM pg_advisory_unlock(29815, p_before);
      SELECT size INTO at_size FROM log_head;
      EXIT WHEN at_size >= p_from OR clock_timestamp() > deadline;
      PERFORM pg_sleep(0.001);
    END LOOP;
  END
  $fn$;

  -- A whole sequencing group in one statement, its own transaction (no BEGIN
  -- or COMMIT round trip): the group's ticket, the keys of its events (all
  -- new, or nothing is kept: TWK01), no pending batch beyond those the groups
  -- before took (else TWP01), its tree nodes and events, then the wait for
  -- the group before and the fence. Used while no other node hands events
  -- over and the group writes no new tenant or partition.
  CREATE FUNCTION trailwarden_sequence_group(
    seqs BIGINT[], received TEXT[], event_ids TEXT[], tenant_ids TEXT[], tss TEXT[], actions TEXT[],
    actor_ids TEXT[], resource_types TEXT[], resource_ids TEXT[], outcomes TEXT[], searches TEXT[],
    leaf_hashes BYTEA[], bodies TEXT[],
    node_levels INTEGER[], node_idxs BIGINT[], node_hashes BYTEA[],
    key_tenants TEXT[], key_events TEXT[], key_hashes TEXT[], key_seqs BIGINT[],
    taken_before BIGINT[], p_holder TEXT, p_from BIGINT, p_to BIGINT, p_ticket INTEGER, p_before INTEGER
  ) RETURNS VOID
  LANGUAGE plpgsql AS $fn$
  DECLARE
    claimed BIGINT;
  BEGIN
    PERFORM set_config('trailwarden.sequencer', '6', true);
    PERFORM pg_advisory_xact_lock(29815, p_ticket);
    INSERT INTO event_keys (tenant_id, event_id, content_hash, seq)
      SELECT * FROM unnest(key_tenants, key_events, key_hashes, key_seqs) ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed <> coalesce(cardinality(key_tenants), 0) THEN
      RAISE EXCEPTION 'an event of the group was stored already' USING ERRCODE = 'TWK01';
    END IF;
    IF EXISTS (SELECT 1 FROM pending_batches WHERE id <> ALL(taken_before)) THEN
      RAISE EXCEPTION 'another node handed events over' USING ERRCODE = 'TWP01';
    END IF;
    INSERT INTO tree_nodes (level, idx, hash) SELECT * FROM unnest(node_levels, node_idxs, node_hashes);
    INSERT INTO events (seq, received_at, event_id, tenant_id, ts, action, actor_id, resource_type,
      resource_id, outcome, search, leaf_hash, body)
    SELECT * FROM unnest(seqs, received::timestamptz[], event_ids, tenant_ids, tss, actions, actor_ids,
      resource_types, resource_ids, outcomes, searches, leaf_hashes, bodies);
    IF p_before IS NOT NULL THEN
      PERFORM trailwarden_follow(p_before, p_from);
    END IF;
    PERFORM trailwarden_advance_head(p_holder, p_from, p_to);
  END
  $fn$;
  `,
  `
  -- Sink names are scoped per tenant: a tenant-bound admin's sink is kept
  -- under the key <tenant>/<name> (settings, cursor, dead letters, lease),
  -- so two tenants may use one name and neither learns of the other's.
  UPDATE sink_states s SET name = c.tenant_id || '/' || c.name
    FROM sink_configs c WHERE c.name = s.name AND c.tenant_id IS NOT NULL;
  UPDATE dead_letters d SET sink = c.tenant_id || '/' || c.name
    FROM sink_configs c WHERE c.name = d.sink AND c.tenant_id IS NOT NULL;
  DELETE FROM leases l USING sink_configs c
    WHERE l.name = 'sink:' || c.name AND c.tenant_id IS NOT NULL;
  UPDATE sink_configs SET name = tenant_id || '/' || name WHERE tenant_id IS NOT NULL;
  `,
  `
  -- Retention, legal holds and erasure (docs/retention.md). A pruned event's
  -- row leaves events (and its key event_keys); its leaf stays here, so the
  -- tree stays whole.
  CREATE TABLE pruned_leaves (
    seq       BIGINT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    leaf_hash BYTEA NOT NULL,
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
    scanned_through BIGINT NOT NULL,
    pruned          BIGINT NOT NULL
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
    completed_seq BIGINT
  );
  CREATE INDEX erasures_tenant ON erasures (tenant_id, requested_at);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * What a sequencing transaction sets (`SET LOCAL`) so that the guard on
 * `events` (migration 6) lets its inserts through; a later migration that
 * changes how events are sequenced raises the value in the guard, here and
 * in `trailwarden_sequence_group` (migration 12), which sets it itself.
 */
export const SEQUENCER_MARK = { setting: 'trailwarden.sequencer', value: '6' } as const;

/** Session advisory lock key held while migrating ("tw-migr"). */
const MIGRATION_LOCK = 0x74772d6d69677200n;

/** The schema version of the database (0 when Trailwarden never ran on it). */
export async function schemaVersion(client: PoolClient): Promise<number> {
  const exists = await client.query<{ t: string | null }>("SELECT to_regclass('schema_version')::text AS t");
  if (exists.rows[0]?.t == null) return 0;
  const r = await client.query<{ version: number }>('SELECT version FROM schema_version');
  return r.rows[0]?.version ?? 0;
}

/**
 * Brings the database to the current schema version (tests of a migration
 * stop at an older `target`); safe when several nodes run it at once.
 */
export async function migrate(client: PoolClient, target = SCHEMA_VERSION): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
  try {
    await client.query('BEGIN');
    try {
      await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const current = await schemaVersion(client);
      if (current > SCHEMA_VERSION) {
        throw new Error(
          `database schema version ${current} is newer than this trailwarden (${SCHEMA_VERSION}); upgrade trailwarden`,
        );
      }
      for (let v = current; v < target; v++) {
        const step = MIGRATIONS[v]!;
        if (typeof step === 'string') await client.query(step);
        else await step(client);
      }
      await client.query('DELETE FROM schema_version');
      await client.query('INSERT INTO schema_version (version) VALUES ($1)', [Math.max(current, target)]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
  }
}

/**
 * Migration 4 (issue 5): `events` becomes a table partitioned by month of
 * `received_at`, so tens of millions of rows stay in tables of a month each
 * and old months can be detached or archived whole. A partitioned table's
 * unique constraints must include the partition key, so idempotency on
 * (tenant_id, event_id) moves to its own unpartitioned `event_keys` table,
 * which also holds where each event went (`seq`, null while it waits to be
 * sequenced). `pending_events` holds events acknowledged by a node that does
 * not hold the sequencer lease, until the sequencer gives them a `seq`.
 * Existing rows are copied over (a one-time cost of a full rewrite).
 */
async function partitionEvents(client: PoolClient): Promise<void> {
  await client.query(`
    ALTER TABLE events RENAME TO events_unpartitioned;
    DROP INDEX events_tenant_event_id, events_tenant_action, events_tenant_ts, events_ts, events_actor,
      events_resource;

    CREATE TABLE events (
      seq           BIGINT NOT NULL,
      received_at   TIMESTAMPTZ NOT NULL,
      event_id      TEXT NOT NULL,
      tenant_id     TEXT NOT NULL,
      ts            TEXT COLLATE "C" NOT NULL,
      action        TEXT COLLATE "C" NOT NULL,
      actor_id      TEXT NOT NULL,
      resource_type TEXT,
      resource_id   TEXT,
      outcome       TEXT NOT NULL,
      search        TEXT NOT NULL,
      leaf_hash     BYTEA NOT NULL,
      body          TEXT NOT NULL,
      PRIMARY KEY (seq, received_at)
    ) PARTITION BY RANGE (received_at);
    CREATE INDEX events_tenant_action ON events (tenant_id, action, seq);
    CREATE INDEX events_tenant_ts ON events (tenant_id, ts);
    CREATE INDEX events_ts ON events (ts);
    CREATE INDEX events_actor ON events (actor_id, seq);
    CREATE INDEX events_resource ON events (resource_type, resource_id, seq);

    CREATE TABLE event_keys (
      tenant_id    TEXT NOT NULL,
      event_id     TEXT NOT NULL,
      content_hash TEXT NOT NULL,
      seq          BIGINT,
      PRIMARY KEY (tenant_id, event_id)
    );

    CREATE TABLE pending_events (
      id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      tenant_id    TEXT NOT NULL,
      event_id     TEXT NOT NULL,
      received_at  TEXT NOT NULL,
      event        TEXT NOT NULL
    );
  `);
  const span = await client.query<{ first: Date | null; last: Date | null }>(
    `SELECT min((body::json->>'received_at')::timestamptz) AS first,
            max((body::json->>'received_at')::timestamptz) AS last
     FROM events_unpartitioned`,
  );
  const now = new Date();
  const first = span.rows[0]?.first ?? now;
  const last = span.rows[0]?.last ?? now;
  await ensureMonthlyPartitions(client, monthsBetween(first < now ? first : now, last > now ? last : now));
  await client.query(`
    INSERT INTO events (seq, received_at, event_id, tenant_id, ts, action, actor_id, resource_type,
      resource_id, outcome, search, leaf_hash, body)
    SELECT seq, (body::json->>'received_at')::timestamptz, event_id, tenant_id, ts, action, actor_id,
      resource_type, resource_id, outcome, search, leaf_hash, body
    FROM events_unpartitioned;
    INSERT INTO event_keys (tenant_id, event_id, content_hash, seq)
    SELECT tenant_id, event_id, content_hash, seq FROM events_unpartitioned;
    DROP TABLE events_unpartitioned;
  `);
}

/**
 * The text columns of the hot indexes that migration 1 left on the
 * database's default collation, as `events.ts` and `events.action` are not.
 * Looked up by equality only, so results do not depend on it, but every
 * index descent compares with it: under a linguistic default (`en_US.UTF-8`,
 * an ICU locale — what managed databases usually have) that is a
 * locale-aware comparison per step instead of a byte comparison, about 10 %
 * more PostgreSQL CPU per ingested event here (docs/BENCHMARKS.md). With
 * "C", they also order by code point as in SQLite. A database whose default
 * is already C or POSIX behaves so now and is left alone: the change
 * rebuilds these columns' indexes, minutes on a large log.
 */
export const CODE_POINT_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  events: ['event_id', 'tenant_id', 'actor_id', 'resource_type', 'resource_id'],
  event_keys: ['tenant_id', 'event_id'],
  tenants: ['tenant_id'],
};

/** Migration 11: {@link CODE_POINT_COLUMNS} get the "C" collation unless the database's default compares bytes already. */
async function keyColumnsByCodePoint(client: PoolClient): Promise<void> {
  // `datlocprovider` exists from PostgreSQL 15 on (ICU defaults); through JSON so older servers read null.
  const db = await client.query<{ collate: string; provider: string | null }>(
    `SELECT datcollate AS collate, to_jsonb(d) ->> 'datlocprovider' AS provider
     FROM pg_database d WHERE datname = current_database()`,
  );
  const { collate, provider } = db.rows[0]!;
  const bytewise = (provider === null || provider === 'c') && (collate === 'C' || collate === 'POSIX');
  if (bytewise) return;
  for (const [table, columns] of Object.entries(CODE_POINT_COLUMNS)) {
    await client.query(
      `ALTER TABLE ${table} ${columns.map((c) => `ALTER COLUMN ${c} TYPE text COLLATE "C"`).join(', ')}`,
    );
  }
}

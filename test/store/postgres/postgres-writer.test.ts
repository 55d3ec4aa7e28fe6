import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { MerkleFrontier } from '../../../src/store/merkle/frontier.js';
import { monthOfIso } from '../../../src/store/postgres/partitions.js';
import { createPool } from '../../../src/store/postgres/postgres-connection.js';
import { PostgresStore } from '../../../src/store/postgres/postgres-store.js';
import {
  commitSequenced,
  type GroupBase,
  MAX_GROUPS_IN_FLIGHT,
  PendingArrived,
  type SequencerState,
  StaleGroup,
} from '../../../src/store/postgres/postgres-writer.js';
import { makeEvent, prepare } from '../../helpers/events.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../../helpers/postgres.js';

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (install postgresql-15)' : false;

/**
 * A pool whose clients hold back each statement matching `slow` for
 * `delayMs` before sending it to the real server: how a busy machine can
 * order two connections' statements.
 */
function slowPool(pool: pg.Pool, slow: RegExp, delayMs: number): pg.Pool {
  const connect = async () => {
    const client = await pool.connect();
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    return new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return async (...args: unknown[]) => {
          const text =
            typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
          if (typeof text === 'string' && slow.test(text)) {
            await new Promise((r) => setTimeout(r, delayMs));
          }
          return query(...args);
        };
      },
    });
  };
  return new Proxy(pool, {
    get(target, prop, receiver) {
      return prop === 'connect' ? connect : Reflect.get(target, prop, receiver);
    },
  });
}

/** Where a group will start, and how the group before it (its `onBuilt`) says so. */
function nextBase(): { base: Promise<GroupBase>; built: (base: GroupBase) => void } {
  let built!: (base: GroupBase) => void;
  const base = new Promise<GroupBase>((resolve) => {
    built = resolve;
  });
  return { base, built };
}

/** The statement that writes a group: the three-round-trip write, or the one-statement group (migration 12). */
const GROUP_WRITE = /WITH claimed AS|trailwarden_sequence_group\(/;

describe('PostgreSQL sequencing pipeline', { skip }, () => {
  let cluster: PostgresCluster | undefined;
  let url = '';
  let pool: pg.Pool | undefined;

  /** Gives the sequencer lease to the holder the tests sequence as ('test'), for an hour. */
  const holdLease = (p: pg.Pool) =>
    p.query(
      `INSERT INTO leases (name, holder, expires_at) VALUES ('sequencer', 'test', now() + interval '1 hour')
       ON CONFLICT (name) DO UPDATE SET holder = 'test', expires_at = now() + interval '1 hour'`,
    );
  /** A database of its own (schema and this month's partitions made) whose lease the test holds; a pool on it. */
  const ownDatabase = async (poolSize: number): Promise<pg.Pool> => {
    const own = await cluster!.createDatabase();
    await (await PostgresStore.open(own, { poolSize: 1 })).close();
    const p = createPool(own, poolSize);
    await holdLease(p);
    return p;
  };
  /** A sequencer that knows tenant acme and this month's partition, at an empty log. */
  const acmeState = (): SequencerState => ({
    frontier: () => new MerkleFrontier(),
    knownTenants: new Set(['acme']),
    knownMonths: new Set([monthOfIso(new Date().toISOString())]),
    holder: 'test',
  });

  before(async () => {
    cluster = await startPostgres();
    url = await cluster.createDatabase();
    // Schema and this month's partitions; then the lease goes to the holder the test sequences as.
    await (await PostgresStore.open(url, { poolSize: 1 })).close();
    pool = createPool(url, 4);
    await holdLease(pool);
  });
  after(async () => {
    await pool?.end();
    await cluster?.stop();
  });

  test('a group does not write the tenant the group still committing before it writes (no deadlock)', async () => {
    const state: SequencerState = {
      frontier: () => new MerkleFrontier(),
      knownTenants: new Set(),
      knownMonths: new Set([monthOfIso(new Date().toISOString())]),
      holder: 'test',
    };
    const { base: firstBase, built } = nextBase();
    // The first group's tenant insert is held back, so the second group, built on it, gets there first:
    // were it to insert the same tenant, the first group's insert would wait for the second's
    // transaction, which waits for the first group to commit — neither would ever finish.
    const first = commitSequenced(
      slowPool(pool!, /INSERT INTO tenants/, 300),
      [[prepare(makeEvent({ tenant_id: 'newcomer' }))]],
      state,
      {
        after: Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [] }),
        drainPending: false,
        onBuilt: built,
      },
    );
    const second = commitSequenced(pool!, [[prepare(makeEvent({ tenant_id: 'newcomer' }))]], state, {
      after: firstBase,
      drainPending: false,
    });
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the two groups are deadlocked')), 10_000);
    });
    try {
      const [a, b] = await Promise.race([Promise.all([first, second]), stuck]);
      assert.equal(a.frontier.size, 1);
      assert.equal(b.frontier.size, 2);
    } finally {
      clearTimeout(timer);
    }
    const rows = await pool!.query('SELECT tenant_id FROM tenants');
    assert.deepEqual(
      rows.rows.map((r) => r.tenant_id),
      ['newcomer'],
    );
    const head = await pool!.query('SELECT size FROM log_head');
    assert.equal(Number(head.rows[0].size), 2);
  });
  test('an event resent in the next group while the first is still writing: PostgreSQL breaks the wait, nothing hangs', {
    timeout: 60_000,
  }, async () => {
    const own = await ownDatabase(4);
    try {
      const state = acmeState();
      const event = prepare(makeEvent({ tenant_id: 'acme' }));
      const { base: firstBase, built } = nextBase();
      // The first group's write is held back, so the second group (the same event, sent again) claims
      // the key first: the first group's insert then waits for the second's transaction, whose fence
      // waits for the first group to end. Only PostgreSQL can see both waits and end one of them.
      // 100 ms: within the quarter second a group polls for the head before failing (trailwarden_follow).
      const first = commitSequenced(slowPool(own, GROUP_WRITE, 100), [[event]], state, {
        after: Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [] }),
        drainPending: false,
        onBuilt: built,
      });
      const second = commitSequenced(own, [[event]], state, { after: firstBase, drainPending: false });
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('the two groups wait for each other forever')), 15_000);
      });
      let outcomes: PromiseSettledResult<unknown>[];
      try {
        outcomes = await Promise.race([Promise.allSettled([first, second]), stuck]);
      } finally {
        clearTimeout(timer);
      }
      // One of them lost (the deadlock, or the head the loser left); at most one committed.
      assert.ok(
        outcomes.some((o) => o.status === 'rejected'),
        'one group must fail: both claimed the same key',
      );
      const head = Number((await own.query('SELECT size FROM log_head')).rows[0].size);
      const stored = Number((await own.query('SELECT count(*) AS n FROM events')).rows[0].n);
      const keys = Number((await own.query('SELECT count(*) AS n FROM event_keys')).rows[0].n);
      assert.equal(stored, head, 'the head counts exactly the events stored');
      assert.equal(keys, stored, 'a key is kept only with its event');
      assert.ok(head <= 1);
    } finally {
      await own.end();
    }
  });
  test('a group whose statement reaches PostgreSQL before the group before it waits for that group, then follows it', async () => {
    const own = await ownDatabase(4);
    try {
      const state = acmeState();
      const { base: firstBase, built } = nextBase();
      // The first group's statement is held back: the second, built on it, gets to PostgreSQL first
      // and finds the first group's ticket not taken yet. Waiting on the lock alone, it would go on
      // to the fence at once and fail there.
      const first = commitSequenced(slowPool(own, GROUP_WRITE, 150), [[prepare(makeEvent())]], state, {
        after: Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [] }),
        drainPending: false,
        onBuilt: built,
      });
      const second = commitSequenced(own, [[prepare(makeEvent())], [prepare(makeEvent())]], state, {
        after: firstBase,
        drainPending: false,
      });
      const [a, b] = await Promise.all([first, second]);
      assert.equal(a.frontier.size, 1);
      assert.equal(b.frontier.size, 3);
      assert.deepEqual(
        b.results.map((r) => (typeof r === 'number' ? r : r.map((o) => o.seq))),
        [[2], [3]],
      );
      assert.equal(Number((await own.query('SELECT size FROM log_head')).rows[0].size), 3);
    } finally {
      await own.end();
    }
  });

  test('when the group before fails, the group built on it fails too after a bounded wait, keeping nothing', async () => {
    const own = await ownDatabase(4);
    try {
      const state = acmeState();
      const stored = prepare(makeEvent());
      await commitSequenced(own, [[stored]], state, { drainPending: false });
      const { base: firstBase, built } = nextBase();
      const base = { frontier: state.frontier().clone(), pendingTaken: [] };
      base.frontier.append(Buffer.alloc(32)); // the size the committed group left (its hash is not read here)
      // The first group resends a stored event (a pipelined group claims its keys without reading them):
      // it keeps nothing, and the second, built on it, can never find the head where it expects.
      const first = commitSequenced(slowPool(own, GROUP_WRITE, 50), [[stored]], state, {
        after: Promise.resolve(base),
        drainPending: false,
        onBuilt: built,
      });
      const second = commitSequenced(own, [[prepare(makeEvent())]], state, {
        after: firstBase,
        drainPending: false,
      });
      const outcomes = await Promise.allSettled([first, second]);
      assert.deepEqual(
        outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).constructor.name : 'fulfilled')),
        ['StaleGroup', 'StaleGroup'],
      );
      assert.equal(Number((await own.query('SELECT size FROM log_head')).rows[0].size), 1);
      assert.equal(Number((await own.query('SELECT count(*) AS n FROM event_keys')).rows[0].n), 1);
    } finally {
      await own.end();
    }
  });

  test('a one-statement group that fails leaves its connection holding no advisory lock', async () => {
    // One connection, so the group runs on the one that holds the lock taken here: what a cancel between
    // trailwarden_follow's lock and unlock would leave behind.
    const own = await ownDatabase(1);
    try {
      const state = acmeState();
      const stored = prepare(makeEvent());
      await commitSequenced(own, [[stored]], state, { drainPending: false });
      await own.query('SELECT pg_advisory_lock(29815, 123456)');
      const base = { frontier: state.frontier().clone(), pendingTaken: [] };
      base.frontier.append(Buffer.alloc(32));
      await assert.rejects(
        commitSequenced(own, [[stored]], state, { after: Promise.resolve(base), drainPending: false }),
        StaleGroup,
      );
      const [held] = (await own.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'")).rows;
      assert.equal(Number(held.n), 0);
    } finally {
      await own.end();
    }
  });

  test('a group that read no pending events fails, keeping nothing, if another node handed some over; not if a group before it took them', async () => {
    const own = await ownDatabase(2);
    try {
      const state = acmeState();
      // Acknowledged by a follower (committed to pending) before this node's request arrived.
      const handed = await own.query<{ id: string }>(
        'INSERT INTO pending_batches (received_at, size, events) VALUES ($1, 1, $2) RETURNING id',
        [new Date().toISOString(), JSON.stringify([makeEvent({ tenant_id: 'acme' })])],
      );
      const id = Number(handed.rows[0]!.id);
      const mine = () => [[prepare(makeEvent({ tenant_id: 'acme' }))]];
      await assert.rejects(
        commitSequenced(own, mine(), state, {
          after: Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [] }),
          drainPending: false,
        }),
        PendingArrived,
      );
      const count = async (table: string) =>
        Number((await own.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
      assert.equal(await count('events'), 0, 'nothing of the failed group is kept');
      assert.equal(await count('event_keys'), 0);
      assert.equal(Number((await own.query('SELECT size FROM log_head')).rows[0].size), 0);
      // A group before this one (still in flight) took that batch: nothing else is pending, so it goes ahead.
      const done = await commitSequenced(own, mine(), state, {
        after: Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [[id]] }),
        drainPending: false,
      });
      assert.equal(done.frontier.size, 1);
      assert.equal(await count('events'), 1);
    } finally {
      await own.end();
    }
  });
  test('a batch that commits after a later one was taken is taken by the next group, not skipped with it', async () => {
    const own = await ownDatabase(3);
    const slowFollower = await own.connect();
    try {
      const state = acmeState();
      const hand = (c: pg.Pool | pg.PoolClient, reason: string) =>
        c.query('INSERT INTO pending_batches (received_at, size, events) VALUES ($1, 1, $2)', [
          new Date().toISOString(),
          JSON.stringify([makeEvent({ tenant_id: 'acme', reason })]),
        ]);
      // Three followers' commits; the middle one takes its id first but commits last.
      await hand(own, 'a');
      await slowFollower.query('BEGIN');
      await hand(slowFollower, 'b');
      await hand(own, 'c');
      const { base: firstBase, built } = nextBase();
      const first = await commitSequenced(own, [], state, {
        after: Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [] }),
        drainPending: true,
        onBuilt: built,
      });
      assert.equal(first.frontier.size, 2, 'the first group takes the two batches it can see');
      await slowFollower.query('COMMIT');
      // Built on the first group, as if it were still committing: it skips what that one took, only that.
      const second = await commitSequenced(own, [], state, { after: firstBase, drainPending: true });
      assert.equal(second.frontier.size, 3, 'the late batch is sequenced by the next group');
      const reasons = await own.query<{ reason: string }>(
        "SELECT body::json->>'reason' AS reason FROM events ORDER BY seq",
      );
      assert.deepEqual(
        reasons.rows.map((r) => r.reason),
        ['a', 'c', 'b'],
      );
      assert.equal(Number((await own.query('SELECT count(*) AS n FROM pending_batches')).rows[0].n), 0);
    } finally {
      slowFollower.release();
      await own.end();
    }
  });

  test('as many groups as may be in flight take as many different pending batches: each skips what the ones before it took', async () => {
    const own = await ownDatabase(6);
    try {
      // A follower's commit of 1,000 events per group: a group takes one (PENDING_PER_COMMIT).
      const batches = Array.from({ length: MAX_GROUPS_IN_FLIGHT }, (_, b) =>
        Array.from({ length: 1000 }, () => makeEvent({ tenant_id: 'acme', reason: `batch ${b}` })),
      );
      for (const events of batches) {
        await own.query('INSERT INTO pending_batches (received_at, size, events) VALUES ($1, $2, $3)', [
          new Date().toISOString(),
          events.length,
          JSON.stringify(events),
        ]);
      }
      const state = acmeState();
      // Each group's write is held back, so all of them are in flight, uncommitted, at once.
      const slow = slowPool(own, /WITH claimed AS/, 300);
      const groups: Array<Promise<unknown>> = [];
      let base: Promise<GroupBase> = Promise.resolve({ frontier: new MerkleFrontier(), pendingTaken: [] });
      for (let g = 0; g < MAX_GROUPS_IN_FLIGHT; g++) {
        let built!: (b: GroupBase) => void;
        const next = new Promise<GroupBase>((resolve) => {
          built = resolve;
        });
        groups.push(
          commitSequenced(slow, [], state, {
            after: base,
            drainPending: true,
            onBuilt: built,
          }),
        );
        base = next;
      }
      await Promise.all(groups);
      const rows = await own.query<{ seq: string; reason: string }>(
        "SELECT seq, body::json->>'reason' AS reason FROM events ORDER BY seq",
      );
      assert.equal(rows.rows.length, 1000 * MAX_GROUPS_IN_FLIGHT, 'every pending event sequenced once');
      assert.deepEqual(
        rows.rows.map((r) => [Number(r.seq), r.reason]).filter((_, i) => i % 1000 === 0 || i % 1000 === 999),
        batches.flatMap((_, b) => [
          [b * 1000 + 1, `batch ${b}`],
          [b * 1000 + 1000, `batch ${b}`],
        ]),
        'in the order the batches were committed',
      );
      assert.equal(Number((await own.query('SELECT count(*) AS n FROM pending_batches')).rows[0].n), 0);
    } finally {
      await own.end();
    }
  });
});

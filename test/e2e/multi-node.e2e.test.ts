/**
 * Failover of three nodes on one PostgreSQL database (issue 5), through the
 * built CLI: kill -9 the sequencer, kill -9 another node mid-batch, and
 * restart PostgreSQL, each while producers post through every live node.
 * Whatever happens, every acknowledged event must end up in the log exactly
 * once, seq must run 1..N, and `verify` must pass.
 *
 * Each scenario is a sequence of tests sharing one cluster, so a failed
 * expectation (say, two nodes claiming the sequencer) is reported on its own
 * and the data checks after it still run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, type TestContext, test } from 'node:test';
import { runCli, waitFor } from '../helpers/cli.js';
import { type ClusterNode, NodeCluster } from '../helpers/cluster-nodes.js';
import { LoadGenerator, roundRobin } from '../helpers/load-generator.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../helpers/postgres.js';

const LEASE_MS = 2000;
/** The bound a takeover must meet: the issue asks for the lease time; a loaded 2-core machine gets slack. */
const TAKEOVER_BOUND_MS = 10 * LEASE_MS;
const NODES = 3;
/** Batches of this many events from the round-robin producers. */
const BATCH: [number, number] = [20, 50];
const SCENARIO_TIMEOUT_MS = 180_000;
/**
 * Marks the tests that need the sequencer lease (issue 5, part 2): until it
 * is merged every PostgreSQL node says `sequencer: true`, and these fail as
 * reported TODOs instead of failing the suite. Remove this with that merge.
 */

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (install postgresql-15)' : false;

let pg: PostgresCluster | undefined;
const postgres = async () => {
  pg ??= await startPostgres();
  return pg;
};
after(async () => {
  await pg?.stop();
});

/** One scenario's cluster and producers, torn down by the scenario's after hook whatever happened. */
interface Scene {
  cluster: NodeCluster;
  load: LoadGenerator;
}

/** Starts three nodes on a fresh database and producers through all of them; waits until each acknowledged. */
function useScene(): () => Scene {
  let cluster: NodeCluster | undefined;
  let load: LoadGenerator | undefined;
  before(async () => {
    const store = await (await postgres()).createDatabase();
    const c = await NodeCluster.start({ store, count: NODES, leaseMs: LEASE_MS }, (created) => {
      cluster = created;
    });
    load = new LoadGenerator(c);
    load.add(roundRobin(c, 4, BATCH));
    const l = load;
    await waitFor('every node to acknowledge a batch', async () => c.nodes.every((n) => l.ackedBy(n) > 0), {
      timeoutMs: 60_000,
    });
  });
  after(async () => {
    await load?.stop();
    await cluster?.close();
  });
  return () => {
    assert.ok(cluster && load, 'the scene started');
    return { cluster, load };
  };
}

/** What went wrong so far, for a timeout's message: a wait alone says too little. */
function whatHappened({ cluster, load }: Scene): string {
  const lines = [...cluster.crashed, ...load.unexpected.slice(0, 5)];
  return lines.length === 0 ? '' : `; meanwhile:\n${lines.join('\n')}`;
}

/** `waitFor`, whose timeout also tells what the scene saw. */
async function waitIn(scene: Scene, what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  await waitFor(what, check, { timeoutMs, everyMs: 100 }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}${whatHappened(scene)}`);
  });
}

async function headOf(cluster: NodeCluster, node: ClusterNode): Promise<number | undefined> {
  return (await cluster.readiness(node))?.head_seq;
}

/** Waits until the log grows by `by` events past what `node` reports now: sequencing goes on. */
async function assertSequencingContinues(scene: Scene, by = 100): Promise<void> {
  const { cluster } = scene;
  const node = cluster.live()[0]!;
  const from = await headOf(cluster, node);
  assert.ok(from !== undefined, `${node.id} is ready`);
  await waitIn(
    scene,
    `the head to grow by ${by} past ${from}`,
    async () => ((await headOf(cluster, node)) ?? 0) >= from + by,
  );
}

/** Waits until every live node acknowledged events at or after `since`. */
async function assertEveryLiveNodeAcknowledges(scene: Scene, since: number): Promise<void> {
  const { cluster, load } = scene;
  await waitIn(scene, 'every live node to acknowledge a batch', async () =>
    cluster.live().every((n) => load.ackedBy(n, since) > 0),
  );
}

/**
 * Stops the producers, resends every batch that got no 201 (idempotent by
 * event_id), waits until every acknowledged event is in the log as `node`
 * serves it, and checks each is there exactly once with seq 1..N.
 */
async function assertEveryAcknowledgedEventSequencedOnce(t: TestContext, scene: Scene): Promise<void> {
  const { cluster, load } = scene;
  await load.stop();
  const node = cluster.live()[0]!;
  const unansweredBefore = load.unanswered.length;
  const refusedResends = await load.resendUnanswered(node);

  const acked = [...load.acked.keys()];
  let log: Array<{ seq: number; event_id: string }> = [];
  let missing: string[] = acked;
  const deadline = Date.now() + 60_000;
  while (missing.length > 0 && Date.now() < deadline) {
    log = await cluster.readLog(node);
    const stored = new Set(log.map((e) => e.event_id));
    missing = acked.filter((id) => !stored.has(id));
    if (missing.length > 0) await new Promise((r) => setTimeout(r, 500));
  }
  t.diagnostic(
    `${acked.length} events acknowledged (${load.notReady.length} answers 503, ` +
      `${load.connectionErrorsFromKilled} requests cut off by a kill, ${unansweredBefore} batches resent); log head ${log.length}`,
  );
  assert.deepEqual(
    missing.slice(0, 10),
    [],
    `every acknowledged event is in the log (${missing.length} missing)`,
  );

  const times = new Map<string, number>();
  for (const e of log) times.set(e.event_id, (times.get(e.event_id) ?? 0) + 1);
  const repeated = [...times].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`);
  assert.deepEqual(repeated.slice(0, 10), [], `no event is sequenced twice (${repeated.length} are)`);
  const outOfPlace = log.filter((e, i) => e.seq !== i + 1).map((e) => e.seq);
  assert.deepEqual(outOfPlace.slice(0, 10), [], 'seq runs 1..N without gap or repeat');

  const heads = await Promise.all(cluster.live().map((n) => headOf(cluster, n)));
  assert.deepEqual(
    heads,
    cluster.live().map(() => log.length),
    'every live node reports the same head, the log length',
  );
  assert.ok(acked.length > 0, 'events were acknowledged');
  assert.deepEqual(refusedResends, [], 'every resent batch is acknowledged');
  assert.deepEqual(
    load.unexpected.slice(0, 10),
    [],
    'no answer but 201 or a well-formed 503 from live nodes',
  );
  assert.deepEqual(cluster.crashed, [], 'no node exited unless killed');
}

async function assertVerifyPasses(scene: Scene): Promise<void> {
  const node = scene.cluster.live()[0]!;
  const res = await runCli(['verify', '--config', node.config], { timeoutMs: 120_000 });
  assert.equal(res.code, 0, res.stdout + res.stderr);
  assert.match(res.stdout, /^OK: \d+ events, \d+ signed checkpoint\(s\) verified/m);
}

/** Once idle, a checkpoint covers the head and every live node serves that same one as latest. */
async function assertSameLatestCheckpoint(scene: Scene): Promise<void> {
  const { cluster } = scene;
  let seen: string[] = [];
  await waitFor(
    'a checkpoint at the head, served by every live node',
    async () => {
      const live = cluster.live();
      const head = await headOf(cluster, live[0]!);
      seen = await Promise.all(
        live.map(async (n) => {
          const res = await cluster.request(n, 'GET', '/v1/checkpoints/latest');
          const cp = (await res.json()) as { tree_size?: number; note?: string };
          return `${cp.tree_size}\n${cp.note}`;
        }),
      );
      return seen.every((s) => s === seen[0]) && seen[0]!.startsWith(`${head}\n`);
    },
    { timeoutMs: 30_000, everyMs: 250 },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; latest checkpoints seen: ${JSON.stringify(seen)}`);
  });
}

describe('kill -9 the sequencer during continuous ingest through three nodes', {
  skip,
  timeout: SCENARIO_TIMEOUT_MS,
}, () => {
  const scene = useScene();
  let killedAt = 0;

  test('exactly one of the three nodes reports sequencer:true while all three ingest', {}, async () => {
    await scene().cluster.soleSequencer(5 * LEASE_MS);
  });

  test('kill -9 of the sequencer ends it', async (t) => {
    const { cluster } = scene();
    // The sole sequencer; should several claim the role (see above), the first of them.
    const victim = (await cluster.sequencers())[0] ?? cluster.nodes[0]!;
    killedAt = Date.now();
    await cluster.kill(victim);
    t.diagnostic(`killed ${victim.id}`);
    assert.equal(victim.server.child.signalCode, 'SIGKILL');
  });

  test('exactly one survivor takes over, within the lease time plus slack', {}, async (t) => {
    const next = await scene().cluster.soleSequencer(TAKEOVER_BOUND_MS);
    const tookMs = next.since - killedAt;
    t.diagnostic(`${next.id} took over ${tookMs} ms after the kill (lease_ms ${LEASE_MS})`);
    assert.ok(tookMs <= TAKEOVER_BOUND_MS, `takeover in ${tookMs} ms`);
  });

  test('ingest goes on through both survivors and the log keeps growing', async () => {
    const s = scene();
    await assertEveryLiveNodeAcknowledges(s, Date.now());
    await assertSequencingContinues(s);
  });

  test('every acknowledged event is sequenced exactly once and seq has no gap', async (t) => {
    await assertEveryAcknowledgedEventSequencedOnce(t, scene());
  });

  test('verify passes on the database', async () => {
    await assertVerifyPasses(scene());
  });

  test('once idle, both survivors serve the same latest checkpoint, at the head', async () => {
    await assertSameLatestCheckpoint(scene());
  });
});

describe('kill -9 a node that does not sequence, with large batches in flight to it', {
  skip,
  timeout: SCENARIO_TIMEOUT_MS,
}, () => {
  const scene = useScene();
  let sequencerBefore: ClusterNode | undefined;

  test('exactly one of the three nodes reports sequencer:true while all three ingest', {}, async () => {
    sequencerBefore = await scene().cluster.soleSequencer(5 * LEASE_MS);
  });

  test('kill -9 lands while a large batch to the node is unanswered', async (t) => {
    const { cluster, load } = scene();
    const claiming = await cluster.sequencers();
    // A node that does not sequence; should all claim the role (see above), the last.
    const victim = cluster.nodes.filter((n) => !claiming.includes(n)).at(-1) ?? cluster.nodes.at(-1)!;
    const big = () => (victim.killed ? undefined : victim);
    load.add([
      { name: 'big0', pick: big, batchSize: [800, 1000] },
      { name: 'big1', pick: big, batchSize: [800, 1000] },
    ]);
    // Once large batches go through, kill while one is on its way (a few ms in, so it is
    // being parsed, validated or committed rather than still on the wire).
    await waitIn(scene(), 'a large batch to be acknowledged', async () => load.ackedBy(victim) > 800);
    await waitFor('a large batch in flight to the node', async () => load.inFlightTo(victim).events >= 800, {
      timeoutMs: 30_000,
      everyMs: 2,
    });
    await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 30)));
    // That batch may have been answered meanwhile, and the next one not sent yet (the producer is
    // still building it): the kill must still find one unanswered.
    await waitFor('a large batch in flight to the node', async () => load.inFlightTo(victim).events >= 800, {
      timeoutMs: 30_000,
      everyMs: 1,
    });
    await cluster.kill(victim);
    await waitFor(
      'requests to the killed node to settle',
      async () => load.inFlightTo(victim).requests === 0,
      { timeoutMs: 30_000 },
    );
    const cut = load.unanswered.filter((u) => u.node === victim.id);
    t.diagnostic(
      `killed ${victim.id}: ${cut.length} request(s) to it got no answer, ` +
        `of ${cut.reduce((n, u) => n + u.batch.length, 0)} events`,
    );
    assert.ok(
      cut.some((u) => u.batch.length >= 800),
      'the kill cut off a large batch to the node',
    );
  });

  test('the sequencer stays the one it was', async () => {
    const holder = await scene().cluster.soleSequencer(TAKEOVER_BOUND_MS);
    assert.equal(holder.id, sequencerBefore?.id);
  });

  test('ingest goes on through both survivors and the log keeps growing', async () => {
    const s = scene();
    await assertEveryLiveNodeAcknowledges(s, Date.now());
    await assertSequencingContinues(s);
  });

  test('every acknowledged event is sequenced exactly once and seq has no gap', async (t) => {
    await assertEveryAcknowledgedEventSequencedOnce(t, scene());
  });

  test('verify passes on the database', async () => {
    await assertVerifyPasses(scene());
  });

  test('once idle, both survivors serve the same latest checkpoint, at the head', async () => {
    await assertSameLatestCheckpoint(scene());
  });
});

// Last: it takes down the PostgreSQL server the other scenarios share.
describe('PostgreSQL restarted under load through three nodes', {
  skip,
  timeout: SCENARIO_TIMEOUT_MS,
}, () => {
  const scene = useScene();
  /** How long PostgreSQL stays down at least. */
  const DOWN_MS = 3000;
  let upAt = 0;

  test('exactly one of the three nodes reports sequencer:true while all three ingest', {}, async () => {
    await scene().cluster.soleSequencer(5 * LEASE_MS);
  });

  test('while PostgreSQL is down every node answers 503 with Retry-After, and nothing else', async (t) => {
    const { cluster, load } = scene();
    const server = await postgres();
    // A crash, not a clean shutdown: commits in flight are cut off.
    await server.halt('immediate');
    const downAt = Date.now();
    try {
      const gotNotReady = (n: ClusterNode) => load.notReady.some((r) => r.node === n.id && r.at >= downAt);
      await waitIn(
        scene(),
        'every node to answer 503',
        async () => cluster.live().every(gotNotReady),
        30_000,
      );
      const firstNotReady = cluster.live().map((n) => {
        const first = load.notReady.find((r) => r.node === n.id && r.at >= downAt)!;
        return `${n.id} after ${first.at - downAt} ms`;
      });
      t.diagnostic(`first 503 from ${firstNotReady.join(', ')}`);
      for (const n of cluster.live()) {
        const res = await fetch(new URL('/readyz', n.server.url), { signal: AbortSignal.timeout(10_000) });
        await res.body?.cancel();
        assert.equal(res.status, 503, `${n.id} /readyz while PostgreSQL is down`);
      }
      const left = DOWN_MS - (Date.now() - downAt);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    } finally {
      await server.resume();
      upAt = Date.now();
    }
    t.diagnostic(
      `PostgreSQL down (crash recovery included) for ${upAt - downAt} ms: ${load.notReady.filter((r) => r.at >= downAt).length} answers 503`,
    );
    assert.deepEqual(load.unexpected.slice(0, 10), [], 'only 201 and well-formed 503 answers');
    assert.deepEqual(cluster.crashed, [], 'no node exited');
  });

  test('once PostgreSQL is back every node acknowledges again and the log keeps growing', async () => {
    const s = scene();
    await assertEveryLiveNodeAcknowledges(s, upAt);
    await assertSequencingContinues(s);
  });

  test('once PostgreSQL is back exactly one node sequences', async () => {
    await scene().cluster.soleSequencer(TAKEOVER_BOUND_MS);
  });

  test('every acknowledged event is sequenced exactly once and seq has no gap', async (t) => {
    await assertEveryAcknowledgedEventSequencedOnce(t, scene());
  });

  test('verify passes on the database', async () => {
    await assertVerifyPasses(scene());
  });

  test('once idle, every node serves the same latest checkpoint, at the head', async () => {
    await assertSameLatestCheckpoint(scene());
  });
});

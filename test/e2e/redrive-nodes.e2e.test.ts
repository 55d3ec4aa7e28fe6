/**
 * A dead-letter redrive sent to the node that does not deliver the sink, as
 * behind a load balancer: two `trailwarden serve` nodes on one PostgreSQL,
 * a real webhook receiver that refuses one event until told otherwise, the
 * HTTP API and the CLI.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { producerEvent, runCli, waitFor } from '../helpers/cli.js';
import { type ClusterNode, NodeCluster } from '../helpers/cluster-nodes.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../helpers/postgres.js';
import { newSecret, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (install postgresql-15)' : false;
const LEASE_MS = 1500;

describe('dead-letter redrive through either of two nodes', { skip, timeout: 120_000 }, () => {
  let pg: PostgresCluster | undefined;
  let cluster: NodeCluster | undefined;
  let hook: Receiver | undefined;
  after(async () => {
    await cluster?.close();
    await hook?.close();
    await pg?.stop();
  });

  test('through the node that does not deliver the sink: 202 queued, then delivered by the one that does', async () => {
    pg = await startPostgres();
    const store = await pg.createDatabase();
    const c = await NodeCluster.start({ store, count: 2, leaseMs: LEASE_MS }, (created) => {
      cluster = created;
    });
    let refuse = true;
    const secret = newSecret();
    hook = await startReceiver({
      secret,
      respond: (req) =>
        refuse && (req.parsed as Array<{ reason?: string }>).some((e) => e.reason === 'poison')
          ? { status: 400, body: 'bad event: poison' }
          : { status: 204 },
    });
    const [first] = c.nodes as [ClusterNode];
    const created = await c.request(first, 'POST', '/v1/sinks', {
      name: 'hook',
      type: 'webhook',
      url: `${hook.url}/hook`,
      secret,
      allow_private_networks: true,
      start_from: 'beginning',
      batch: { max_events: 1, max_wait_ms: 0 },
    });
    assert.equal(created.status, 201, await created.text());

    /** The sink's dead letters as `node` lists them (undefined while it does not know the sink yet). */
    const letters = async (node: ClusterNode) => {
      const r = await c.request(node, 'GET', '/v1/sinks/hook/dead-letters');
      const body = (await r.json()) as {
        dead_letters?: Array<{ id: number; seq: number; event_id: string }>;
      };
      return r.status === 200 ? body.dead_letters : undefined;
    };
    const post = async (events: unknown[]) => {
      const r = await c.request(first, 'POST', '/v1/events', events);
      assert.equal(r.status, 201, await r.text());
    };
    await post([producerEvent(), producerEvent({ reason: 'poison', event_id: 'evt_poison_1' })]);
    // Both nodes know the sink (the other one within a third of the lease time) and see the letter.
    for (const node of c.nodes) {
      await waitFor('the poison event parked', async () => (await letters(node))?.length === 1, {
        timeoutMs: 20_000,
      });
    }

    // Which node delivers the sink; the redrive goes to the other.
    const status = (await (await c.request(first, 'GET', '/v1/sinks/hook/status')).json()) as {
      node: string | null;
    };
    const holder = c.node(status.node ?? 'none');
    const other = c.nodes.find((n) => n !== holder)!;
    refuse = false;
    const [letter] = (await letters(other))!;
    const before = hook.requests.length;
    const redrive = await c.request(other, 'POST', '/v1/sinks/hook/dead-letters/redrive', {
      ids: [letter!.id],
    });
    assert.equal(redrive.status, 202);
    assert.equal(letter?.event_id, 'evt_poison_1');
    assert.deepEqual(await redrive.json(), {
      results: [{ id: letter!.id, seq: letter!.seq, status: 'queued' }],
    });
    await waitFor('the holder redrove it', async () => (await letters(other))?.length === 0, {
      timeoutMs: 20_000,
    });
    // Delivered once more (the sink also delivers the redrive's own audit event meanwhile).
    assert.deepEqual(
      hook.requests
        .slice(before)
        .flatMap((q) => (q.parsed as Array<{ event_id: string }>).map((e) => e.event_id))
        .filter((id) => id.startsWith('evt_poison')),
      ['evt_poison_1'],
    );

    // The CLI says what happened and exits 0: nothing was refused.
    refuse = true;
    await post([producerEvent({ reason: 'poison', event_id: 'evt_poison_2' })]);
    await waitFor('the second poison event parked', async () => (await letters(first))?.length === 1, {
      timeoutMs: 20_000,
    });
    refuse = false;
    const [second] = (await letters(other))!;
    const cli = await runCli(['sinks', 'redrive', 'hook'], {
      env: { TRAILWARDEN_URL: other.server.url, TRAILWARDEN_KEY: c.adminKey },
    });
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok(
      cli.stdout.includes(`${second!.id}: seq ${second!.seq} queued for the node that delivers the sink`),
      cli.stdout,
    );
    assert.match(cli.stdout, /0 delivered \(and removed\), 1 queued/);
    await waitFor('the holder redrove the second', async () => (await letters(holder))?.length === 0, {
      timeoutMs: 20_000,
    });
    assert.deepEqual(c.crashed, []);
  });
});

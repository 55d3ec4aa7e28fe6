// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${ENV} references in sink settings, meant literally
/**
 * Delivery through the built CLI: `trailwarden serve` with a webhook sink is
 * killed with SIGKILL while a delivery is in flight, restarted on the same
 * data folder, and must deliver every event at least once, first receipts in
 * seq order, resends under the same webhook-id. Also: secrets stay out of the
 * logs and the admin API.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  api,
  producerEvent,
  removeDir,
  type Server,
  startServer,
  tempDir,
  waitFor,
  writeConfig,
} from '../helpers/cli.js';
import { newSecret, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

const TOTAL_EVENTS = 2000;
const EVENTS_PER_REQUEST = 10;
const HEADER_TOKEN = 'sekret-token-123';
const ROUNDS = 2;

interface Receipt {
  n: number;
  webhookId: string;
  seqs: number[];
  eventIds: string[];
}

/** The sink under test: every user.* event to the receiver, 20 per batch, retries quick. */
function sinkConfig(receiver: Receiver, secret: string): Record<string, unknown> {
  return {
    name: 'siem',
    type: 'webhook',
    url: receiver.url,
    secret,
    headers: { authorization: `Bearer ${HEADER_TOKEN}` },
    allow_private_networks: true,
    request_timeout_ms: 5000,
    start_from: 'beginning',
    filter: { include_actions: ['user.*'] },
    batch: { max_events: 20, max_wait_ms: 20 },
    retry: { delays_ms: Array.from({ length: 50 }, () => 50), jitter: 0 },
  };
}

/** Posts user.* events with client-chosen ids, in order, until `count` were answered or `stop` is set. */
async function produce(
  server: Server,
  key: string,
  state: { next: number; unanswered: Array<Array<Record<string, unknown>>> },
  count: number,
  stop: { now: boolean },
): Promise<void> {
  while (!stop.now && state.next < count) {
    const batch = Array.from({ length: EVENTS_PER_REQUEST }, (_, i) =>
      producerEvent({
        event_id: `evt_dlv_${state.next + i}`,
        action: (state.next + i) % 3 === 0 ? 'user.logout' : 'user.login',
        tenant_id: 'acme',
      }),
    );
    try {
      const res = await api(server, key, 'POST', '/v1/events', batch);
      assert.equal(res.status, 201, await res.text());
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      // The server died mid-request: stored or not, unknown; resent unchanged after the restart.
      state.unanswered.push(batch);
      state.next += EVENTS_PER_REQUEST;
      return;
    }
    state.next += EVENTS_PER_REQUEST;
  }
}

async function sinkStatus(server: Server, key: string) {
  const res = await api(server, key, 'GET', '/v1/sinks/siem/status');
  assert.equal(res.status, 200);
  return (await res.json()) as { lag_events: number; state: string; head_seq: number; cursor: number };
}

/** Seqs and ids of the stored user.* events, from the export. */
async function exportUserEvents(server: Server, key: string) {
  const res = await api(server, key, 'GET', '/v1/export?format=jsonl&action=user.*');
  assert.equal(res.status, 200);
  return (await res.text())
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { seq: number; event_id: string });
}

describe('webhook delivery across kill -9 (built CLI)', { timeout: 120_000 }, () => {
  let dir: string;
  const servers: Server[] = [];
  const receivers: Receiver[] = [];

  before(() => {
    dir = tempDir('tw-e2e-delivery-');
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    await Promise.all(receivers.map((r) => r.close()));
    removeDir(dir);
  });

  test('every event arrives at least once, first receipts in seq order, signed, and resends keep their webhook-id', async (t) => {
    const secret = newSecret();
    let inFlight = 0;
    const receiver = await startReceiver({
      secret,
      respond: async () => {
        inFlight++;
        await sleep(30 + Math.floor(Math.random() * 50));
        inFlight--;
        return { status: 204 };
      },
    });
    receivers.push(receiver);
    const config = writeConfig(dir, { audit_reads: false, sinks: [sinkConfig(receiver, secret)] });
    const data = join(dir, 'data');
    const start = async () => {
      const s = await startServer({ dataDir: data, config });
      servers.push(s);
      return s;
    };
    let server = await start();
    const key = server.adminToken!;
    const produced = { next: 0, unanswered: [] as Array<Array<Record<string, unknown>>> };

    for (let round = 0; round < ROUNDS; round++) {
      const stop = { now: false };
      const target = Math.round((TOTAL_EVENTS * (round + 1)) / (ROUNDS + 1));
      const producer = produce(server, key, produced, target, stop);
      // Kill once deliveries are under way and one request is waiting for its answer.
      const before = receiver.requests.length;
      await waitFor(
        'deliveries in flight',
        async () => receiver.requests.length >= before + 5 && inFlight > 0,
        {
          timeoutMs: 30_000,
          everyMs: 1,
        },
      );
      const received = receiver.requests.length;
      assert.deepEqual(await server.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
      stop.now = true;
      await producer;
      const cutOff = receiver.requests[received - 1]!;
      t.diagnostic(
        `round ${round}: killed with ${produced.next} events sent, ${received} requests received, ` +
          `${cutOff.headers['webhook-id']} in flight`,
      );

      server = await start();
      // Requests cut off by the kill may or may not have been stored; resending settles it.
      for (const batch of produced.unanswered.splice(0)) {
        const res = await api(server, key, 'POST', '/v1/events', batch);
        assert.equal(res.status, 201);
        await res.body?.cancel();
      }
      await receiver.waitForRequests(received + 1, 10_000);
      const resent = receiver.requests[received]!;
      assert.equal(
        resent.headers['webhook-id'],
        cutOff.headers['webhook-id'],
        `round ${round}: the batch in flight at the kill is the first one sent after the restart, with the same webhook-id`,
      );
      assert.equal(resent.body, cutOff.body, `round ${round}: … and the same events`);
    }

    await produce(server, key, produced, TOTAL_EVENTS, { now: false });
    await waitFor('the sink to catch up', async () => (await sinkStatus(server, key)).lag_events === 0, {
      timeoutMs: 60_000,
      everyMs: 100,
    });
    const status = await sinkStatus(server, key);
    assert.equal(status.state, 'healthy');

    const stored = await exportUserEvents(server, key);
    assert.ok(stored.length >= TOTAL_EVENTS, `${stored.length} user.* events stored`);
    const receipts: Receipt[] = receiver.requests.map((q, i) => {
      const events = q.parsed as Array<{ seq: number; event_id: string }>;
      return {
        n: i + 1,
        webhookId: String(q.headers['webhook-id']),
        seqs: events.map((e) => e.seq),
        eventIds: events.map((e) => e.event_id),
      };
    });
    const unverified = receiver.requests.filter((q) => !q.verified).map((q) => q.verifyError);
    assert.deepEqual(unverified, [], 'every request carries a valid Standard Webhooks signature');

    const firstId = new Map<number, string>();
    const firsts: number[] = [];
    const mismatched: string[] = [];
    let duplicates = 0;
    for (const r of receipts) {
      for (const seq of r.seqs) {
        const earlier = firstId.get(seq);
        if (earlier === undefined) {
          firstId.set(seq, r.webhookId);
          firsts.push(seq);
        } else {
          duplicates++;
          if (earlier !== r.webhookId)
            mismatched.push(`seq ${seq}: ${earlier} then ${r.webhookId} (request ${r.n})`);
        }
      }
    }
    t.diagnostic(`${receipts.length} requests, ${firsts.length} events, ${duplicates} received again`);
    assert.deepEqual(
      firsts,
      stored.map((e) => e.seq),
      'every stored user.* event arrived, and first receipts are in seq order',
    );
    const storedIds = new Map(stored.map((e) => [e.seq, e.event_id]));
    const wrongIds = receipts.flatMap((r) => r.seqs.filter((seq, i) => storedIds.get(seq) !== r.eventIds[i]));
    assert.deepEqual(wrongIds, [], 'each seq carries the event stored under it');
    assert.ok(duplicates >= ROUNDS, 'the batches cut off by the kills were delivered again');
    assert.deepEqual(mismatched, [], 'a seq received again came with the webhook-id of its earlier delivery');
  });

  test('neither the logs nor the admin API ever show the webhook secret or a header token', async () => {
    const secret = newSecret();
    const apiSecret = newSecret();
    let calls = 0;
    // A few failures first, so retries and errors are logged too.
    const receiver = await startReceiver({
      secret,
      respond: () => (++calls <= 3 ? { status: 500, body: 'try again' } : { status: 204 }),
    });
    receivers.push(receiver);
    const sub = join(dir, 'secrets');
    const config = writeConfig(tempDirIn(sub), { audit_reads: false, sinks: [sinkConfig(receiver, secret)] });
    const server = await startServer({
      dataDir: join(sub, 'data'),
      config,
      env: { TRAILWARDEN_LOG_LEVEL: 'trace', API_HOOK_SECRET: apiSecret },
    });
    servers.push(server);
    const key = server.adminToken!;

    const created = await api(server, key, 'POST', '/v1/sinks', {
      ...sinkConfig(receiver, apiSecret),
      name: 'from-api',
      headers: { authorization: `Bearer ${HEADER_TOKEN}-api` },
    });
    assert.equal(created.status, 201);
    const createdText = await created.text();
    // The API never reads the server's environment: a reference is refused, naming only the field.
    const byReference = await api(server, key, 'POST', '/v1/sinks', {
      ...sinkConfig(receiver, apiSecret),
      name: 'by-reference',
      secret: '$' + '{API_HOOK_SECRET}',
    });
    assert.equal(byReference.status, 422);
    const byReferenceText = await byReference.text();
    const invalid = await api(server, key, 'POST', '/v1/sinks', {
      ...sinkConfig(receiver, apiSecret),
      name: 'invalid',
      url: 'ftp://nowhere',
    });
    assert.equal(invalid.status, 422);
    const invalidText = await invalid.text();

    const events = Array.from({ length: 30 }, (_, i) => producerEvent({ event_id: `evt_secret_${i}` }));
    assert.equal((await api(server, key, 'POST', '/v1/events', events)).status, 201);
    await waitFor(
      'the config sink to deliver',
      async () => (await sinkStatus(server, key)).lag_events === 0,
      {
        timeoutMs: 20_000,
      },
    );

    const list = (await (await api(server, key, 'GET', '/v1/sinks')).json()) as {
      sinks: Array<{ name: string; secret: string; headers: Record<string, string> }>;
    };
    const byName = new Map(list.sinks.map((s) => [s.name, s]));
    assert.deepEqual([...byName.keys()].sort(), ['from-api', 'siem']);
    for (const name of ['siem', 'from-api']) {
      assert.equal(byName.get(name)!.secret, '********', name);
      assert.deepEqual(byName.get(name)!.headers, { authorization: '********' }, name);
      const one = (await (await api(server, key, 'GET', `/v1/sinks/${name}`)).json()) as {
        secret: string;
        headers: Record<string, string>;
      };
      assert.equal(one.secret, '********');
      assert.deepEqual(one.headers, { authorization: '********' });
    }
    await server.stop('SIGTERM');
    const output = [
      server.stdout(),
      server.stderr(),
      createdText,
      byReferenceText,
      invalidText,
      JSON.stringify(list),
    ].join('\n');
    assert.ok(server.stdout().length > 0, 'the server logged something');
    for (const s of [
      secret,
      apiSecret,
      HEADER_TOKEN,
      secret.slice('whsec_'.length),
      apiSecret.slice('whsec_'.length),
    ]) {
      assert.ok(!output.includes(s), `${s.slice(0, 12)}… appears in the output`);
    }
  });
});

function tempDirIn(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

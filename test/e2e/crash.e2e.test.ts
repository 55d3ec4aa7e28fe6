import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  api,
  producerEvent,
  removeDir,
  runCli,
  type Server,
  startServer,
  tempDir,
  writeConfig,
} from '../helpers/cli.js';

const PRODUCERS = 4;
/** When each round's SIGKILL lands, in ms after the producers started. */
const KILL_AFTER_MS = [1500, 700, 1100];

interface Produced {
  /** Event ids whose request was answered 201. */
  acked: Set<string>;
  /** Batches whose request got no answer (the server died): stored or not, unknown. */
  unanswered: Array<Array<Record<string, unknown>>>;
  /** Requests answered with anything but 201 (none expected). */
  refused: string[];
}

/** Posts batches of 1–20 events with client-chosen ids until `stop` is set or the server dies. */
async function produce(server: Server, key: string, name: string, out: Produced, stop: { now: boolean }) {
  for (let n = 0; !stop.now; n++) {
    const batch = Array.from({ length: 1 + Math.floor(Math.random() * 20) }, (_, i) =>
      producerEvent({
        event_id: `evt_crash_${name}_${n}_${i}`,
        tenant_id: 'acme',
        reason: `${name}/${n}/${i}`,
      }),
    );
    let res: Response;
    try {
      res = await api(server, key, 'POST', '/v1/events', batch);
    } catch {
      out.unanswered.push(batch);
      return; // the server is gone
    }
    if (res.status === 201) {
      await res.body?.cancel();
      for (const e of batch) out.acked.add(e.event_id as string);
    } else {
      out.refused.push(`${res.status} ${await res.text()}`);
    }
  }
}

/** Every event of the log, through the export, and the head the export snapshot stopped at. */
async function exportAll(server: Server, key: string) {
  const res = await api(server, key, 'GET', '/v1/export?format=jsonl');
  assert.equal(res.status, 200);
  const head = Number(res.headers.get('x-trailwarden-head-seq'));
  const events = (await res.text())
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { seq: number; event_id: string });
  return { head, events };
}

describe('crash safety (built CLI, SIGKILL mid-ingest)', () => {
  let dir: string;
  let config: string;
  const servers: Server[] = [];

  before(() => {
    dir = tempDir('tw-e2e-crash-');
    config = writeConfig(dir, { checkpoints: { every_events: 200, every_ms: 200 } });
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    removeDir(dir);
  });

  test('every acknowledged event survives repeated kill -9, seq stays gap-free, resends never conflict, and verify passes', async (t) => {
    const data = join(dir, 'data');
    const start = async () => {
      const s = await startServer({ dataDir: data, config });
      servers.push(s);
      return s;
    };
    let server = await start();
    const key = server.adminToken!;
    const acked = new Set<string>();

    for (const [round, killAfter] of KILL_AFTER_MS.entries()) {
      const produced: Produced = { acked: new Set(), unanswered: [], refused: [] };
      const stop = { now: false };
      const producers = Array.from({ length: PRODUCERS }, (_, p) =>
        produce(server, key, `r${round}p${p}`, produced, stop),
      );
      await new Promise((r) => setTimeout(r, killAfter));
      assert.deepEqual(await server.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
      stop.now = true;
      await Promise.all(producers);
      assert.deepEqual(produced.refused, [], 'no request was refused before the kill');
      assert.ok(produced.acked.size > 0, `round ${round}: some events were acknowledged before the kill`);
      for (const id of produced.acked) acked.add(id);

      // Straight after the crash, before any restart or new checkpoint.
      const crashed = await runCli(['verify', '--data-dir', data]);
      assert.equal(crashed.code, 0, `round ${round}: ${crashed.stdout}${crashed.stderr}`);
      assert.match(crashed.stdout, /^OK: /m);

      server = await start();
      assert.equal(server.adminToken, undefined);
      const { head, events } = await exportAll(server, key);
      const unansweredIds = produced.unanswered.flat().map((e) => e.event_id as string);
      const storedIds = new Set(events.map((e) => e.event_id));
      t.diagnostic(
        `round ${round}: killed after ${killAfter} ms; ${produced.acked.size} events acknowledged, head ${head}, ` +
          `${unansweredIds.length} unanswered of which ${unansweredIds.filter((id) => storedIds.has(id)).length} stored`,
      );
      assert.equal(events.length, head);
      const gaps = events.filter((e, i) => e.seq !== i + 1).map((e) => e.seq);
      assert.deepEqual(gaps.slice(0, 5), [], `round ${round}: seq runs from 1 to the head without gaps`);
      const lost = [...acked].filter((id) => !storedIds.has(id));
      assert.deepEqual(lost, [], `round ${round}: acknowledged events are all stored`);

      // Requests cut off by the kill may or may not have been stored: resending settles it, without conflict.
      for (const batch of produced.unanswered) {
        const res = await api(server, key, 'POST', '/v1/events', batch);
        assert.equal(res.status, 201, `round ${round}: a resend is accepted: ${res.status}`);
        const answer = (await res.json()) as { events: Array<{ event_id: string; status: string }> };
        for (const e of answer.events) {
          assert.ok(e.status === 'created' || e.status === 'duplicate', e.status);
          acked.add(e.event_id);
        }
      }
    }

    const { events } = await exportAll(server, key);
    const stored = new Set(events.map((e) => e.event_id));
    assert.deepEqual(
      [...acked].filter((id) => !stored.has(id)),
      [],
    );
    assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    const final = await runCli(['verify', '--data-dir', data]);
    assert.equal(final.code, 0, final.stdout + final.stderr);
    // A clean stop signs a last checkpoint, so no event is left unvouched for.
    assert.match(
      final.stdout,
      /^OK: \d+ events, \d+ signed checkpoint\(s\) verified; tree size \d+, root \S+$/m,
    );
  });
});

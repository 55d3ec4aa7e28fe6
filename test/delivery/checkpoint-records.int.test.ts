/**
 * `send_checkpoints` (issue 14, item 4): a sink also delivers each new signed
 * checkpoint as a record of its own, after every event it covers, so the
 * receiver (a SIEM) keeps witnesses a verifier can hold the log to. A real
 * receiver verifies every request with the official `standardwebhooks`.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { parseVerifierKey, verifyCheckpoint } from '../../src/log/checkpoint.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { until } from '../helpers/until.js';
import {
  newSecret,
  type Receiver,
  type StartReceiverOptions,
  startReceiver,
} from '../helpers/webhook-receiver.js';

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

interface Received {
  seq?: number;
  action: string;
  event_id: string;
  metadata?: { tree_size: number; root_hash: string; note: string };
}

/** Every record received, in arrival order. */
function records(r: Receiver): Received[] {
  return r.requests.flatMap((q) => q.parsed as Received[]);
}

async function harness(
  sink: Record<string, unknown>,
  respond?: StartReceiverOptions['respond'],
): Promise<{ t: TestApp; r: Receiver }> {
  const secret = newSecret();
  const r = await startReceiver(respond === undefined ? { secret } : { secret, respond });
  open.push(() => r.close());
  const t = await testApp({
    audit_reads: false,
    checkpoints: { every_events: 5, every_ms: 100 },
    sinks: [
      {
        name: 'siem',
        type: 'webhook',
        url: `${r.url}/siem`,
        secret,
        allow_private_networks: true,
        start_from: 'beginning',
        batch: { max_events: 4, max_wait_ms: 0 },
        ...sink,
      },
    ],
  });
  open.push(() => t.close());
  return { t, r };
}

describe('send_checkpoints', () => {
  test('each new signed checkpoint follows the events it covers, as a record a verifier accepts', async () => {
    const { t, r } = await harness({ send_checkpoints: true });
    for (let i = 0; i < 3; i++) {
      await t.app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: { authorization: t.admin },
        payload: Array.from({ length: 6 }, () => rawEvent()),
      });
    }
    await until(() => {
      const cps = records(r).filter((e) => e.action === 'log.checkpoint.signed');
      return cps.at(-1)?.metadata?.tree_size === 18;
    }, 'a checkpoint over all 18 events');

    const key = await t.app.inject({
      method: 'GET',
      url: '/v1/checkpoints/key',
      headers: { authorization: t.admin },
    });
    const verifier = parseVerifierKey(key.json().verifier_key);
    let lastSeq = 0;
    let lastSize = 0;
    for (const e of records(r)) {
      if (e.action !== 'log.checkpoint.signed') {
        lastSeq = Math.max(lastSeq, e.seq ?? 0);
        continue;
      }
      const cp = e.metadata!;
      assert.ok(cp.tree_size <= lastSeq, `checkpoint ${cp.tree_size} came before event ${cp.tree_size}`);
      assert.ok(cp.tree_size > lastSize, 'checkpoints arrive in growing order, each once');
      lastSize = cp.tree_size;
      assert.equal(e.seq, undefined, 'a checkpoint record is not an event of the log');
      const checked = verifyCheckpoint(cp.note, verifier);
      assert.ok(checked.ok, JSON.stringify(checked));
      assert.equal(checked.checkpoint.treeSize, cp.tree_size);
      assert.equal(checked.checkpoint.rootHash.toString('base64'), cp.root_hash);
    }
    assert.ok(r.requests.every((q) => q.verified));
  });

  test('a sink catching up gets every checkpoint signed while it was behind, each after its events', async () => {
    let refusing = true;
    const { t, r } = await harness(
      { send_checkpoints: true, retry: { backoff: { initial_ms: 50, max_ms: 50 } } },
      () => (refusing ? { status: 503 } : { status: 204 }),
    );
    for (let i = 0; i < 4; i++) {
      await t.app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: { authorization: t.admin },
        payload: Array.from({ length: 6 }, () => rawEvent()),
      });
      await until(
        async () => (await t.parts.ctx.store.latestCheckpoint())?.treeSize === 6 * (i + 1),
        `a checkpoint over ${6 * (i + 1)} events`,
      );
    }
    const signed = (await t.parts.ctx.store.listCheckpoints({ limit: 100 })).map((c) => c.treeSize);
    assert.ok(signed.length >= 4, `checkpoints signed while the receiver refused: ${signed}`);
    refusing = false;
    const received = () =>
      records(r)
        .filter((e) => e.action === 'log.checkpoint.signed')
        .map((e) => e.metadata!.tree_size);
    await until(() => received().at(-1) === signed.at(-1), 'the last checkpoint');
    assert.deepEqual(received(), signed, 'every checkpoint, in order, once');
    let lastSeq = 0;
    for (const e of records(r)) {
      if (e.action !== 'log.checkpoint.signed') lastSeq = Math.max(lastSeq, e.seq ?? 0);
      else
        assert.ok(e.metadata!.tree_size <= lastSeq, `checkpoint ${e.metadata!.tree_size} before its events`);
    }
  });

  test('without the option no checkpoint record is sent', async () => {
    const { t, r } = await harness({});
    await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: t.admin },
      payload: Array.from({ length: 6 }, () => rawEvent()),
    });
    await until(() => records(r).length >= 6, 'the events');
    await until(async () => (await t.parts.ctx.store.latestCheckpoint())?.treeSize === 6, 'a checkpoint');
    await new Promise((res) => setTimeout(res, 1200));
    assert.ok(records(r).every((e) => e.action !== 'log.checkpoint.signed'));
  });
});

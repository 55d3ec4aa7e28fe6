import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { leafHashOf } from '../../src/event/canonical.js';
import type { StoredEvent } from '../../src/event/event.js';
import type { PrunedLeaf } from '../../src/store/retention-store.js';
import type { LogEntry } from '../../src/verify/log-entries.js';
import { type LogReader, logEntries } from '../../src/verify/store-source.js';

function event(seq: number, action = 'user.login'): StoredEvent {
  const e: Omit<StoredEvent, 'leaf_hash'> = {
    seq,
    event_id: `evt_${seq}`,
    timestamp: '2026-03-15T08:00:00.000Z',
    received_at: '2026-03-15T08:00:01.000Z',
    tenant_id: 'acme',
    actor: { type: 'user', id: 'usr_1' },
    action,
    outcome: 'success',
  };
  return { ...e, leaf_hash: leafHashOf(e).toString('base64') };
}

function leafOf(e: StoredEvent): PrunedLeaf {
  return { seq: e.seq, tenantId: e.tenant_id, leafHash: Buffer.from(e.leaf_hash, 'base64'), runId: 'prn_1' };
}

/** A store as arrays; `readKept` and `readPruned` behave as the store contract says. */
function reader(kept: StoredEvent[], pruned: PrunedLeaf[], reads: string[] = []): LogReader {
  return {
    readKept: async (after, limit) => {
      reads.push(`kept>${after}`);
      return kept.filter((e) => e.seq > after).slice(0, limit);
    },
    readPruned: async (after, limit) => {
      reads.push(`pruned(${after},${after + limit}]`);
      return pruned.filter((l) => l.seq > after && l.seq <= after + limit);
    },
    prunedMaxSeq: async () => pruned.at(-1)?.seq ?? 0,
  };
}

async function seqsOf(entries: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of entries) out.push(e.kind === 'event' ? `e${e.event.seq}` : `p${e.leaf.seq}`);
  return out;
}

const all = Array.from({ length: 20 }, (_, i) => event(i + 1));
const isPruned = (s: number) => (s >= 2 && s <= 9) || s === 14;

describe('logEntries merges kept events and pruned leaves in seq order', () => {
  test('across pages, with a pruned stretch longer than a page, every seq comes once and in order', async () => {
    const kept = all.filter((e) => !isPruned(e.seq));
    const pruned = all.filter((e) => isPruned(e.seq)).map(leafOf);
    const got = await seqsOf(logEntries(reader(kept, pruned), 3));
    assert.deepEqual(
      got,
      all.map((e) => (isPruned(e.seq) ? `p${e.seq}` : `e${e.seq}`)),
    );
  });

  test('pruned leaves past the last kept event are read too', async () => {
    const got = await seqsOf(logEntries(reader(all.slice(0, 4), all.slice(4, 7).map(leafOf)), 3));
    assert.deepEqual(got, ['e1', 'e2', 'e3', 'e4', 'p5', 'p6', 'p7']);
  });

  test("each page's pruned leaves are read after its kept events, so a row pruned between the reads is seen (once, as pruned)", async () => {
    const reads: string[] = [];
    // Seq 3 was still kept when the events were read and pruned by the time the leaves were.
    const got = await seqsOf(logEntries(reader(all.slice(0, 5), [leafOf(all[2]!)], reads), 10));
    assert.deepEqual(got, ['e1', 'e2', 'p3', 'e4', 'e5']);
    assert.deepEqual(reads, ['kept>0', 'pruned(0,5]']);
  });

  test('a kept row at a pruned seq with other content is kept beside the leaf, for verify to report', async () => {
    const forged = event(3, 'user.logout');
    const got = await seqsOf(logEntries(reader([all[0]!, all[1]!, forged, all[3]!], [leafOf(all[2]!)]), 10));
    assert.deepEqual(got, ['e1', 'e2', 'p3', 'e3', 'e4']);
  });
});

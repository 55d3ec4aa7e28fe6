import type { CheckpointRecord } from '../store/store.js';
import type { Encoder } from './formats/format.js';
import type { OutgoingEvent } from './sink.js';

/** The action of the records `send_checkpoints` adds (in the catalog, so formats map it). */
export const CHECKPOINT_ACTION = 'log.checkpoint.signed';

/**
 * A signed checkpoint as an event-shaped record, so every format carries it:
 * `metadata` holds the tree size, root hash and the signed note itself, which
 * `trailwarden verify --trusted-checkpoint` takes. Not an event of the log:
 * it has no `seq` or `leaf_hash`.
 */
export function checkpointRecord(cp: CheckpointRecord, tenantId?: string): Record<string, unknown> {
  const origin = cp.note.slice(0, cp.note.indexOf('\n'));
  return {
    event_id: `checkpoint_${cp.treeSize}`,
    timestamp: cp.issuedAt,
    received_at: cp.issuedAt,
    ...(tenantId === undefined ? {} : { tenant_id: tenantId }),
    actor: { type: 'system', id: 'trailwarden', name: 'Trailwarden' },
    action: CHECKPOINT_ACTION,
    resource: { type: 'log', id: origin, name: origin },
    outcome: 'success',
    metadata: { tree_size: cp.treeSize, root_hash: cp.rootHash, note: cp.note },
  };
}

/** The checkpoint record as a sink sends it, under the checkpoint's tree size. */
export function checkpointEvent(
  cp: CheckpointRecord,
  tenantId: string | undefined,
  encode: Encoder,
): OutgoingEvent {
  const record = checkpointRecord(cp, tenantId);
  return {
    seq: cp.treeSize,
    eventId: String(record['event_id']),
    tenantId: String(record['tenant_id'] ?? ''),
    action: CHECKPOINT_ACTION,
    receivedAt: cp.issuedAt,
    timestamp: cp.issuedAt,
    event: record,
    text: encode(record),
  };
}

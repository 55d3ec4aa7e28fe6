import type { Pool } from 'pg';
import type { RetentionStore } from '../retention-store.js';

/** Placeholder until the PostgreSQL retention store lands (next commit): every call fails. */
export function postgresRetentionStore(_pool: Pool): RetentionStore {
  const missing = (): Promise<never> =>
    Promise.reject(new Error('retention is not implemented on PostgreSQL yet'));
  return {
    listPolicies: missing,
    getPolicy: missing,
    putPolicy: missing,
    deletePolicy: missing,
    createHold: missing,
    getHold: missing,
    listHolds: missing,
    liftHold: missing,
    lastSeqReceivedBefore: missing,
    pruneCandidates: missing,
    pruneEvents: missing,
    reclaimSpace: missing,
    prunedLeaves: missing,
    prunedByRun: missing,
    prunedTotals: missing,
    createPruneRun: missing,
    updatePruneRun: missing,
    getPruneRun: missing,
    listPruneRuns: missing,
    findSubject: missing,
    createErasure: missing,
    updateErasure: missing,
    getErasure: missing,
    listErasures: missing,
    unfinishedErasures: missing,
    redactEvents: missing,
  };
}

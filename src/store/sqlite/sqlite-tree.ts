import type { Database } from 'better-sqlite3';
import { TrailwardenError } from '../../errors.js';
import type { MerkleFrontier } from '../merkle/frontier.js';
import { consistencyProof, inclusionProof, type NodeSource, rootAt } from '../merkle/proofs.js';
import { storedNodes } from '../merkle/stored-nodes.js';
import type { TreeReader } from '../store.js';

/** What the tree reader needs from its store, read at each call. */
export interface SqliteTreeState {
  /** The in-memory right edge of the tree, replaced after every commit. */
  frontier(): MerkleFrontier;
  /** A read-only store never loads its tree. */
  readOnly(): boolean;
}

/**
 * The {@link TreeReader} of a SQLite store: sizes are checked against the
 * in-memory frontier, the newest root comes from it, and older roots and
 * proofs read nodes through this thread's own connection.
 */
export function sqliteTree(db: Database, state: SqliteTreeState): TreeReader {
  const nodes = sqliteNodes(db);
  const checkTreeSize = (treeSize: number): void => {
    if (state.readOnly()) throw new Error('the tree is not loaded in a read-only store');
    const size = state.frontier().size;
    if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > size) {
      throw new TrailwardenError(
        'TW_ERR_TREE_SIZE',
        `tree size ${treeSize} is out of range: the log holds ${size} events`,
      );
    }
  };
  return {
    size: async () => state.frontier().size,
    rootAt: async (treeSize) => {
      checkTreeSize(treeSize);
      const frontier = state.frontier();
      return treeSize === frontier.size ? frontier.root() : rootAt(nodes, treeSize);
    },
    inclusionProof: async (leafIndex, treeSize) => {
      checkTreeSize(treeSize);
      return inclusionProof(nodes, leafIndex, treeSize);
    },
    consistencyProof: async (from, to) => {
      checkTreeSize(to);
      return consistencyProof(nodes, from, to);
    },
  };
}

/**
 * Leaf hashes of seqs [?1, ?2] then [?3, ?4] (the same range twice): kept
 * events and pruned ones, whose leaves stay in `pruned_leaves`, so roots and
 * proofs do not change when events are pruned.
 */
export const LEAVES_SQL = `SELECT leaf_hash FROM (
    SELECT seq, leaf_hash FROM events WHERE seq BETWEEN ? AND ?
    UNION ALL
    SELECT seq, leaf_hash FROM pruned_leaves WHERE seq BETWEEN ? AND ?
  ) ORDER BY seq`;

/** Merkle nodes as stored: leaves in `events.leaf_hash` and `pruned_leaves`, inner nodes in `tree_nodes`. */
function sqliteNodes(db: Database): NodeSource {
  const leaves = db.prepare(LEAVES_SQL).pluck();
  const inner = db.prepare('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?').pluck();
  return storedNodes({
    leaves: (from, count) => leaves.all(from + 1, from + count, from + 1, from + count) as Buffer[],
    inner: (level, index) => inner.get(level, index) as Buffer | undefined,
  });
}

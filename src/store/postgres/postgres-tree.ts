import type { Pool, PoolClient } from 'pg';
import { TrailwardenError } from '../../errors.js';
import { MerkleFrontier } from '../merkle/frontier.js';
import { consistencyProof, inclusionProof, type NodeSource, rootAt } from '../merkle/proofs.js';
import { storedNodes } from '../merkle/stored-nodes.js';
import type { TreeReader } from '../store.js';

/**
 * The {@link TreeReader} of a PostgreSQL store: sizes are checked against
 * the database's head (`headSeq`), so the tree covers other instances'
 * appends too; roots and proofs read nodes through the pool.
 *
 * `committed` is the tree as this instance's last sequencing commit left
 * it, while it sequences: the head then, and its root needs no reads. The
 * checkpointer asks for exactly that (about 20 times a second under load,
 * each otherwise a head read and half a dozen node reads).
 */
export function postgresTree(
  pool: Pool,
  headSeq: () => Promise<number>,
  committed: () => MerkleFrontier | undefined,
): TreeReader {
  const nodes = nodesOf(pool);
  const checkTreeSize = async (treeSize: number): Promise<void> => {
    const size = await headSeq();
    if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > size) {
      throw new TrailwardenError(
        'TW_ERR_TREE_SIZE',
        `tree size ${treeSize} is out of range: the log holds ${size} events`,
      );
    }
  };
  return {
    size: async () => committed()?.size ?? headSeq(),
    rootAt: async (treeSize) => {
      const known = committed();
      // A size this instance committed is in range, and its root is the frontier's.
      if (known !== undefined && known.size === treeSize) return known.root();
      await checkTreeSize(treeSize);
      return rootAt(nodes, treeSize);
    },
    inclusionProof: async (leafIndex, treeSize) => {
      await checkTreeSize(treeSize);
      return inclusionProof(nodes, leafIndex, treeSize);
    },
    consistencyProof: async (from, to) => {
      await checkTreeSize(to);
      return consistencyProof(nodes, from, to);
    },
  };
}

/**
 * Merkle nodes as stored: leaves in `events.leaf_hash` and, for pruned
 * events, in `pruned_leaves` (so pruning changes no root or proof); inner
 * nodes in `tree_nodes`.
 */
function nodesOf(db: Pool | PoolClient): NodeSource {
  return storedNodes({
    leaves: async (from, count) =>
      (
        await db.query<{ hash: Buffer }>(
          `SELECT hash FROM (
             SELECT seq, leaf_hash AS hash FROM events WHERE seq BETWEEN $1 AND $2
             UNION ALL
             SELECT seq, leaf_hash AS hash FROM pruned_leaves WHERE seq BETWEEN $1 AND $2
           ) l ORDER BY seq`,
          [from + 1, from + count],
        )
      ).rows.map((r) => r.hash),
    inner: async (level, index) =>
      (
        await db.query<{ hash: Buffer }>('SELECT hash FROM tree_nodes WHERE level = $1 AND idx = $2', [
          level,
          index,
        ])
      ).rows[0]?.hash,
  });
}

/** The tree's right edge as the database holds it now. */
export async function loadFrontier(client: PoolClient): Promise<MerkleFrontier> {
  // One client runs one query at a time: the frontier's reads go one after another.
  let tail: Promise<unknown> = Promise.resolve();
  const nodes = nodesOf(client);
  const node = (level: number, index: number): Promise<Buffer> => {
    const read = tail.then(() => nodes.node(level, index));
    tail = read.catch(() => undefined);
    return read;
  };
  return MerkleFrontier.load(await headOn(client), { node });
}

/** The highest `seq` sequenced (0 for an empty log), as `log_head` holds it. */
export async function headOn(db: Pool | PoolClient): Promise<number> {
  const r = await db.query<{ size: string }>('SELECT size FROM log_head');
  return Number(r.rows[0]?.size ?? 0);
}

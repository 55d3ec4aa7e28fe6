import type { Pool, PoolClient } from 'pg';
import { TrailwardenError } from '../../errors.js';
import { MerkleFrontier } from '../merkle/frontier.js';
import { consistencyProof, inclusionProof, type NodeSource, rootAt } from '../merkle/proofs.js';
import type { TreeReader } from '../store.js';

/**
 * The {@link TreeReader} of a PostgreSQL store: sizes are checked against
 * the database's head (`headSeq`), so the tree covers other instances'
 * appends too; roots and proofs read nodes through the pool.
 */
export function postgresTree(pool: Pool, headSeq: () => Promise<number>): TreeReader {
  const nodes: NodeSource = { node: (level, index) => readNode(pool, level, index) };
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
    size: () => headSeq(),
    rootAt: async (treeSize) => {
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

/** A Merkle node as stored: a leaf in `events.leaf_hash`, an inner node in `tree_nodes`. */
async function readNode(db: Pool | PoolClient, level: number, index: number): Promise<Buffer> {
  const r =
    level === 0
      ? await db.query<{ hash: Buffer }>('SELECT leaf_hash AS hash FROM events WHERE seq = $1', [index + 1])
      : await db.query<{ hash: Buffer }>('SELECT hash FROM tree_nodes WHERE level = $1 AND idx = $2', [
          level,
          index,
        ]);
  const hash = r.rows[0]?.hash;
  if (hash === undefined) throw new Error(`merkle node (${level}, ${index}) is missing from the store`);
  return hash;
}

/** The tree's right edge as the database holds it now. */
export async function loadFrontier(client: PoolClient): Promise<MerkleFrontier> {
  // One client runs one query at a time: the frontier's reads go one after another.
  let tail: Promise<unknown> = Promise.resolve();
  const node = (level: number, index: number): Promise<Buffer> => {
    const read = tail.then(() => readNode(client, level, index));
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

import { hashChildren } from './hash.js';
import type { NodeSource } from './proofs.js';

/**
 * Inner nodes below this level are not stored. Every append completes one
 * inner node on average, half of them at level 1 and a quarter at level 2;
 * storing them cost PostgreSQL ~9 % of its CPU per event (a `tree_nodes`
 * row and index entry each). A node of level 1 or 2 is the root of 2 or 4
 * leaves, computed from those leaves (one range read) when a root or proof
 * needs it. Databases written before keep their low nodes; they are not read.
 */
export const LOWEST_STORED_LEVEL = 3;

/** Whether a store persists this node of `MerkleFrontier.append` in `tree_nodes` (leaves live with their events). */
export function isStoredNode(level: number): boolean {
  return level >= LOWEST_STORED_LEVEL;
}

/** How a backend reads the tree: leaf hashes by index range, stored inner nodes by position. */
export interface TreeStorage {
  /** Leaf hashes of leaf indexes `from` … `from + count - 1` (seq − 1), in order; fewer if some are missing. */
  leaves(from: number, count: number): Promise<Buffer[]> | Buffer[];
  /** A stored inner node (level ≥ LOWEST_STORED_LEVEL), or undefined. */
  inner(level: number, index: number): Promise<Buffer | undefined> | Buffer | undefined;
}

/** The {@link NodeSource} of a store: stored nodes read, the lowest inner levels computed from their leaves. */
export function storedNodes(storage: TreeStorage): NodeSource {
  return {
    node: async (level, index) => {
      let hash: Buffer | undefined;
      if (level < LOWEST_STORED_LEVEL) {
        const width = 2 ** level;
        const leaves = await storage.leaves(index * width, width);
        if (leaves.length === width) hash = perfectRoot(leaves);
      } else {
        hash = await storage.inner(level, index);
      }
      if (hash === undefined) throw new Error(`merkle node (${level}, ${index}) is missing from the store`);
      return hash;
    },
  };
}

/** The root of a perfect subtree from its 2^k leaf hashes, in order (RFC 9162 §2.1.1). */
export function perfectRoot(leaves: Buffer[]): Buffer {
  let row = leaves;
  while (row.length > 1) {
    const up: Buffer[] = [];
    for (let i = 0; i < row.length; i += 2) up.push(hashChildren(row[i]!, row[i + 1]!));
    row = up;
  }
  const root = row[0];
  if (root === undefined) throw new Error('a subtree has at least one leaf');
  return root;
}

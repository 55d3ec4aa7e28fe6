import { EMPTY_ROOT, hashChildren } from './hash.js';
import type { NodeSource } from './proofs.js';

/** A perfect-subtree hash: 2^level leaves starting at leaf index·2^level. */
export interface TreeNode {
  level: number;
  index: number;
  hash: Buffer;
}

/**
 * The right edge of the tree: one perfect subtree per set bit of `size`,
 * largest (leftmost) first. The single writer appends through it and persists
 * the nodes each append completes; the verifier uses it alone to rebuild a
 * tree from leaves in O(log n) memory.
 */
export class MerkleFrontier {
  #size = 0;
  readonly #edge: TreeNode[] = [];

  /** Number of leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /** The perfect subtrees that make up the tree now, largest first (do not mutate). */
  get edge(): readonly TreeNode[] {
    return this.#edge;
  }

  /**
   * Adds one leaf hash and returns every perfect-subtree node this append
   * completed, the leaf itself (level 0) first, so a store can persist them.
   */
  append(leafHash: Buffer): TreeNode[] {
    let node: TreeNode = { level: 0, index: this.#size, hash: leafHash };
    const completed = [node];
    let top = this.#edge[this.#edge.length - 1];
    // Two neighbours of equal height merge, like a carry in binary addition.
    while (top !== undefined && top.level === node.level) {
      this.#edge.pop();
      node = { level: node.level + 1, index: top.index / 2, hash: hashChildren(top.hash, node.hash) };
      completed.push(node);
      top = this.#edge[this.#edge.length - 1];
    }
    this.#edge.push(node);
    this.#size += 1;
    return completed;
  }

  /** RFC 9162 MTH of all leaves appended so far. */
  root(): Buffer {
    const last = this.#edge[this.#edge.length - 1];
    if (last === undefined) return Buffer.from(EMPTY_ROOT);
    let hash = last.hash;
    for (let i = this.#edge.length - 2; i >= 0; i--) hash = hashChildren(this.#edge[i]!.hash, hash);
    return hash;
  }

  /** An independent copy, so a writer can stage appends and drop them if its commit fails. */
  clone(): MerkleFrontier {
    const copy = new MerkleFrontier();
    copy.#size = this.#size;
    // Nodes are never mutated once made, so sharing them is safe.
    copy.#edge.push(...this.#edge);
    return copy;
  }

  /** Rebuilds the frontier of a tree of `size` leaves from persisted nodes (one read per set bit). */
  static async load(size: number, src: NodeSource): Promise<MerkleFrontier> {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`tree size must be a non-negative safe integer, got ${size}`);
    }
    const wanted: Array<{ level: number; index: number }> = [];
    let offset = 0;
    for (let level = Math.floor(Math.log2(size || 1)) + 1; level >= 0; level--) {
      const width = 2 ** level;
      if (Math.floor(size / width) % 2 === 1) {
        wanted.push({ level, index: offset / width });
        offset += width;
      }
    }
    const hashes = await Promise.all(wanted.map((w) => src.node(w.level, w.index)));
    const frontier = new MerkleFrontier();
    wanted.forEach((w, i) => {
      frontier.#edge.push({ ...w, hash: hashes[i]! });
    });
    frontier.#size = size;
    return frontier;
  }
}

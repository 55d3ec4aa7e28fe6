// A naive, recursive RFC 9162 §2.1 reference the fast code is compared with.
// Deliberately the textbook definitions over whole leaf arrays, nothing shared.
import { createHash } from 'node:crypto';
import type { NodeSource } from '../../../src/store/merkle/proofs.js';

const sha = (...parts: Buffer[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

export const refLeaf = (data: Buffer): Buffer => sha(Buffer.of(0), data);

function k(n: number): number {
  let x = 1;
  while (x * 2 < n) x *= 2;
  return x;
}

/** MTH over leaf hashes. */
export function refRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0]!;
  const s = k(leaves.length);
  return sha(Buffer.of(1), refRoot(leaves.slice(0, s)), refRoot(leaves.slice(s)));
}

export function refPath(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length <= 1) return [];
  const s = k(leaves.length);
  return m < s
    ? [...refPath(m, leaves.slice(0, s)), refRoot(leaves.slice(s))]
    : [...refPath(m - s, leaves.slice(s)), refRoot(leaves.slice(0, s))];
}

function refSubproof(m: number, leaves: Buffer[], b: boolean): Buffer[] {
  const n = leaves.length;
  if (m === n) return b ? [] : [refRoot(leaves)];
  const s = k(n);
  return m <= s
    ? [...refSubproof(m, leaves.slice(0, s), b), refRoot(leaves.slice(s))]
    : [...refSubproof(m - s, leaves.slice(s), false), refRoot(leaves.slice(0, s))];
}

export function refConsistency(m: number, leaves: Buffer[]): Buffer[] {
  return refSubproof(m, leaves, true);
}

/** A NodeSource over a map of persisted nodes that counts its reads. */
export class MemoryNodes implements NodeSource {
  readonly nodes = new Map<string, Buffer>();
  reads = 0;

  put(level: number, index: number, hash: Buffer): void {
    this.nodes.set(`${level}/${index}`, hash);
  }

  async node(level: number, index: number): Promise<Buffer> {
    this.reads += 1;
    const hash = this.nodes.get(`${level}/${index}`);
    if (hash === undefined) throw new Error(`node ${level}/${index} was never persisted`);
    return hash;
  }
}

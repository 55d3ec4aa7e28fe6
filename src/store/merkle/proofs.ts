import { EMPTY_ROOT, HASH_SIZE, hashChildren } from './hash.js';

/**
 * Read access to persisted perfect-subtree hashes. `node(level, index)` is the
 * hash of the perfect subtree of 2^level leaves covering leaves
 * [index·2^level, (index+1)·2^level); level 0 holds the leaf hashes. Only
 * nodes of complete subtrees exist, so the right edge of a tree whose size is
 * not a power of two is always computed from its perfect pieces.
 */
export interface NodeSource {
  node(level: number, index: number): Promise<Buffer>;
}

/** Root hash (RFC 9162 §2.1.1 MTH) of the first `size` leaves; O(log n) node reads. */
export async function rootAt(src: NodeSource, size: number): Promise<Buffer> {
  checkCount('size', size);
  if (size === 0) return Buffer.from(EMPTY_ROOT);
  return rangeHash(src, 0, size);
}

/**
 * Inclusion proof (RFC 9162 §2.1.3.1 PATH) for the leaf at `index` in the tree
 * of `size` leaves, ordered from the leaf's sibling up to the root's child.
 */
export async function inclusionProof(src: NodeSource, index: number, size: number): Promise<Buffer[]> {
  checkCount('size', size);
  checkCount('index', index);
  if (index >= size) {
    throw new RangeError(`leaf index ${index} is outside a tree of size ${size} (need 0 <= index < size)`);
  }
  const proof: Buffer[] = [];
  await path(src, index, 0, size, proof);
  return proof;
}

/**
 * Consistency proof (RFC 9162 §2.1.4.1 PROOF) that the tree of `from` leaves
 * is a prefix of the tree of `to` leaves. Needs 0 < from <= to; `from === to`
 * gives the empty proof.
 */
export async function consistencyProof(src: NodeSource, from: number, to: number): Promise<Buffer[]> {
  checkCount('from', from);
  checkCount('to', to);
  if (from === 0 || from > to) {
    throw new RangeError(`consistency proof needs 0 < from <= to, got from=${from} to=${to}`);
  }
  const proof: Buffer[] = [];
  if (from < to) await subproof(src, from, 0, to, true, proof);
  return proof;
}

/**
 * The root implied by an inclusion proof (RFC 9162 §2.1.3.2), or `undefined`
 * when the proof cannot belong to a tree of this size (wrong length, index out
 * of range, malformed hashes).
 */
export function rootFromInclusionProof(
  leafHash: Buffer,
  index: number,
  size: number,
  proof: readonly Buffer[],
): Buffer | undefined {
  if (!isCount(index) || !isCount(size) || index >= size) return undefined;
  if (leafHash.length !== HASH_SIZE || !proof.every((p) => p.length === HASH_SIZE)) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = hashChildren(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : undefined;
}

/** RFC 9162 §2.1.3.2: does `proof` show `leafHash` at `index` in the tree of `size` leaves with `root`? */
export function verifyInclusion(
  leafHash: Buffer,
  index: number,
  size: number,
  proof: readonly Buffer[],
  root: Buffer,
): boolean {
  const computed = rootFromInclusionProof(leafHash, index, size, proof);
  return computed?.equals(root) === true;
}

/**
 * RFC 9162 §2.1.4.2: does `proof` show the tree of `from` leaves with `rootFrom`
 * is a prefix of the tree of `to` leaves with `rootTo`? Equal sizes need an
 * empty proof and equal roots; the empty tree is a prefix of every tree.
 */
export function verifyConsistency(
  from: number,
  to: number,
  rootFrom: Buffer,
  rootTo: Buffer,
  proof: readonly Buffer[],
): boolean {
  if (!isCount(from) || !isCount(to) || from > to) return false;
  if (rootFrom.length !== HASH_SIZE || rootTo.length !== HASH_SIZE) return false;
  if (!proof.every((p) => p.length === HASH_SIZE)) return false;
  if (from === to) return proof.length === 0 && rootFrom.equals(rootTo);
  if (from === 0) return proof.length === 0;
  if (proof.length === 0) return false;

  const path = isPowerOfTwo(from) ? [rootFrom, ...proof] : [...proof];
  let fn = from - 1;
  let sn = to - 1;
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && fr.equals(rootFrom) && sr.equals(rootTo);
}

/** Largest power of two strictly smaller than `n` (n >= 2): the RFC's split point k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * MTH of leaves [start, start + count). Every range the RFC recursion visits
 * starts at a multiple of its largest power-of-two piece, so it is the
 * concatenation of the perfect subtrees given by the bits of `count`, read in
 * parallel and folded from the right.
 */
async function rangeHash(src: NodeSource, start: number, count: number): Promise<Buffer> {
  const reads: Promise<Buffer>[] = [];
  let offset = start;
  for (let level = Math.floor(Math.log2(count)) + 1; level >= 0; level--) {
    const width = 2 ** level;
    if (Math.floor(count / width) % 2 === 1) {
      reads.push(src.node(level, offset / width));
      offset += width;
    }
  }
  const pieces = await Promise.all(reads);
  let hash = pieces[pieces.length - 1]!;
  for (let i = pieces.length - 2; i >= 0; i--) hash = hashChildren(pieces[i]!, hash);
  return hash;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[start:start+n]), appending to `out` leaf-first. */
async function path(src: NodeSource, m: number, start: number, n: number, out: Buffer[]): Promise<void> {
  if (n === 1) return;
  const k = splitPoint(n);
  if (m < k) {
    await path(src, m, start, k, out);
    out.push(await rangeHash(src, start + k, n - k));
  } else {
    await path(src, m - k, start + k, n - k, out);
    out.push(await rangeHash(src, start, k));
  }
}

/** RFC 9162 §2.1.4.1 SUBPROOF(m, D[start:start+n], b), appending to `out`. */
async function subproof(
  src: NodeSource,
  m: number,
  start: number,
  n: number,
  b: boolean,
  out: Buffer[],
): Promise<void> {
  if (m === n) {
    if (!b) out.push(await rangeHash(src, start, n));
    return;
  }
  const k = splitPoint(n);
  if (m <= k) {
    await subproof(src, m, start, k, b, out);
    out.push(await rangeHash(src, start + k, n - k));
  } else {
    await subproof(src, m - k, start + k, n - k, false, out);
    out.push(await rangeHash(src, start, k));
  }
}

// Sizes can pass 2^32, so halving is arithmetic, not `>>`.
function half(x: number): number {
  return Math.floor(x / 2);
}

function isPowerOfTwo(x: number): boolean {
  return x > 0 && 2 ** Math.floor(Math.log2(x)) === x;
}

function isCount(x: number): boolean {
  return Number.isSafeInteger(x) && x >= 0;
}

function checkCount(name: string, x: number): void {
  if (!isCount(x)) throw new RangeError(`${name} must be a non-negative safe integer, got ${x}`);
}

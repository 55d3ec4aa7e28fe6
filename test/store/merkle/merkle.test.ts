import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { MerkleFrontier } from '../../../src/store/merkle/frontier.js';
import { EMPTY_ROOT, hashChildren, hashLeaf } from '../../../src/store/merkle/hash.js';
import {
  consistencyProof,
  inclusionProof,
  rootAt,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from '../../../src/store/merkle/proofs.js';
import { MemoryNodes, refConsistency, refLeaf, refPath, refRoot } from './reference.js';

const MAX = 70;

function leafData(i: number): Buffer {
  return Buffer.from(`leaf-${i}`);
}

/** Builds a tree of `n` leaves through the frontier, persisting every node it reports. */
function build(n: number): {
  leaves: Buffer[];
  nodes: MemoryNodes;
  roots: Buffer[];
  frontier: MerkleFrontier;
} {
  const leaves: Buffer[] = [];
  const nodes = new MemoryNodes();
  const roots: Buffer[] = [EMPTY_ROOT];
  const frontier = new MerkleFrontier();
  for (let i = 0; i < n; i++) {
    const leaf = hashLeaf(leafData(i));
    leaves.push(leaf);
    for (const node of frontier.append(leaf)) nodes.put(node.level, node.index, node.hash);
    roots.push(frontier.root());
  }
  return { leaves, nodes, roots, frontier };
}

function flip(b: Buffer, bit = 0): Buffer {
  const copy = Buffer.from(b);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

const { leaves, nodes, roots } = build(MAX);

describe('merkle hashing', () => {
  test('leaf and node hashes use the RFC 6962 domain-separation prefixes', () => {
    assert.deepEqual(hashLeaf(Buffer.from('abc')), refLeaf(Buffer.from('abc')));
    assert.notDeepEqual(hashLeaf(Buffer.alloc(64)), hashChildren(Buffer.alloc(32), Buffer.alloc(32)));
    assert.equal(
      EMPTY_ROOT.toString('hex'),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  test('a node hash is SHA-256 of 0x01 ‖ left ‖ right, for hashes and for children of any other length', () => {
    const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
    const a = sha(Buffer.from('a'));
    const b = sha(Buffer.from('b'));
    assert.deepEqual(hashChildren(a, b), sha(Buffer.of(1), a, b));
    // The reused input buffer keeps nothing of the call before.
    assert.deepEqual(hashChildren(b, a), sha(Buffer.of(1), b, a));
    // A stored node of the wrong size (a damaged row) still hashes as written, so verify sees the damage.
    const short = Buffer.from('xy');
    const long = Buffer.alloc(40, 7);
    assert.deepEqual(hashChildren(short, a), sha(Buffer.of(1), short, a));
    assert.deepEqual(hashChildren(a, long), sha(Buffer.of(1), a, long));
  });
});

describe('merkle frontier', () => {
  test('its root after every prefix equals the reference MTH', () => {
    for (let n = 0; n <= MAX; n++) assert.deepEqual(roots[n], refRoot(leaves.slice(0, n)), `size ${n}`);
  });

  test('each append reports exactly the perfect subtrees it completes', () => {
    const f = new MerkleFrontier();
    const counts = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => f.append(hashLeaf(leafData(i))).length);
    // Appending leaf i completes the leaf plus one node per trailing one-bit of i.
    assert.deepEqual(counts, [1, 2, 1, 3, 1, 2, 1, 4]);
    // Every perfect subtree of a 70-leaf tree was persisted: 70 + 35 + 17 + 8 + 4 + 2 + 1.
    assert.equal(nodes.nodes.size, 137);
  });

  test('load rebuilds the frontier from persisted nodes with one read per set bit of the size', async () => {
    for (let n = 0; n <= MAX; n++) {
      const src = new MemoryNodes();
      for (const [key, hash] of nodes.nodes) {
        const [level, index] = key.split('/').map(Number) as [number, number];
        src.put(level, index, hash);
      }
      const f = await MerkleFrontier.load(n, src);
      assert.equal(f.size, n);
      assert.deepEqual(f.root(), roots[n]);
      assert.equal(src.reads, n.toString(2).replaceAll('0', '').length);
      if (n < MAX) {
        f.append(leaves[n]!);
        assert.deepEqual(f.root(), roots[n + 1], `append after load at ${n}`);
      }
    }
  });
});

describe('merkle proofs over persisted nodes', () => {
  test('rootAt equals the reference MTH for every size up to 70', async () => {
    for (let n = 0; n <= MAX; n++) assert.deepEqual(await rootAt(nodes, n), refRoot(leaves.slice(0, n)));
  });

  test('inclusion proofs equal the reference PATH and verify, for every index and size', async () => {
    for (let n = 1; n <= MAX; n++) {
      for (let m = 0; m < n; m++) {
        const proof = await inclusionProof(nodes, m, n);
        assert.deepEqual(proof, refPath(m, leaves.slice(0, n)), `PATH(${m}, ${n})`);
        assert.ok(verifyInclusion(leaves[m]!, m, n, proof, roots[n]!), `verify PATH(${m}, ${n})`);
        assert.deepEqual(rootFromInclusionProof(leaves[m]!, m, n, proof), roots[n]);
      }
    }
  });

  test('consistency proofs equal the reference PROOF and verify, for every pair of sizes', async () => {
    for (let n = 1; n <= MAX; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = await consistencyProof(nodes, m, n);
        assert.deepEqual(proof, m === n ? [] : refConsistency(m, leaves.slice(0, n)), `PROOF(${m}, ${n})`);
        assert.ok(verifyConsistency(m, n, roots[m]!, roots[n]!, proof), `verify PROOF(${m}, ${n})`);
      }
    }
  });

  test('a proof costs O(log n) node reads, never a rescan of the leaves', async () => {
    const big = build(1000).nodes;
    big.reads = 0;
    await inclusionProof(big, 517, 999);
    assert.ok(big.reads <= 2 * 10 + 2, `inclusion proof read ${big.reads} nodes`);
    big.reads = 0;
    await consistencyProof(big, 333, 999);
    assert.ok(big.reads <= 2 * 10 + 2, `consistency proof read ${big.reads} nodes`);
    big.reads = 0;
    await rootAt(big, 999);
    assert.ok(big.reads <= 10, `root read ${big.reads} nodes`);
  });

  test('out-of-range arguments are refused with a RangeError', async () => {
    await assert.rejects(inclusionProof(nodes, 5, 5), RangeError);
    await assert.rejects(inclusionProof(nodes, 0, 0), RangeError);
    await assert.rejects(inclusionProof(nodes, -1, 5), RangeError);
    await assert.rejects(inclusionProof(nodes, 1.5, 5), RangeError);
    await assert.rejects(consistencyProof(nodes, 0, 5), RangeError);
    await assert.rejects(consistencyProof(nodes, 6, 5), RangeError);
    await assert.rejects(rootAt(nodes, -1), RangeError);
  });
});

describe('merkle verifiers reject tampered proofs', () => {
  test('an inclusion proof fails with a flipped bit, a wrong index, a wrong size or a wrong leaf', async () => {
    for (let n = 1; n <= MAX; n++) {
      for (let m = 0; m < n; m++) {
        const proof = await inclusionProof(nodes, m, n);
        const leaf = leaves[m]!;
        const root = roots[n]!;
        for (let i = 0; i < proof.length; i++) {
          const bad = proof.map((p, j) => (j === i ? flip(p, 3) : p));
          assert.equal(verifyInclusion(leaf, m, n, bad, root), false);
        }
        assert.equal(verifyInclusion(flip(leaf), m, n, proof, root), false);
        assert.equal(verifyInclusion(leaf, m, n, proof, flip(root)), false);
        if (m > 0) assert.equal(verifyInclusion(leaf, m - 1, n, proof, root), false);
        if (m + 1 < n) assert.equal(verifyInclusion(leaf, m + 1, n, proof, root), false);
        assert.equal(verifyInclusion(leaf, m, 2 * n, proof, root), false);
        assert.equal(verifyInclusion(leaf, m, n, [...proof, root], root), false);
        if (proof.length > 0) assert.equal(verifyInclusion(leaf, m, n, proof.slice(1), root), false);
      }
    }
    assert.equal(verifyInclusion(leaves[0]!, 0, 0, [], roots[0]!), false);
  });

  test('a consistency proof fails with a flipped bit, wrong sizes, swapped roots or extra hashes', async () => {
    for (let n = 2; n <= MAX; n++) {
      for (let m = 1; m < n; m++) {
        const proof = await consistencyProof(nodes, m, n);
        const rm = roots[m]!;
        const rn = roots[n]!;
        for (let i = 0; i < proof.length; i++) {
          const bad = proof.map((p, j) => (j === i ? flip(p, 4) : p));
          assert.equal(verifyConsistency(m, n, rm, rn, bad), false);
        }
        assert.equal(verifyConsistency(m, n, flip(rm), rn, proof), false);
        assert.equal(verifyConsistency(m, n, rm, flip(rn), proof), false);
        assert.equal(verifyConsistency(m, n, rn, rm, proof), false);
        assert.equal(verifyConsistency(m - 1, n, rm, rn, proof), false, `m-1 at ${m}/${n}`);
        // A size with the same tree shape can accept the same hashes, so probe a deeper tree.
        assert.equal(verifyConsistency(m, 2 * n, rm, rn, proof), false, `2n at ${m}/${n}`);
        assert.equal(verifyConsistency(m, n, rm, rn, []), false);
        assert.equal(verifyConsistency(m, n, rm, rn, [...proof, rn]), false);
        assert.equal(verifyConsistency(m, n, rm, rn, [proof[0]!, ...proof]), false);
        assert.equal(verifyConsistency(m, n, rm, rn, proof.slice(0, -1)), false);
      }
    }
  });

  test('equal sizes need equal roots and an empty proof; the empty tree is a prefix of any tree', () => {
    assert.ok(verifyConsistency(5, 5, roots[5]!, roots[5]!, []));
    assert.equal(verifyConsistency(5, 5, roots[5]!, roots[6]!, []), false);
    assert.equal(verifyConsistency(5, 5, roots[5]!, roots[5]!, [roots[5]!]), false);
    assert.ok(verifyConsistency(0, 7, EMPTY_ROOT, roots[7]!, []));
    assert.equal(verifyConsistency(7, 5, roots[7]!, roots[5]!, []), false);
  });
});

describe('merkle frontier clones', () => {
  test('a clone grows independently of the frontier it was copied from', () => {
    const a = build(5).frontier;
    const b = a.clone();
    b.append(leaves[5]!);
    assert.equal(a.size, 5);
    assert.deepEqual(a.root(), roots[5]);
    assert.equal(b.size, 6);
    assert.deepEqual(b.root(), roots[6]);
  });
});

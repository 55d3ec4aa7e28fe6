import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashChildren } from '../../../src/store/merkle/hash.js';
import { isStoredNode, perfectRoot, storedNodes } from '../../../src/store/merkle/stored-nodes.js';
import { refLeaf, refRoot } from './reference.js';

const leaves = Array.from({ length: 16 }, (_, i) => refLeaf(Buffer.from(`leaf ${i}`)));

describe('stored nodes', () => {
  test('a perfect subtree root equals the reference MTH of its leaves', () => {
    for (const n of [1, 2, 4, 8, 16])
      assert.deepEqual(perfectRoot(leaves.slice(0, n)), refRoot(leaves.slice(0, n)));
  });

  test('levels 1 and 2 are computed from their leaves, level 3 up is read, and only those are stored', async () => {
    const innerReads: string[] = [];
    const level3 = hashChildren(refRoot(leaves.slice(8, 12)), refRoot(leaves.slice(12, 16)));
    const source = storedNodes({
      leaves: (from, count) => leaves.slice(from, from + count),
      inner: (level, index) => {
        innerReads.push(`${level}/${index}`);
        return level === 3 && index === 1 ? level3 : undefined;
      },
    });
    assert.deepEqual(await source.node(0, 5), leaves[5]);
    assert.deepEqual(await source.node(1, 3), refRoot(leaves.slice(6, 8)));
    assert.deepEqual(await source.node(2, 3), refRoot(leaves.slice(12, 16)));
    assert.deepEqual(await source.node(3, 1), level3);
    assert.deepEqual(innerReads, ['3/1']);
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((l) => isStoredNode(l)),
      [false, false, false, true, true],
    );
  });

  test('a node whose leaves or row are missing is an error that names it', async () => {
    const source = storedNodes({
      leaves: (from, count) => leaves.slice(from, from + count),
      inner: () => undefined,
    });
    await assert.rejects(source.node(2, 4), /merkle node \(2, 4\) is missing/);
    await assert.rejects(source.node(0, 16), /merkle node \(0, 16\) is missing/);
    await assert.rejects(source.node(3, 0), /merkle node \(3, 0\) is missing/);
  });
});

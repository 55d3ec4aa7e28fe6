// Known-answer vectors published with the RFC 6962 reference implementations
// (google/certificate-transparency, transparency-dev/merkle testonly/constants.go
// and proof/verify_test.go). Inclusion vectors there number leaves from 1.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MerkleFrontier } from '../../../src/store/merkle/frontier.js';
import { EMPTY_ROOT, hashLeaf } from '../../../src/store/merkle/hash.js';
import {
  consistencyProof,
  inclusionProof,
  rootAt,
  verifyConsistency,
  verifyInclusion,
} from '../../../src/store/merkle/proofs.js';
import { MemoryNodes } from './reference.js';

const h = (hex: string) => Buffer.from(hex, 'hex');

const LEAF_INPUTS = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(h);

/** Published roots for tree sizes 0..8. */
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map(h);

/** Published perfect-subtree hashes, by level then index. */
const NODE_HASHES = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ],
  [
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
].map((level) => level.map(h));

/** Published inclusion proofs: 0-based leaf index, tree size, path. */
const INCLUSION: Array<[number, number, string[]]> = [
  [0, 1, []],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];

/** Published consistency proofs: first size, second size, proof. */
const CONSISTENCY: Array<[number, number, string[]]> = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    6,
    7,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];

const nodes = new MemoryNodes();
const frontier = new MerkleFrontier();
const builtRoots: Buffer[] = [frontier.root()];
for (const input of LEAF_INPUTS) {
  for (const n of frontier.append(hashLeaf(input))) nodes.put(n.level, n.index, n.hash);
  builtRoots.push(frontier.root());
}
const leafHashes = LEAF_INPUTS.map(hashLeaf);

describe('RFC 6962 reference test vectors', () => {
  test('the empty tree root is SHA-256 of the empty string', () => {
    assert.deepEqual(EMPTY_ROOT, ROOTS[0]);
  });

  test('the frontier reproduces the published roots for sizes 0 to 8', () => {
    assert.deepEqual(builtRoots, ROOTS);
  });

  test('the frontier persists exactly the published perfect-subtree hashes', () => {
    NODE_HASHES.forEach((level, l) => {
      level.forEach((hash, i) => {
        assert.deepEqual(nodes.nodes.get(`${l}/${i}`), hash, `node ${l}/${i}`);
      });
    });
    assert.equal(nodes.nodes.size, 15);
  });

  test('rootAt over the persisted nodes reproduces the published roots', async () => {
    for (let n = 0; n <= 8; n++) assert.deepEqual(await rootAt(nodes, n), ROOTS[n]);
  });

  test('inclusion proofs match the published ones and verify against the published roots', async () => {
    for (const [index, size, expected] of INCLUSION) {
      const proof = await inclusionProof(nodes, index, size);
      assert.deepEqual(proof, expected.map(h), `PATH(${index}, ${size})`);
      assert.ok(verifyInclusion(leafHashes[index]!, index, size, proof, ROOTS[size]!));
    }
  });

  test('consistency proofs match the published ones and verify against the published roots', async () => {
    for (const [from, to, expected] of CONSISTENCY) {
      const proof = await consistencyProof(nodes, from, to);
      assert.deepEqual(proof, expected.map(h), `PROOF(${from}, ${to})`);
      assert.ok(verifyConsistency(from, to, ROOTS[from]!, ROOTS[to]!, proof));
    }
  });
});

import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  type NoteSigner,
  parseCheckpoint,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  verifierKeyString,
  verifyCheckpoint,
} from '../../src/log/checkpoint.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { hashLeaf } from '../../src/store/merkle/hash.js';

function newSigner(name: string): NoteSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { name, privateKey, publicKeyRaw: rawPublicKey(publicKey) };
}

const signer = newSigner('trailwarden.test/log');
const root = hashLeaf(Buffer.from('root'));
const note = signCheckpoint({ origin: 'trailwarden.test/log', treeSize: 42, rootHash: root }, signer);

describe('signed checkpoints', () => {
  test('a signed checkpoint has the C2SP body, a blank line and one em-dash signature line', () => {
    const lines = note.split('\n');
    assert.deepEqual(lines.slice(0, 4), ['trailwarden.test/log', '42', root.toString('base64'), '']);
    assert.match(lines[4]!, /^\u2014 trailwarden\.test\/log [A-Za-z0-9+/]{91}=$/);
    assert.equal(lines[5], '');
    assert.equal(lines.length, 6);
  });

  test('a checkpoint round-trips through sign, parse and verify', () => {
    const parsed = parseCheckpoint(note);
    assert.equal(parsed.origin, 'trailwarden.test/log');
    assert.equal(parsed.treeSize, 42);
    assert.deepEqual(parsed.rootHash, root);
    assert.deepEqual(parsed.extensions, []);
    assert.equal(parsed.signatures.length, 1);
    assert.equal(parsed.signatures[0]!.signature.length, 64);
    const result = verifyCheckpoint(note, signer);
    assert.ok(result.ok);
    assert.equal(result.checkpoint.treeSize, 42);
    assert.ok(verifyCheckpoint(note, verifierKeyString(signer.name, signer.publicKeyRaw)).ok);
  });

  test('a tampered tree size, root or origin fails the signature check', () => {
    const other = hashLeaf(Buffer.from('other')).toString('base64');
    for (const tampered of [
      note.replace('\n42\n', '\n43\n'),
      note.replace(root.toString('base64'), other),
      note.replace('trailwarden.test/log\n42', 'trailwarden.evil/log\n42'),
    ]) {
      const result = verifyCheckpoint(tampered, signer);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.problem, 'bad_signature');
    }
  });

  test('a key with the same name but other key material finds no signature of its own', () => {
    const impostor = { ...newSigner(signer.name) };
    const result = verifyCheckpoint(note, impostor);
    assert.equal(!result.ok && result.problem, 'unsigned');
  });

  test('an extra signature by an unknown key is ignored and the right key still verifies', () => {
    const witness = newSigner('witness.example');
    const cosigned = signCheckpoint(
      { origin: 'trailwarden.test/log', treeSize: 42, rootHash: root },
      witness,
    );
    const both = note + cosigned.slice(cosigned.lastIndexOf('\u2014'));
    assert.equal(parseCheckpoint(both).signatures.length, 2);
    assert.ok(verifyCheckpoint(both, signer).ok);
    assert.ok(verifyCheckpoint(both, witness).ok);
  });

  test('extension lines after the root are parsed and covered by the signature', () => {
    const body = `o.test\n3\n${root.toString('base64')}\nextra line\n`;
    const withExt = `${body}\n${note.slice(note.lastIndexOf('\u2014'))}`;
    assert.deepEqual(parseCheckpoint(withExt).extensions, ['extra line']);
  });

  test('malformed notes are refused with a clear reason', () => {
    const sigLine = note.slice(note.lastIndexOf('\u2014'));
    const bad = [
      'no blank line\n',
      note.slice(0, -1),
      note.replace('\n42\n', '\n042\n'),
      note.replace('\n42\n', '\n-1\n'),
      note.replace(root.toString('base64'), 'AAAA'),
      note.replace('\u2014 ', '- '),
      `trailwarden.test/log\n42\n\n${sigLine}`,
      note.replace('\n42\n', '\n4\t2\n'),
      `${note.slice(0, note.lastIndexOf('\u2014'))}\u2014 name !!!\n`,
    ];
    for (const text of bad) {
      assert.throws(() => parseCheckpoint(text), { name: 'CheckpointFormatError' }, JSON.stringify(text));
      const result = verifyCheckpoint(text, signer);
      assert.equal(!result.ok && result.problem, 'malformed');
    }
  });

  test('a verifier key string encodes name, key hash and 0x01-prefixed key, and is checked on parse', () => {
    const vkey = verifierKeyString(signer.name, signer.publicKeyRaw);
    const [name, hash, ...rest] = vkey.split('+');
    const key = rest.join('+');
    assert.equal(name, signer.name);
    assert.match(hash!, /^[0-9a-f]{8}$/);
    assert.deepEqual(Buffer.from(key!, 'base64'), Buffer.concat([Buffer.of(1), signer.publicKeyRaw]));
    assert.deepEqual(parseVerifierKey(vkey).publicKeyRaw, signer.publicKeyRaw);
    const wrongHash = `${name}+${hash === '00000000' ? '00000001' : '00000000'}+${key}`;
    assert.throws(() => parseVerifierKey(wrongHash), { code: 'TW_ERR_CONFIG' });
    assert.throws(() => parseVerifierKey('nope'), { code: 'TW_ERR_CONFIG' });
  });
});

describe('signed-note known-answer vector', () => {
  // The example key and note from golang.org/x/mod/sumdb/note (its doc comment and note_test.go).
  const skey = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
  const vkey = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
  const text =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
  const signed = `${text}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
  const seed = Buffer.from(skey.slice('PRIVATE+KEY+PeterNeumann+c74f20a3+'.length), 'base64').subarray(1);
  const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
  const privateKey = createPrivateKey({
    key: Buffer.concat([pkcs8Prefix, seed]),
    format: 'der',
    type: 'pkcs8',
  });

  test('our verifier key string and key hash match the published example', () => {
    const publicKeyRaw = parseVerifierKey(vkey).publicKeyRaw;
    assert.deepEqual(rawPublicKey(createPublicKey(privateKey)), publicKeyRaw);
    assert.equal(verifierKeyString('PeterNeumann', publicKeyRaw), vkey);
  });

  test('our signature over the published text reproduces the published note byte for byte', () => {
    // Ed25519 is deterministic, so the same key and text give the same signature line.
    const publicKeyRaw = parseVerifierKey(vkey).publicKeyRaw;
    assert.equal(signNote(text, { name: 'PeterNeumann', privateKey, publicKeyRaw }), signed);
  });
});

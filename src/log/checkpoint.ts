import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { TrailwardenError } from '../errors.js';

// C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) carried in a C2SP
// signed-note (https://c2sp.org/signed-note) with Ed25519 signatures, so any
// standard checkpoint tool (golang.org/x/mod/sumdb/note, witnesses) reads ours.

/** What a checkpoint commits to. */
export interface Checkpoint {
  /** Unique name of the log, e.g. `trailwarden.example.com/log`. */
  origin: string;
  treeSize: number;
  /** 32-byte RFC 6962 root of the first `treeSize` leaves. */
  rootHash: Buffer;
}

/** One signature line of a note: `— <name> <base64(key hash ‖ signature)>`. */
export interface NoteSignature {
  name: string;
  /** The 4-byte key hash as 8 lowercase hex digits. */
  keyHash: string;
  signature: Buffer;
}

/** A checkpoint note split into its parts (signatures not yet checked). */
export interface ParsedCheckpoint extends Checkpoint {
  /** Optional extension lines after the root hash, in order. */
  extensions: string[];
  /** The signed text: everything before the blank line, ending in `\n`. */
  body: string;
  signatures: NoteSignature[];
}

/** The key that signs notes (checkpoints among them). */
export interface NoteSigner {
  /** Key name in the signed note (also the verifier key's name). */
  name: string;
  privateKey: KeyObject;
  publicKeyRaw: Buffer;
}

export interface NoteVerifier {
  name: string;
  publicKeyRaw: Buffer;
}

export type CheckpointVerification =
  | { ok: true; checkpoint: ParsedCheckpoint }
  | { ok: false; problem: 'malformed' | 'unsigned' | 'bad_signature'; message: string };

/** A note that does not follow the checkpoint or signed-note grammar. */
export class CheckpointFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointFormatError';
  }
}

const SIG_PREFIX = '\u2014 ';
const ED25519_ALG = 0x01;
const MAX_SIGNATURES = 100;

/** Signs a checkpoint and returns the full signed-note text. */
export function signCheckpoint(cp: Checkpoint, signer: NoteSigner): string {
  if (cp.origin === '' || /[\p{Cc}]/u.test(cp.origin)) {
    throw new RangeError('checkpoint origin must be a non-empty line without control characters');
  }
  if (!Number.isSafeInteger(cp.treeSize) || cp.treeSize < 0) {
    throw new RangeError(`checkpoint tree size must be a non-negative integer, got ${cp.treeSize}`);
  }
  if (cp.rootHash.length !== 32) throw new RangeError('checkpoint root hash must be 32 bytes');
  return signNote(`${cp.origin}\n${cp.treeSize}\n${cp.rootHash.toString('base64')}\n`, signer);
}

/** Signs any signed-note text (non-empty, ending in a newline) with one Ed25519 key. */
export function signNote(text: string, signer: NoteSigner): string {
  checkKeyName(signer.name);
  if (!text.endsWith('\n') || text.includes('\n\n')) {
    throw new RangeError('note text must end with a newline and contain no blank line');
  }
  const sig = sign(null, Buffer.from(text, 'utf8'), signer.privateKey);
  const blob = Buffer.concat([keyHashBytes(signer.name, signer.publicKeyRaw), sig]).toString('base64');
  return `${text}\n${SIG_PREFIX}${signer.name} ${blob}\n`;
}

/** Parses a checkpoint note strictly; throws `CheckpointFormatError` on any deviation. */
export function parseCheckpoint(note: string): ParsedCheckpoint {
  if (hasAsciiControl(note)) {
    throw new CheckpointFormatError('note contains control characters other than newline');
  }
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new CheckpointFormatError('note has no blank line before its signatures');
  const body = note.slice(0, split + 1);
  const sigBlock = note.slice(split + 2);
  if (!sigBlock.endsWith('\n')) throw new CheckpointFormatError('note must end with a newline');

  const signatures: NoteSignature[] = [];
  for (const line of sigBlock.slice(0, -1).split('\n')) {
    if (!line.startsWith(SIG_PREFIX)) throw new CheckpointFormatError(`not a signature line: ${line}`);
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? '' : rest.slice(0, space);
    if (!isKeyName(name)) throw new CheckpointFormatError(`bad signer name in: ${line}`);
    const blob = decodeBase64(rest.slice(space + 1));
    if (blob === undefined || blob.length < 5) throw new CheckpointFormatError(`bad signature in: ${line}`);
    signatures.push({ name, keyHash: blob.subarray(0, 4).toString('hex'), signature: blob.subarray(4) });
  }
  if (signatures.length > MAX_SIGNATURES) throw new CheckpointFormatError('note has too many signatures');

  const lines = body.slice(0, -1).split('\n');
  const [origin, size, root, ...extensions] = lines;
  if (origin === undefined || origin === '' || size === undefined || root === undefined) {
    throw new CheckpointFormatError('checkpoint needs an origin, a tree size and a root hash line');
  }
  if (lines.some((l) => l === '')) throw new CheckpointFormatError('checkpoint body has an empty line');
  if (!/^(0|[1-9][0-9]*)$/.test(size) || !Number.isSafeInteger(Number(size))) {
    throw new CheckpointFormatError(`bad tree size: ${size}`);
  }
  const rootHash = decodeBase64(root);
  if (rootHash === undefined || rootHash.length !== 32)
    throw new CheckpointFormatError(`bad root hash: ${root}`);
  return { origin, treeSize: Number(size), rootHash, extensions, body, signatures };
}

/**
 * Checks that `note` is a well-formed checkpoint carrying a valid signature by
 * `verifier` (a `name+hash+key` string or the name and raw public key).
 * Signatures by other keys are ignored, as signed-note requires.
 */
export function verifyCheckpoint(note: string, verifier: string | NoteVerifier): CheckpointVerification {
  const key = typeof verifier === 'string' ? parseVerifierKey(verifier) : verifier;
  let parsed: ParsedCheckpoint;
  try {
    parsed = parseCheckpoint(note);
  } catch (err) {
    if (err instanceof CheckpointFormatError)
      return { ok: false, problem: 'malformed', message: err.message };
    throw err;
  }
  const id = keyId(key.name, key.publicKeyRaw);
  const mine = parsed.signatures.filter((s) => s.name === key.name && s.keyHash === id);
  if (mine.length === 0) {
    return {
      ok: false,
      problem: 'unsigned',
      message: `checkpoint has no signature by key ${key.name}+${id}`,
    };
  }
  if (mine.length > 1) {
    return {
      ok: false,
      problem: 'malformed',
      message: `checkpoint is signed twice by key ${key.name}+${id}`,
    };
  }
  const publicKey = ed25519PublicKey(key.publicKeyRaw);
  const sig = mine[0]!.signature;
  if (sig.length !== 64 || !verify(null, Buffer.from(parsed.body, 'utf8'), publicKey, sig)) {
    return {
      ok: false,
      problem: 'bad_signature',
      message: `signature by key ${key.name}+${id} does not verify`,
    };
  }
  return { ok: true, checkpoint: parsed };
}

/** The verifier key string `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`. */
export function verifierKeyString(name: string, publicKeyRaw: Buffer): string {
  checkKeyName(name);
  const encoded = Buffer.concat([Buffer.of(ED25519_ALG), publicKeyRaw]).toString('base64');
  return `${name}+${keyId(name, publicKeyRaw)}+${encoded}`;
}

/** Parses and checks a verifier key string; throws `TW_ERR_CONFIG` when it is not a valid Ed25519 one. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  // The base64 key may itself contain `+`: only the first two are separators.
  const [name, hash, ...keyParts] = vkey.split('+');
  const raw = keyParts.length === 0 ? undefined : decodeBase64(keyParts.join('+'));
  if (
    name === undefined ||
    !isKeyName(name) ||
    hash === undefined ||
    !/^[0-9a-f]{8}$/.test(hash) ||
    raw === undefined ||
    raw.length !== 33 ||
    raw[0] !== ED25519_ALG
  ) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `"${vkey}" is not an Ed25519 verifier key (expected <name>+<8 hex digits>+<base64 key>).`,
    );
  }
  const publicKeyRaw = raw.subarray(1);
  if (keyId(name, publicKeyRaw) !== hash) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `verifier key "${vkey}" has a key hash that does not match its key.`,
    );
  }
  return { name, publicKeyRaw };
}

/** The signed-note key hash as hex: first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key). */
export function keyId(name: string, publicKeyRaw: Buffer): string {
  return keyHashBytes(name, publicKeyRaw).toString('hex');
}

function keyHashBytes(name: string, publicKeyRaw: Buffer): Buffer {
  if (publicKeyRaw.length !== 32) throw new RangeError('an Ed25519 public key is 32 bytes');
  return createHash('sha256')
    .update(`${name}\n`, 'utf8')
    .update(Buffer.of(ED25519_ALG))
    .update(publicKeyRaw)
    .digest()
    .subarray(0, 4);
}

function ed25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}

// signed-note text is UTF-8 without ASCII control characters except newline.
function hasAsciiControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f) return true;
  }
  return false;
}

// signed-note: a key name is non-empty and has no whitespace and no `+`.
function isKeyName(name: string): boolean {
  return name !== '' && !/[\s+]/u.test(name) && !/\p{Cc}/u.test(name);
}

function checkKeyName(name: string): void {
  if (!isKeyName(name)) throw new RangeError(`"${name}" is not a valid key name (no spaces, no "+")`);
}

/** Strict standard base64: anything that does not re-encode to itself is refused. */
function decodeBase64(text: string): Buffer | undefined {
  const buf = Buffer.from(text, 'base64');
  return buf.toString('base64') === text ? buf : undefined;
}

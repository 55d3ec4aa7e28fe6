import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrailwardenError } from '../errors.js';
import { createExclusive } from '../store/data-dir.js';

/** File name of the key generated inside the data directory on first start. */
export const SIGNING_KEY_FILE = 'signing-key.pem';

/** The Ed25519 key that signs checkpoints. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The 32-byte raw Ed25519 public key (what verifier keys and key hashes encode). */
  publicKeyRaw: Buffer;
}

export interface SigningKeyOptions {
  /** Refuse to generate a key when none exists (verify must not write into what it checks). */
  mustExist?: boolean;
  /** Path to a PKCS#8 PEM file holding the key (must be mode 0600 or stricter). */
  keyFile?: string;
  /** The PKCS#8 PEM text itself, e.g. from a secret store. */
  keyPem?: string;
}

/**
 * Loads the checkpoint signing key: from `keyPem`, else `keyFile`, else
 * `<dataDir>/signing-key.pem`, generating that file (mode 0600) when absent.
 * Refuses a key file that group or others can access.
 */
export async function loadOrCreateSigningKey(
  dataDir: string,
  opts: SigningKeyOptions = {},
): Promise<SigningKey> {
  if (opts.keyPem !== undefined) return fromPem(opts.keyPem, 'the configured signing key PEM');
  if (opts.keyFile !== undefined) return readKeyFile(opts.keyFile);

  const file = join(dataDir, SIGNING_KEY_FILE);
  try {
    return await readKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (opts.mustExist) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `no signing key at ${file}; pass the verifier key with --vkey, or point --data-dir at the right folder`,
      );
    }
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  if (await createExclusive(file, pem)) return fromPem(pem, file);
  // Another process created it first: use theirs so both sign with one key.
  return readKeyFile(file);
}

async function readKeyFile(file: string): Promise<SigningKey> {
  const info = await stat(file);
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, '0');
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `The signing key file ${file} has mode ${mode}: group or other users can access it. ` +
        `Restrict it with \`chmod 600 ${file}\` and start again.`,
    );
  }
  return fromPem(await readFile(file, 'utf8'), file);
}

function fromPem(pem: string, where: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new TrailwardenError('TW_ERR_CONFIG', `Cannot read ${where} as a PKCS#8 PEM private key.`, {
      cause: err,
    });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `${where} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; checkpoints need an Ed25519 key ` +
        '(generate one with `openssl genpkey -algorithm ed25519`).',
    );
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, publicKeyRaw: rawPublicKey(publicKey) };
}

/** The 32 raw bytes of an Ed25519 public key. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new TypeError('not an Ed25519 public key');
  }
  return Buffer.from(jwk.x, 'base64url');
}

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrailwardenError } from '../errors.js';
import { createExclusive } from '../store/data-dir.js';

/** The environment variable holding the secrets key(s): base64, comma-separated, the first one current. */
export const SECRETS_KEY_ENV = 'TRAILWARDEN_SECRETS_KEY';
/** File of the key generated in the data folder when the operator gives none (SQLite only). */
export const GENERATED_KEY_FILE = 'secrets.key';

const PREFIX = 'tw:enc:v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Identifies a key in sealed values without revealing it: 8 hex digits of a hash. */
export function secretKeyId(key: Buffer): string {
  return createHash('sha256').update('trailwarden secrets key\n').update(key).digest('hex').slice(0, 8);
}

/** A fresh key as the operator writes it (`trailwarden secrets generate-key`). */
export function generateSecretKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Parses one key: base64 (or base64url) of 32 bytes. */
function parseKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[A-Za-z0-9+/_-]{43}=?$/.test(t)
    ? Buffer.from(t, t.includes('-') || t.includes('_') ? 'base64url' : 'base64')
    : undefined;
  if (key === undefined || key.length !== KEY_BYTES) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `${where}: expected a base64 key of ${KEY_BYTES} bytes (make one with \`trailwarden secrets generate-key\`)`,
    );
  }
  return key;
}

/**
 * Seals secret strings for storage with AES-256-GCM under a key the operator
 * keeps outside the database. A sealed value names the key it was sealed with
 * (`tw:enc:v1:<key id>:<base64url(iv ‖ ciphertext ‖ tag)>`) and is bound to
 * where it is used (`context`, the authenticated data), so it cannot be moved
 * to another sink or field. Several keys may be known: the first seals,
 * every one opens — which is how keys are rotated.
 */
export class SecretBox {
  private readonly keys: Map<string, Buffer>;
  readonly currentKeyId: string;

  constructor(keys: readonly Buffer[]) {
    const [current] = keys;
    if (current === undefined) throw new Error('a SecretBox needs at least one key');
    this.keys = new Map(keys.map((k) => [secretKeyId(k), k]));
    this.currentKeyId = secretKeyId(current);
  }

  /** Whether a stored value is sealed (any key). */
  static isSealed(value: string): boolean {
    return value.startsWith(PREFIX);
  }

  /** Whether a stored value is sealed with the current key (needs no re-sealing). */
  isCurrent(value: string): boolean {
    return value.startsWith(`${PREFIX}${this.currentKeyId}:`);
  }

  seal(plain: string, context: string): string {
    const key = this.keys.get(this.currentKeyId)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const blob = Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
    return `${PREFIX}${this.currentKeyId}:${blob}`;
  }

  /** Opens a sealed value; throws a TW_ERR_CONFIG that says which key is missing or that it was altered. */
  open(sealed: string, context: string): string {
    const m = /^tw:enc:v1:([0-9a-f]{8}):([A-Za-z0-9_-]+)$/.exec(sealed);
    if (!m)
      throw new TrailwardenError('TW_ERR_CONFIG', `${context}: the stored secret is not a sealed value`);
    const key = this.keys.get(m[1]!);
    if (key === undefined) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `${context}: the stored secret was sealed with key ${m[1]}, which this server does not have; ` +
          `add that key after the current one in ${SECRETS_KEY_ENV} (or secrets.key_file)`,
      );
    }
    const blob = Buffer.from(m[2]!, 'base64url');
    try {
      if (blob.length < IV_BYTES + TAG_BYTES) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(blob.subarray(IV_BYTES, blob.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `${context}: the stored secret does not open with key ${m[1]}: it was altered or belongs elsewhere`,
      );
    }
  }
}

export interface SecretBoxSource {
  env: NodeJS.ProcessEnv;
  /** `secrets.key_file` of the config: one key per line, the first current. */
  keyFile: string | null;
  dataDir: string;
  /** Make and keep a key in the data folder when none is given (SQLite: one node, one folder). */
  generate: boolean;
}

/**
 * The secrets keys, from `TRAILWARDEN_SECRETS_KEY`, else `secrets.key_file`,
 * else (when `generate`) `<data dir>/secrets.key`, made on first use with mode
 * 0600. `null` when there is none (PostgreSQL without a configured key).
 */
export async function loadSecretBox(src: SecretBoxSource): Promise<SecretBox | null> {
  const fromEnv = src.env[SECRETS_KEY_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    if (src.keyFile !== null) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `secrets.key_file: set either this or ${SECRETS_KEY_ENV}, not both`,
      );
    }
    return new SecretBox(
      fromEnv
        .split(',')
        .filter((k) => k.trim() !== '')
        .map((k, i) => parseKey(k, `${SECRETS_KEY_ENV} (key ${i + 1})`)),
    );
  }
  if (src.keyFile !== null) return new SecretBox(await readKeyFile(src.keyFile));
  if (!src.generate) return null;
  const file = join(src.dataDir, GENERATED_KEY_FILE);
  try {
    return new SecretBox(await readKeyFile(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Two starts at once keep one key: the first file published wins.
  await createExclusive(file, `${generateSecretKey()}\n`);
  return new SecretBox(await readKeyFile(file));
}

async function readKeyFile(file: string): Promise<Buffer[]> {
  const info = await stat(file);
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, '0');
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `The secrets key file ${file} has mode ${mode}: group or other users can read it. ` +
        `Restrict it with \`chmod 600 ${file}\` and start again.`,
    );
  }
  const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new TrailwardenError('TW_ERR_CONFIG', `${file} holds no key`);
  return lines.map((l, i) => parseKey(l, `${file} line ${i + 1}`));
}

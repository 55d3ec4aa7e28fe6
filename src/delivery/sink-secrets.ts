import { TrailwardenError } from '../errors.js';
import { SecretBox } from '../secrets/secret-box.js';
import { SINKS } from './sinks/registry.js';

type Obj = Record<string, unknown>;

/** Options of every kind that are secrets (the key of `hash` redactions). */
const COMMON_SECRETS = ['shape.hash_key'];

/** The secret option paths of a sink kind (dotted, e.g. `tls.key`). */
export function secretPathsOf(type: string): readonly string[] {
  return [...COMMON_SECRETS, ...(SINKS[type]?.secretFields ?? [])];
}

/**
 * A copy of `config` with `fn` applied to every secret string: the value at
 * each secret path, each string of an object there (`headers`), each string
 * of an array there (several webhook secrets). `where` names the value
 * (`headers.authorization`, `secret[1]`).
 */
export function mapSecrets(config: Obj, fn: (value: string, where: string) => string): Obj {
  const apply = (v: unknown, where: string): unknown => {
    if (typeof v === 'string') return fn(v, where);
    if (Array.isArray(v)) return v.map((x, i) => apply(x, `${where}[${i}]`));
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, apply(x, `${where}.${k}`)]));
    }
    return v;
  };
  const at = (o: Obj, keys: readonly string[], path: string): Obj => {
    const [k, ...rest] = keys;
    if (k === undefined || !Object.hasOwn(o, k) || o[k] === undefined || o[k] === null) return o;
    if (rest.length === 0) return { ...o, [k]: apply(o[k], path) };
    const child = o[k];
    if (typeof child !== 'object' || Array.isArray(child)) return o;
    return { ...o, [k]: at(child as Obj, rest, path) };
  };
  let out = config;
  for (const path of secretPathsOf(String(config['type']))) out = at(out, path.split('.'), path);
  return out;
}

/** Whether any secret value of a stored sink is not sealed with the box's current key. */
export function needsSealing(stored: Obj, box: SecretBox): boolean {
  let stale = false;
  mapSecrets(stored, (v) => {
    if (!box.isCurrent(v)) stale = true;
    return v;
  });
  return stale;
}

/** Whether a sink's settings hold any secret value at all. */
export function hasSecrets(config: Obj): boolean {
  let any = false;
  mapSecrets(config, (v) => {
    any = true;
    return v;
  });
  return any;
}

/**
 * The settings as stored: every secret sealed with the current key, bound to
 * the sink's key and the field. Values sealed already (with any key) are
 * opened first, so re-sealing moves them to the current key.
 */
export function sealSecrets(config: Obj, sinkKey: string, box: SecretBox): Obj {
  return mapSecrets(config, (v, where) => {
    const context = `sink ${sinkKey}: ${where}`;
    const plain = SecretBox.isSealed(v) ? box.open(v, context) : v;
    return box.seal(plain, context);
  });
}

/**
 * The settings as the sink uses them: sealed secrets opened. A stored value
 * that is not sealed (written before secrets were encrypted) is taken as it
 * is; `box: null` with a sealed value is an error that says what to set.
 */
export function openSecrets(stored: Obj, sinkKey: string, box: SecretBox | null): Obj {
  return mapSecrets(stored, (v, where) => {
    if (!SecretBox.isSealed(v)) return v;
    const context = `sink ${sinkKey}: ${where}`;
    if (box === null) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `${context}: the stored secret is encrypted and this server has no secrets key; set TRAILWARDEN_SECRETS_KEY or secrets.key_file`,
      );
    }
    return box.open(v, context);
  });
}

import type { FieldProblem } from '../errors.js';
import { SINKS } from './sinks/registry.js';

type Obj = Record<string, unknown>;

/**
 * What the admin API allows in a sink's settings, beyond their schema.
 *
 * - `${NAME}` references are the config file's: the operator writes that
 *   file, so it may name the server's environment. Through the API a
 *   reference would read the environment for whoever holds an admin key (a
 *   tenant admin put `${TRAILWARDEN_ADMIN_KEY}` in a header and received the
 *   token), so API settings are refused when they hold one.
 * - A tenant-bound admin's sinks never touch the host: not the kinds that
 *   write on it (file, stdout), and not the options that read its files or
 *   reach its private networks (`allow_private_networks`, `tls.*_file`).
 */
export interface SinkPolicyProblems {
  /** Settings no admin may send (422). */
  invalid: FieldProblem[];
  /** Settings this admin may not use (403). */
  forbidden: FieldProblem[];
}

/** Paths of the string values that hold `${`, e.g. `headers.authorization`. */
function environmentReferences(v: unknown, path: string, out: string[]): string[] {
  if (typeof v === 'string') {
    if (v.includes('${')) out.push(path || '(value)');
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => {
      environmentReferences(x, `${path}[${i}]`, out);
    });
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) environmentReferences(x, path ? `${path}.${k}` : k, out);
  }
  return out;
}

function valueAt(o: Obj, path: string): unknown {
  let cur: unknown = o;
  for (const k of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, k))
      return undefined;
    cur = (cur as Obj)[k];
  }
  return cur;
}

/**
 * The problems of sink settings sent through the admin API by an admin bound
 * to `tenantId` (`null`: an all-tenant admin). Also applied to settings read
 * back from the store, so a sink stored before these rules cannot start.
 */
export function apiSinkProblems(raw: Obj, tenantId: string | null): SinkPolicyProblems {
  const invalid = environmentReferences(raw, '', []).map((path) => ({
    path,
    message:
      `${path}: environment references (\${…}) are resolved only in the config file the operator writes; ` +
      'give the value itself (secrets are stored encrypted and never shown), or define the sink in the config file',
  }));
  const forbidden: FieldProblem[] = [];
  const def = SINKS[String(raw['type'])];
  if (tenantId !== null && def !== undefined) {
    if (def.hostOnly) {
      forbidden.push({
        path: 'type',
        message: `type: a ${def.kind} sink writes on the server's host, which only the operator (config file) and all-tenant admins may configure`,
      });
    }
    for (const option of def.hostOptions ?? []) {
      const v = valueAt(raw, option);
      if (v !== undefined && v !== null && v !== false) {
        forbidden.push({
          path: option,
          message: `${option}: reaches the server's host or private networks, which only the operator (config file) and all-tenant admins may configure${option.startsWith('tls.') ? `; give ${option.replace(/_file$/, '')} inline (PEM) instead` : ''}`,
        });
      }
    }
  }
  return { invalid, forbidden };
}

import { type FieldProblem, TrailwardenError } from '../errors.js';
import type { SinkOwner, SinkPlacement } from './sink.js';
import { parseSinkConfig, type SinkConfig } from './sink-config.js';
import { SINKS } from './sinks/registry.js';

type Obj = Record<string, unknown>;

/**
 * What a sink may be set up to do, beyond its schema: the admin API's rules
 * below, the tenant rule ({@link scopedToTenant}), and where a sink may act
 * ({@link checkPlacement}, for every sink).
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

/**
 * Checks settings sent through the admin API by an admin bound to
 * `tenantId` against what the API allows ({@link apiSinkProblems}: 403 for
 * what this admin may not use, 422 for what no admin may send), then
 * validates them.
 */
export function parseApiSink(raw: Obj, tenantId: string | null): SinkConfig {
  const { invalid, forbidden } = apiSinkProblems(raw, tenantId);
  if (forbidden.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_FORBIDDEN',
      `this admin key is bound to tenant ${tenantId}: ${forbidden.map((p) => p.message).join('; ')}`,
      { problems: forbidden },
    );
  }
  if (invalid.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_INVALID_SINK',
      `the sink configuration is invalid: ${invalid.map((p) => p.message).join('; ')}`,
      { problems: invalid },
    );
  }
  return parseSinkConfig(raw);
}

/**
 * A tenant's sink only ever sees that tenant's events: the settings with
 * `filter.tenants` set to `[tenantId]`, whoever sends them (`null`: an
 * operator's sink, unchanged). When a sink is created a filter naming other
 * tenants is refused (403, `others: 'refuse'`); a change to an existing one
 * has it overwritten (`'overwrite'`), so a PATCH cannot widen it.
 */
export function scopedToTenant(raw: Obj, tenantId: string | null, others: 'refuse' | 'overwrite'): Obj {
  if (tenantId === null) return raw;
  const filter: unknown = raw['filter'] ?? {};
  const tenants =
    typeof filter === 'object' && filter !== null && 'tenants' in filter ? filter.tenants : undefined;
  if (
    others === 'refuse' &&
    tenants !== undefined &&
    tenants !== null &&
    JSON.stringify(tenants) !== JSON.stringify([tenantId])
  ) {
    throw new TrailwardenError(
      'TW_ERR_FORBIDDEN',
      `this sink belongs to tenant ${tenantId}; it can only carry that tenant's events`,
    );
  }
  // Object.assign, like a spread, copies what a filter that is not an object holds, for the schema to refuse.
  return { ...raw, filter: Object.assign({}, filter, { tenants: [tenantId] }) };
}

/**
 * Refuses a sink whose kind finds fault with where it would act (a file
 * sink outside `file_sink_root` or inside the data folder): a 422 through
 * the API, a failed start for the config file.
 */
export function checkPlacement(
  config: SinkConfig,
  owner: SinkOwner,
  where: Omit<SinkPlacement, 'owner'>,
): void {
  const problems = SINKS[config.type]?.placementProblems?.(config, { owner, ...where }) ?? [];
  if (problems.length === 0) return;
  const text = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  throw owner.source === 'config'
    ? new TrailwardenError('TW_ERR_CONFIG', `sink ${config.name} in the config file: ${text}`, { problems })
    : new TrailwardenError('TW_ERR_INVALID_SINK', `the sink configuration is invalid: ${text}`, {
        problems,
      });
}

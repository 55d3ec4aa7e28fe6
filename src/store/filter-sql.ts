import type { EventFilter, PageRequest } from './store.js';

/** A WHERE clause and its parameters, in the placeholders of the dialect that wrote it. */
export interface SqlFragment {
  where: string;
  params: unknown[];
}

/**
 * What one backend's SQL does its own way when a filter becomes a WHERE
 * clause (`sqlite/sqlite-dialect.ts`, `postgres/postgres-dialect.ts`);
 * everything else about a filter is written once, here, so both backends
 * answer a query alike.
 */
export interface SqlDialect {
  /** The placeholder of the `n`th parameter (from 1). */
  placeholder(n: number): string;
  /** The clause keeping the events of `tenantIds` (never empty); `param` adds a parameter and returns its placeholder. */
  tenantIn(tenantIds: string[], param: (value: unknown) => string): string;
  /** A condition every row meets, and one none meets. */
  always: string;
  never: string;
}

/** Matches every tenant that has events, through the `tenants` table. */
export const ALL_TENANTS = 'tenant_id IN (SELECT tenant_id FROM tenants)';

/** Escapes LIKE wildcards so user text matches literally (ESCAPE '\'). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Translates a filter and a page bound into SQL over the `events` table.
 * Parameters are numbered from 1; the caller adds its own after
 * `params.length`.
 */
export function filterToSql(
  filter: EventFilter,
  page: Pick<PageRequest, 'order' | 'afterSeq'> | undefined,
  dialect: SqlDialect,
): SqlFragment {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const p = (value: unknown) => {
    params.push(value);
    return dialect.placeholder(params.length);
  };
  if (filter.tenantIds !== null) {
    if (filter.tenantIds.length === 0) return { where: dialect.never, params: [] };
    clauses.push(dialect.tenantIn(filter.tenantIds, p));
  } else if (filter.action !== undefined) {
    // No index starts with action (it would cost every insert); naming every
    // tenant lets the (tenant_id, action, seq) index serve all-tenant queries.
    clauses.push(ALL_TENANTS);
  }
  if (filter.from !== undefined) clauses.push(`ts >= ${p(filter.from)}`);
  if (filter.to !== undefined) clauses.push(`ts < ${p(filter.to)}`);
  if (filter.action !== undefined) {
    if (filter.action.prefix) {
      // A range on the indexed column instead of LIKE, so the index is used:
      // every action starting with `v` sorts in [v, v + U+FFFF) by code point
      // (SQLite's BINARY collation; the "C" collation on PostgreSQL).
      clauses.push(`action >= ${p(filter.action.value)} AND action < ${p(`${filter.action.value}\uffff`)}`);
    } else {
      clauses.push(`action = ${p(filter.action.value)}`);
    }
  }
  if (filter.actorId !== undefined) clauses.push(`actor_id = ${p(filter.actorId)}`);
  if (filter.resourceType !== undefined) clauses.push(`resource_type = ${p(filter.resourceType)}`);
  if (filter.resourceId !== undefined) clauses.push(`resource_id = ${p(filter.resourceId)}`);
  if (filter.outcome !== undefined) clauses.push(`outcome = ${p(filter.outcome)}`);
  if (filter.q !== undefined) {
    clauses.push(`search LIKE ${p(`%${escapeLike(filter.q.toLowerCase())}%`)} ESCAPE '\\'`);
  }
  if (page?.afterSeq !== undefined) {
    clauses.push(page.order === 'asc' ? `seq > ${p(page.afterSeq)}` : `seq < ${p(page.afterSeq)}`);
  }
  return { where: clauses.length === 0 ? dialect.always : clauses.join(' AND '), params };
}

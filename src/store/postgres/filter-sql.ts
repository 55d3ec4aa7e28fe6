import type { EventFilter, PageRequest } from '../store.js';

/** A WHERE clause and its parameters, for PostgreSQL's numbered `$n` placeholders. */
export interface SqlFragment {
  where: string;
  params: unknown[];
}

/** Matches every tenant that has events, through the `tenants` table. */
export const ALL_TENANTS = 'tenant_id IN (SELECT tenant_id FROM tenants)';

/** Escapes LIKE wildcards so user text matches literally (ESCAPE '\'). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Translates a filter and a page bound into SQL over the `events` table, with
 * the same semantics as the SQLite backend's `filter-sql.ts`. Parameters are
 * numbered from `$1`; the caller appends its own after `params.length`.
 */
export function filterToSql(
  filter: EventFilter,
  page?: Pick<PageRequest, 'order' | 'afterSeq'>,
): SqlFragment {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const p = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (filter.tenantIds !== null) {
    if (filter.tenantIds.length === 0) return { where: 'false', params: [] };
    clauses.push(`tenant_id = ANY(${p(filter.tenantIds)}::text[])`);
  } else if (filter.action !== undefined) {
    // As in SQLite: naming every tenant lets the (tenant_id, action, seq) index serve.
    clauses.push(ALL_TENANTS);
  }
  if (filter.from !== undefined) clauses.push(`ts >= ${p(filter.from)}`);
  if (filter.to !== undefined) clauses.push(`ts < ${p(filter.to)}`);
  if (filter.action !== undefined) {
    if (filter.action.prefix) {
      // A range on the indexed column (collation "C", so code-point order):
      // every action starting with `v` sorts in [v, v + U+FFFF).
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
  return { where: clauses.length === 0 ? 'true' : clauses.join(' AND '), params };
}

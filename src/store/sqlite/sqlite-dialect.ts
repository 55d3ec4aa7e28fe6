import type { SqlDialect } from '../filter-sql.js';

/**
 * SQLite's SQL where it differs from PostgreSQL's: `?` placeholders, a
 * tenant list spelt out one parameter per tenant (SQLite binds no arrays),
 * and no boolean literals.
 */
export const sqliteDialect: SqlDialect = {
  placeholder: () => '?',
  tenantIn: (tenantIds, param) => `tenant_id IN (${tenantIds.map(param).join(',')})`,
  always: '1',
  never: '0',
};

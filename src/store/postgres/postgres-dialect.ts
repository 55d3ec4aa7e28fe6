import type { SqlDialect } from '../filter-sql.js';

/**
 * PostgreSQL's SQL where it differs from SQLite's: numbered `$n`
 * placeholders, a tenant list as one array parameter (one statement text
 * for any number of tenants), and boolean literals.
 */
export const postgresDialect: SqlDialect = {
  placeholder: (n) => `$${n}`,
  tenantIn: (tenantIds, param) => `tenant_id = ANY(${param(tenantIds)}::text[])`,
  always: 'true',
  never: 'false',
};

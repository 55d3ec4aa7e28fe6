import { join } from 'node:path';

/** Events in one Hive partition of an archive, as DuckDB counts them. */
export interface PartitionCount {
  tenant: string;
  /** `yyyy-mm-dd`, as in the object's key. */
  dt: string;
  /** `hh`, as in the object's key. */
  hour: string;
  events: number;
}

/** What a reader nobody here wrote (DuckDB) makes of an archive folder. */
export interface DuckDbArchiveSummary {
  /** Ordered by tenant, dt, hour. */
  partitions: PartitionCount[];
  /** `event_id`s found more than once, sorted (none in a sound archive). */
  duplicateEventIds: string[];
  total: number;
}

/**
 * Reads an archive's data objects with DuckDB (`@duckdb/node-api`), the way
 * a security team queries a bucket: `read_json_auto` over
 * `DIR/**\/*.jsonl.gz` (or `pattern`) with `hive_partitioning=true`, so the
 * `tenant=`, `dt=` and `hour=` folders become columns. Extension autoloading
 * is off: the JSON reader built into the package is used, with no download.
 * Partition values stay text (`hive_types_autocast=false`), as written.
 */
export async function readArchiveWithDuckDb(
  dir: string,
  opts: { pattern?: string } = {},
): Promise<DuckDbArchiveSummary> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const db = await instance.connect();
  try {
    const glob = join(dir, opts.pattern ?? '**/*.jsonl.gz').replaceAll("'", "''");
    const source =
      `read_json_auto('${glob}', format = 'newline_delimited', hive_partitioning = true, ` +
      'hive_types_autocast = false, union_by_name = true)';
    const partitions = await db.runAndReadAll(
      `SELECT tenant, dt, hour, count(*)::INTEGER AS events FROM ${source} GROUP BY ALL ORDER BY ALL`,
    );
    const duplicates = await db.runAndReadAll(
      `SELECT event_id FROM ${source} GROUP BY event_id HAVING count(*) > 1 ORDER BY event_id`,
    );
    const rows = partitions.getRowObjectsJS().map((r) => ({
      tenant: String(r.tenant),
      dt: String(r.dt),
      hour: String(r.hour),
      events: Number(r.events),
    }));
    return {
      partitions: rows,
      duplicateEventIds: duplicates.getRowObjectsJS().map((r) => String(r.event_id)),
      total: rows.reduce((sum, r) => sum + r.events, 0),
    };
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

let generated: string | undefined;

/**
 * This process's name in leases, logs and `/readyz`: `cluster.node_id` when
 * set, else host name, process id and a random suffix (the same for the
 * life of the process, so the store and the delivery engine agree on it).
 * The suffix keeps a restarted process with a reused pid from passing for
 * its predecessor, whose leases must expire rather than be inherited.
 */
export function nodeIdOf(configured: string | null): string {
  if (configured !== null) return configured;
  generated ??= `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  return generated;
}

import type { ActionEntry, SeedId, SeedMapping, Severity } from './catalog-entry.js';
import { IDENTITY_ACTIONS } from './catalog-identity.js';
import { OPERATIONS_ACTIONS } from './catalog-operations.js';

export type { ActionEntry, CategoryId, SeedId, SeedMapping, Severity } from './catalog-entry.js';
export { ACTION_CATEGORIES, SEVERITIES, SEVERITY_LEVELS } from './catalog-entry.js';

/**
 * The built-in action catalog: every action Trailwarden knows by name, with
 * its meaning, severity and the seed documents' names for it. `docs/events.md`
 * is generated from it (`npm run docs:events`).
 */
export const ACTION_CATALOG: readonly ActionEntry[] = [...IDENTITY_ACTIONS, ...OPERATIONS_ACTIONS];

/** The catalog by action name. Also what `validateEvent` takes as `catalog`. */
export const KNOWN_ACTIONS: ReadonlyMap<string, ActionEntry> = new Map(
  ACTION_CATALOG.map((e) => [e.name, e]),
);

/** Severity of actions the catalog does not know (custom producer actions). */
export const DEFAULT_SEVERITY: Severity = 'medium';

/** The catalog entry for an action, if it is a known one. */
export function findAction(name: string): ActionEntry | undefined {
  return KNOWN_ACTIONS.get(name);
}

/** The severity of an action; `DEFAULT_SEVERITY` for actions outside the catalog. */
export function actionSeverity(name: string): Severity {
  return KNOWN_ACTIONS.get(name)?.severity ?? DEFAULT_SEVERITY;
}

/** A seed document's event name together with the action it maps to. */
export interface SeedNameMatch {
  action: string;
  mapping: SeedMapping;
}

/**
 * The catalog actions a seed's event name maps to (exact, case-sensitive),
 * optionally only from one seed. Lets an error message tell a producer that
 * `login_failed` is sent as `user.login` with outcome `failure`.
 */
export function findSeedName(name: string, seedId?: SeedId): SeedNameMatch[] {
  const out: SeedNameMatch[] = [];
  for (const entry of ACTION_CATALOG) {
    for (const mapping of entry.seeds ?? []) {
      if (mapping.name === name && (seedId === undefined || mapping.seed === seedId)) {
        out.push({ action: entry.name, mapping });
      }
    }
  }
  return out;
}

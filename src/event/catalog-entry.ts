import type { Outcome } from './event.js';

/**
 * How much an action matters to a security analyst, from routine to alarming.
 * Formats that need numbers (syslog, CEF) map them with `SEVERITY_LEVELS`.
 *
 * - `low`: routine activity (a successful login, a read).
 * - `medium`: a change to one account or object, or a failed attempt.
 * - `high`: a change to privileges, credentials of others, security settings.
 * - `critical`: tampering with the audit trail or the administrator set.
 */
export type Severity = 'low' | 'medium' | 'high' | 'critical';

/** Severity order, low to critical. */
export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high', 'critical'];

/**
 * Syslog (RFC 5424 §6.2.1) severity and CEF severity (0–10) for each of ours,
 * so every format maps them the same way.
 */
export const SEVERITY_LEVELS: Readonly<Record<Severity, { syslog: number; cef: number }>> = {
  low: { syslog: 6, cef: 3 },
  medium: { syslog: 5, cef: 5 },
  high: { syslog: 4, cef: 8 },
  critical: { syslog: 2, cef: 10 },
};

/** The seed documents in `/seeds` whose event names the catalog maps. */
export type SeedId = '000' | '001' | '002' | '003' | '004';

/** One event name from a seed document and how it maps to our action. */
export interface SeedMapping {
  seed: SeedId;
  /** The seed's own name for the event, verbatim. */
  name: string;
  /** The outcome to send when the seed's name implies one (`login_failed` → failure). */
  outcome?: Outcome;
  /** What else to carry over, e.g. `metadata.factor_type: totp`. */
  note?: string;
}

/** A known action: what the producer sends in `action`, and what it means. */
export interface ActionEntry {
  /** The action, in the event's action syntax (`user.password.reset`). */
  name: string;
  /** Grouping for documentation and filters; one of `ACTION_CATEGORIES`. */
  category: CategoryId;
  description: string;
  severity: Severity;
  seeds?: SeedMapping[];
}

/** Catalog categories, in documentation order. */
export const ACTION_CATEGORIES = [
  { id: 'authentication', title: 'Authentication' },
  { id: 'sessions', title: 'Sessions' },
  { id: 'mfa', title: 'MFA factors and verification codes' },
  { id: 'identities', title: 'Identities (user accounts)' },
  { id: 'passwords', title: 'Passwords and account recovery' },
  { id: 'oauth', title: 'OAuth authorizations and tokens' },
  { id: 'roles', title: 'Roles and role requests' },
  { id: 'groups', title: 'Groups and membership' },
  { id: 'rights', title: 'Access rights' },
  { id: 'administrators', title: 'Administrators' },
  { id: 'configuration', title: 'Configuration' },
  { id: 'machine_accounts', title: 'Machine accounts' },
  { id: 'certificates', title: 'Certificates' },
  { id: 'audit', title: 'The audit trail itself' },
  { id: 'tasks', title: 'Long-running tasks' },
  { id: 'security', title: 'Security events' },
  { id: 'trailwarden', title: 'Trailwarden service' },
] as const;

export type CategoryId = (typeof ACTION_CATEGORIES)[number]['id'];

/** Shorthand for a seed mapping in the catalog tables. */
export function seed(
  id: SeedId,
  name: string,
  extra: { outcome?: Outcome; note?: string } = {},
): SeedMapping {
  return { seed: id, name, ...extra };
}

/** Shorthand for a catalog entry; `seeds` is left out when empty. */
export function action(
  category: CategoryId,
  name: string,
  severity: Severity,
  description: string,
  seeds: SeedMapping[] = [],
): ActionEntry {
  return seeds.length > 0
    ? { name, category, description, severity, seeds }
    : { name, category, description, severity };
}

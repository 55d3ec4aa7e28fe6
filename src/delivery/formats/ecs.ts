import { isIP } from 'node:net';
import { actionSeverity, SEVERITY_LEVELS } from '../../event/catalog.js';
import { oneLineJson } from '../../event/line-safe-json.js';
import { compact, type Obj, obj, str } from './fields.js';
import type { FormatContext, OutputFormat } from './format.js';

/** The Elastic Common Schema version the documents follow (`ecs.version`). */
export const ECS_VERSION = '8.11.0';

/** ECS categorization for one action: `event.category` and `event.type`. */
export interface EcsCategorization {
  category: readonly string[];
  type: readonly string[];
}

const c = (category: string, ...type: string[]): EcsCategorization => ({ category: [category], type });

/**
 * Our catalog actions → ECS categorization, with values from ECS 8.11's
 * allowed lists and the types each category expects. IAM events carry two
 * types, what happened and to what (`user`, `group`, `admin`), as the ECS
 * user-fields guide asks. Actions not listed use the verb rule below.
 */
export const ECS_ACTIONS: Readonly<Record<string, EcsCategorization>> = {
  'user.login': c('authentication', 'start'),
  'user.login.requested': c('authentication', 'start'),
  'user.logout': c('authentication', 'end'),
  'user.logout.requested': c('authentication', 'end'),
  'sso.assertion.issued': c('authentication', 'info'),
  'user.external_account.linked': c('iam', 'user', 'change'),
  'user.external_account.unlinked': c('iam', 'user', 'change'),
  'user.locked_methods.changed': c('iam', 'user', 'change'),
  'session.created': c('session', 'start'),
  'session.expired': c('session', 'end'),
  'session.revoked': c('session', 'end'),
  'mfa.factor.added': c('iam', 'user', 'change'),
  'mfa.factor.removed': c('iam', 'user', 'change'),
  'mfa.requirement.changed': c('configuration', 'change'),
  'user.verification_code.sent': c('authentication', 'info'),
  'user.created': c('iam', 'user', 'creation'),
  'user.registration.requested': c('iam', 'user', 'info'),
  'user.registration.completed': c('iam', 'user', 'creation'),
  'user.updated': c('iam', 'user', 'change'),
  'user.attribute.confirmed': c('iam', 'user', 'change'),
  'user.deleted': c('iam', 'user', 'deletion'),
  'user.enabled': c('iam', 'user', 'change'),
  'user.disabled': c('iam', 'user', 'change'),
  'user.locked': c('iam', 'user', 'change'),
  'user.unlocked': c('iam', 'user', 'change'),
  'user.password.changed': c('iam', 'user', 'change'),
  'user.password.reset': c('iam', 'user', 'change'),
  'user.password.change_required': c('iam', 'user', 'change'),
  'user.app_password.set': c('iam', 'user', 'change'),
  'user.security_question.changed': c('iam', 'user', 'change'),
  'user.security_question.removed': c('iam', 'user', 'change'),
  'user.recovery.requested': c('iam', 'user', 'info'),
  'user.recovery.completed': c('iam', 'user', 'change'),
  'oauth.authorization.granted': c('iam', 'user', 'change'),
  'oauth.authorization.rejected': c('iam', 'user', 'info'),
  'oauth.authorization.revoked': c('iam', 'user', 'change'),
  'token.issued': c('authentication', 'info'),
  'token.exchanged': c('authentication', 'info'),
  'token.revoked': c('authentication', 'end'),
  'role.created': c('iam', 'admin', 'creation'),
  'role.updated': c('iam', 'admin', 'change'),
  'role.deleted': c('iam', 'admin', 'deletion'),
  'role.privilege.added': c('iam', 'admin', 'change'),
  'role.privilege.removed': c('iam', 'admin', 'change'),
  'role.assigned': c('iam', 'user', 'change'),
  'role.revoked': c('iam', 'user', 'change'),
  'role_request.created': c('iam', 'user', 'info'),
  'role_request.approved': c('iam', 'user', 'change'),
  'role_request.rejected': c('iam', 'user', 'info'),
  'group.created': c('iam', 'group', 'creation'),
  'group.updated': c('iam', 'group', 'change'),
  'group.deleted': c('iam', 'group', 'deletion'),
  // The ECS guide files "user added to group" as user + change.
  'group.member.added': c('iam', 'user', 'change'),
  'group.member.removed': c('iam', 'user', 'change'),
  'right.granted': c('iam', 'user', 'change'),
  'right.revoked': c('iam', 'user', 'change'),
  'admin.created': c('iam', 'user', 'creation'),
  'admin.deleted': c('iam', 'user', 'deletion'),
  'admin.roles.changed': c('iam', 'user', 'change'),
  'admin.password.changed': c('iam', 'user', 'change'),
  'config.created': c('configuration', 'creation'),
  'config.updated': c('configuration', 'change'),
  'config.deleted': c('configuration', 'deletion'),
  'machine_account.created': c('iam', 'user', 'creation'),
  'machine_account.deleted': c('iam', 'user', 'deletion'),
  'machine_account.authenticated': c('authentication', 'start'),
  'machine_account.credential.rotated': c('iam', 'user', 'change'),
  'certificate.issue': c('configuration', 'creation'),
  'certificate.renew': c('configuration', 'change'),
  'certificate.revoke': c('configuration', 'change'),
  'certificate.expire': c('configuration', 'info'),
  'certificate.download': c('configuration', 'access'),
  'audit.trail.read': c('database', 'access'),
  'audit.trail.export': c('database', 'access'),
  'audit.access.denied': c('database', 'access'),
  'audit.trail.modify': c('database', 'change'),
  // ECS 8.11 has no category for an application's own jobs; process (lifecycle) is the closest.
  'task.started': c('process', 'start'),
  'task.completed': c('process', 'end'),
  'task.error': c('process', 'end'),
  'task.cancelled': c('process', 'end'),
  'security.access.denied': c('intrusion_detection', 'denied'),
  'security.ip_allowlist.violated': c('intrusion_detection', 'denied'),
  'security.anomaly.detected': c('intrusion_detection', 'info'),
  'sink.created': c('configuration', 'creation'),
  'sink.updated': c('configuration', 'change'),
  'sink.deleted': c('configuration', 'deletion'),
  'sink.delivery.failing': c('process', 'info'),
  'sink.delivery.recovered': c('process', 'info'),
  'sink.paused': c('configuration', 'change'),
  'sink.resumed': c('configuration', 'change'),
  'sink.replayed': c('configuration', 'change'),
  'sink.dead_letters.redriven': c('configuration', 'change'),
  'key.created': c('iam', 'admin', 'creation'),
  'key.revoked': c('iam', 'admin', 'deletion'),
};

const VERB_TYPE: Readonly<Record<string, string>> = {
  created: 'creation',
  deleted: 'deletion',
  updated: 'change',
  changed: 'change',
  read: 'access',
};

/**
 * The categorization of an action. Custom actions: `user.*` and `group.*`
 * are IAM (user or group + the verb's type), anything else is configuration,
 * and the last word picks the type (`created` → creation, …, else info).
 */
export function ecsCategorization(action: string): EcsCategorization {
  const mapped = ECS_ACTIONS[action];
  if (mapped) return mapped;
  const words = action.split('.');
  const verb = VERB_TYPE[words.at(-1) ?? ''];
  const head = words[0];
  if (head === 'user' || head === 'group') {
    return c('iam', head, verb === 'access' || verb === undefined ? 'info' : verb);
  }
  return c('configuration', verb ?? 'info');
}

/**
 * Elastic Common Schema 8.11: one document per event, ready for an
 * Elasticsearch index or data stream. `denied` becomes `event.outcome:
 * failure` (ECS has no third outcome) and is kept in `trailwarden.outcome`.
 * Fields ECS has no place for go under `trailwarden.*`. A redacted IP address
 * is not an IP and would make Elasticsearch reject the document, so it moves
 * to `trailwarden.source_ip`.
 */
export const ecs: OutputFormat = {
  name: 'ecs',
  description: `Elastic Common Schema ${ECS_VERSION} documents, one JSON object per line.`,
  contentType: 'application/json',
  create: (_options, ctx) => (event) => oneLineJson(toEcs(event, ctx)),
};

/** The ECS document for one shaped event. */
export function toEcs(event: Obj, ctx: FormatContext): Obj {
  const action = str(event['action']) ?? '';
  const { category, type } = ecsCategorization(action);
  const outcome = str(event['outcome']);
  const actor = obj(event['actor']);
  const resource = obj(event['resource']);
  const resourceType = str(resource?.['type']);
  const ip = str(event['source_ip']);
  const ipOk = ip !== undefined && isIP(ip) !== 0;

  const target =
    resourceType === 'user'
      ? compact({ id: str(resource?.['id']), name: str(resource?.['name']) })
      : undefined;
  const group =
    resourceType === 'group'
      ? compact({ id: str(resource?.['id']), name: str(resource?.['name']) })
      : undefined;

  const doc: Obj = {
    '@timestamp': str(event['timestamp']) ?? str(event['received_at']),
    ecs: { version: ECS_VERSION },
    event: compact({
      kind: 'event',
      category,
      type,
      action: action || undefined,
      outcome: outcome === 'success' ? 'success' : outcome === undefined ? 'unknown' : 'failure',
      reason: str(event['reason']),
      id: str(event['event_id']),
      sequence: typeof event['seq'] === 'number' ? event['seq'] : undefined,
      created: str(event['received_at']),
      // Same 0–10 scale as CEF, so rules written for either agree.
      severity: SEVERITY_LEVELS[actionSeverity(action)].cef,
      provider: ctx.product.toLowerCase(),
      dataset: `${ctx.product.toLowerCase()}.audit`,
    }),
    user: compact({
      id: str(actor?.['id']),
      name: str(actor?.['name']),
      email: str(actor?.['email']),
      target,
    }),
    group,
    source: ipOk ? { ip } : undefined,
    user_agent: str(event['user_agent']) === undefined ? undefined : { original: event['user_agent'] },
    organization: str(event['tenant_id']) === undefined ? undefined : { id: event['tenant_id'] },
    http: str(event['request_id']) === undefined ? undefined : { request: { id: event['request_id'] } },
    observer: { vendor: ctx.vendor, product: ctx.product, version: ctx.version, hostname: ctx.hostname },
    trailwarden: compact({
      outcome,
      severity: actionSeverity(action),
      actor_type: str(actor?.['type']),
      resource: target || group ? undefined : resource,
      resource_type: target || group ? resourceType : undefined,
      source_ip: ip !== undefined && !ipOk ? ip : undefined,
      session_id: str(event['session_id']),
      changes: event['changes'],
      metadata: event['metadata'],
      leaf_hash: str(event['leaf_hash']),
    }),
  };
  return compact(doc) ?? {};
}

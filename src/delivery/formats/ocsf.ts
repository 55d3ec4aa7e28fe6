import { isIP } from 'node:net';
import { actionSeverity, type Severity } from '../../event/catalog.js';
import { oneLineJson } from '../../event/line-safe-json.js';
import { compact, type Obj, obj, str } from './fields.js';
import type { FormatContext, OutputFormat } from './format.js';

/** The OCSF schema version every event is written against (`metadata.version`). */
export const OCSF_VERSION = '1.3.0';

/** An OCSF event class of schema 1.3.0: its ids and the activities we use. */
export interface OcsfClass {
  uid: number;
  name: string;
  category_uid: number;
  category_name: string;
  /** activity_id → activity_name, as in the class definition (0 Unknown and 99 Other are in every class). */
  activities: Readonly<Record<number, string>>;
}

const IAM = { category_uid: 3, category_name: 'Identity & Access Management' };
const OTHER = 99;

/** The classes we map to, from ocsf-schema 1.3.0 `events/iam/*.json` and `events/application/api.json`. */
export const OCSF_CLASSES = {
  account_change: {
    uid: 3001,
    name: 'Account Change',
    ...IAM,
    activities: {
      1: 'Create',
      2: 'Enable',
      3: 'Password Change',
      4: 'Password Reset',
      5: 'Disable',
      6: 'Delete',
      7: 'Attach Policy',
      8: 'Detach Policy',
      9: 'Lock',
      10: 'MFA Factor Enable',
      11: 'MFA Factor Disable',
      99: 'Other',
    },
  },
  authentication: {
    uid: 3002,
    name: 'Authentication',
    ...IAM,
    activities: {
      1: 'Logon',
      2: 'Logoff',
      3: 'Authentication Ticket',
      4: 'Service Ticket Request',
      5: 'Service Ticket Renew',
      6: 'Preauth',
      99: 'Other',
    },
  },
  entity_management: {
    uid: 3004,
    name: 'Entity Management',
    ...IAM,
    activities: {
      1: 'Create',
      2: 'Read',
      3: 'Update',
      4: 'Delete',
      5: 'Move',
      6: 'Enroll',
      7: 'Unenroll',
      8: 'Enable',
      9: 'Disable',
      10: 'Activate',
      11: 'Deactivate',
      12: 'Suspend',
      13: 'Resume',
      99: 'Other',
    },
  },
  user_access: {
    uid: 3005,
    name: 'User Access Management',
    ...IAM,
    activities: { 1: 'Assign Privileges', 2: 'Revoke Privileges', 99: 'Other' },
  },
  group_management: {
    uid: 3006,
    name: 'Group Management',
    ...IAM,
    activities: {
      1: 'Assign Privileges',
      2: 'Revoke Privileges',
      3: 'Add User',
      4: 'Remove User',
      5: 'Delete',
      6: 'Create',
      99: 'Other',
    },
  },
  api_activity: {
    uid: 6003,
    name: 'API Activity',
    category_uid: 6,
    category_name: 'Application Activity',
    activities: { 1: 'Create', 2: 'Read', 3: 'Update', 4: 'Delete', 99: 'Other' },
  },
} as const satisfies Record<string, OcsfClass>;

export type OcsfClassKey = keyof typeof OCSF_CLASSES;

/**
 * Our catalog actions → OCSF class and activity. Actions not listed here
 * (custom producer actions, and catalog actions without an IAM meaning such
 * as tasks and detections) fall back to API Activity with an activity taken
 * from the action's verb. docs/formats.md shows this table.
 */
export const OCSF_ACTIONS: Readonly<Record<string, readonly [OcsfClassKey, number]>> = {
  'user.login': ['authentication', 1],
  'user.login.requested': ['authentication', 1],
  'user.logout': ['authentication', 2],
  'user.logout.requested': ['authentication', 2],
  'session.created': ['authentication', 1],
  'session.expired': ['authentication', 2],
  'session.revoked': ['authentication', 2],
  'sso.assertion.issued': ['authentication', 3],
  'token.issued': ['authentication', 3],
  'token.exchanged': ['authentication', 3],
  'token.revoked': ['authentication', OTHER],
  'machine_account.authenticated': ['authentication', 1],
  'user.verification_code.sent': ['authentication', OTHER],

  'user.created': ['account_change', 1],
  'user.registration.completed': ['account_change', 1],
  'user.registration.requested': ['account_change', OTHER],
  'user.updated': ['account_change', OTHER],
  'user.attribute.confirmed': ['account_change', OTHER],
  'user.enabled': ['account_change', 2],
  'user.disabled': ['account_change', 5],
  'user.deleted': ['account_change', 6],
  'user.locked': ['account_change', 9],
  // 1.3.0 has no Unlock activity (it came later); Other keeps the event in the right class.
  'user.unlocked': ['account_change', OTHER],
  'user.password.changed': ['account_change', 3],
  'user.password.reset': ['account_change', 4],
  'user.password.change_required': ['account_change', OTHER],
  'user.app_password.set': ['account_change', OTHER],
  'user.security_question.changed': ['account_change', OTHER],
  'user.security_question.removed': ['account_change', OTHER],
  'user.recovery.requested': ['account_change', OTHER],
  'user.recovery.completed': ['account_change', OTHER],
  'user.external_account.linked': ['account_change', OTHER],
  'user.external_account.unlinked': ['account_change', OTHER],
  'user.locked_methods.changed': ['account_change', OTHER],
  'mfa.factor.added': ['account_change', 10],
  'mfa.factor.removed': ['account_change', 11],
  'admin.created': ['account_change', 1],
  'admin.deleted': ['account_change', 6],
  'admin.password.changed': ['account_change', 3],
  'machine_account.created': ['account_change', 1],
  'machine_account.deleted': ['account_change', 6],
  'machine_account.credential.rotated': ['account_change', OTHER],

  'role.assigned': ['user_access', 1],
  'role.revoked': ['user_access', 2],
  'right.granted': ['user_access', 1],
  'right.revoked': ['user_access', 2],
  'admin.roles.changed': ['user_access', OTHER],

  'group.created': ['group_management', 6],
  'group.deleted': ['group_management', 5],
  'group.updated': ['group_management', OTHER],
  'group.member.added': ['group_management', 3],
  'group.member.removed': ['group_management', 4],

  'config.created': ['entity_management', 1],
  'config.updated': ['entity_management', 3],
  'config.deleted': ['entity_management', 4],
  'mfa.requirement.changed': ['entity_management', 3],
  'role.created': ['entity_management', 1],
  'role.updated': ['entity_management', 3],
  'role.deleted': ['entity_management', 4],
  'role.privilege.added': ['entity_management', 3],
  'role.privilege.removed': ['entity_management', 3],
  'role_request.created': ['entity_management', 1],
  'role_request.approved': ['entity_management', 3],
  'role_request.rejected': ['entity_management', 3],
  'oauth.authorization.granted': ['entity_management', 1],
  'oauth.authorization.rejected': ['entity_management', OTHER],
  'oauth.authorization.revoked': ['entity_management', 4],
  'certificate.issue': ['entity_management', 1],
  'certificate.renew': ['entity_management', 3],
  'certificate.revoke': ['entity_management', 11],
  'certificate.expire': ['entity_management', OTHER],
  'certificate.download': ['entity_management', 2],
  'audit.trail.read': ['entity_management', 2],
  'audit.trail.export': ['entity_management', 2],
  'audit.access.denied': ['entity_management', 2],
  'audit.trail.modify': ['entity_management', 3],
  'sink.created': ['entity_management', 1],
  'sink.updated': ['entity_management', 3],
  'sink.deleted': ['entity_management', 4],
  'sink.paused': ['entity_management', 12],
  'sink.resumed': ['entity_management', 13],
  'sink.replayed': ['entity_management', OTHER],
  'sink.dead_letters.redriven': ['entity_management', OTHER],
  'key.created': ['entity_management', 1],
  'key.revoked': ['entity_management', 11],
};

/** API Activity (the fallback) by the action's last word: `invoice.created` → Create. */
const VERB_ACTIVITY: Readonly<Record<string, number>> = {
  created: 1,
  read: 2,
  viewed: 2,
  updated: 3,
  changed: 3,
  deleted: 4,
};

/** OCSF `severity_id`: routine activity is Informational; the rest keep their names. */
export const OCSF_SEVERITY: Readonly<Record<Severity, number>> = { low: 1, medium: 3, high: 4, critical: 5 };
const SEVERITY_NAMES: Readonly<Record<number, string>> = {
  1: 'Informational',
  3: 'Medium',
  4: 'High',
  5: 'Critical',
};

/** The class and activity an action maps to. */
export function ocsfClassOf(action: string): { cls: OcsfClass; activityId: number } {
  const mapped = OCSF_ACTIONS[action];
  if (mapped) return { cls: OCSF_CLASSES[mapped[0]], activityId: mapped[1] };
  const verb = action.split('.').at(-1) ?? '';
  return { cls: OCSF_CLASSES.api_activity, activityId: VERB_ACTIVITY[verb] ?? OTHER };
}

/** Milliseconds since the epoch of an ISO timestamp; undefined when absent or redacted. */
function epochMs(v: unknown): number | undefined {
  const s = str(v);
  const ms = s === undefined ? Number.NaN : Date.parse(s);
  return Number.isNaN(ms) ? undefined : ms;
}

/** An OCSF user object; the email only when it still looks like one (a hashed one does not). */
function ocsfUser(u: Obj | undefined, rest: Obj): Obj | undefined {
  if (!u) return undefined;
  const email = str(u['email']);
  const isEmail = email !== undefined && /^[^@\s]+@[^@\s]+$/.test(email);
  if (email !== undefined && !isEmail) rest['email'] = email;
  return compact({
    uid: str(u['id']),
    name: str(u['name']),
    email_addr: isEmail ? email : undefined,
    type: str(u['type']),
  });
}

/**
 * Open Cybersecurity Schema Framework 1.3.0: each event becomes the IAM class
 * that fits its action (Authentication, Account Change, User Access
 * Management, Group Management, Entity Management) or API Activity. Fields
 * OCSF has no attribute for go to `unmapped`; fields the sink's shaping
 * removed stay out. A redacted IP address is not an IP, so it moves to
 * `unmapped` instead of `src_endpoint.ip`.
 */
export const ocsf: OutputFormat = {
  name: 'ocsf',
  description: `Open Cybersecurity Schema Framework ${OCSF_VERSION} (IAM classes, API Activity as fallback), one JSON object per line.`,
  contentType: 'application/json',
  create: (_options, ctx) => (event) => oneLineJson(toOcsf(event, ctx)),
};

/** The OCSF object for one shaped event. */
export function toOcsf(event: Obj, ctx: FormatContext): Obj {
  const action = str(event['action']) ?? '';
  const { cls, activityId } = ocsfClassOf(action);
  const severityId = OCSF_SEVERITY[actionSeverity(action)];
  const outcome = str(event['outcome']);
  const statusId = outcome === 'success' ? 1 : outcome === 'failure' || outcome === 'denied' ? 2 : 0;
  const reason = str(event['reason']);
  const actor = obj(event['actor']);
  const resource = obj(event['resource']);
  const metadata = obj(event['metadata']);

  const unmapped: Obj = {};
  const actorRest: Obj = {};
  const targetRest: Obj = {};
  const actorUser = ocsfUser(actor, actorRest);
  const resourceIsUser = str(resource?.['type']) === 'user';
  const targetUser = resourceIsUser ? ocsfUser(resource, targetRest) : undefined;

  const ip = str(event['source_ip']);
  const ipOk = ip !== undefined && isIP(ip) !== 0;
  if (ip !== undefined && !ipOk) unmapped['source_ip'] = ip;
  const userAgent = str(event['user_agent']);
  const sessionId = str(event['session_id']);

  const out: Obj = {
    class_uid: cls.uid,
    class_name: cls.name,
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    activity_id: activityId,
    activity_name: cls.activities[activityId] ?? 'Other',
    type_uid: cls.uid * 100 + activityId,
    type_name: `${cls.name}: ${cls.activities[activityId] ?? 'Other'}`,
    severity_id: severityId,
    severity: SEVERITY_NAMES[severityId],
    status_id: statusId,
    status: statusId === 1 ? 'Success' : statusId === 2 ? 'Failure' : 'Unknown',
    status_detail: outcome === 'denied' ? (reason ? `denied: ${reason}` : 'denied') : reason,
    time: epochMs(event['timestamp']) ?? epochMs(event['received_at']),
    message: outcome === undefined ? action : `${action} ${outcome}`,
    metadata: compact({
      version: OCSF_VERSION,
      product: { name: ctx.product, vendor_name: ctx.vendor, version: ctx.version },
      uid: str(event['event_id']),
      event_code: action || undefined,
      sequence: typeof event['seq'] === 'number' ? event['seq'] : undefined,
      tenant_uid: str(event['tenant_id']),
      logged_time: epochMs(event['received_at']),
      correlation_uid: str(event['request_id']),
      log_name: 'audit',
    }),
    actor: compact({
      user: actorUser,
      session: sessionId === undefined ? undefined : { uid: sessionId },
    }),
    src_endpoint: ipOk ? { ip } : undefined,
    http_request: userAgent === undefined ? undefined : { user_agent: userAgent },
  };

  // Class-specific attributes: the user acted on, the group, the privileges, the entity.
  let resourcePlaced = targetUser !== undefined;
  switch (cls.uid) {
    case OCSF_CLASSES.authentication.uid:
      // The subject authenticating is the actor unless the event names another user.
      out['user'] = targetUser ?? actorUser;
      if (sessionId !== undefined) out['session'] = { uid: sessionId };
      break;
    case OCSF_CLASSES.account_change.uid:
      out['user'] = targetUser ?? (resource ? undefined : actorUser);
      break;
    case OCSF_CLASSES.user_access.uid: {
      out['user'] = targetUser;
      const privilege =
        str(metadata?.['role']) ?? str(metadata?.['right_name']) ?? str(metadata?.['privilege']);
      if (privilege !== undefined) out['privileges'] = [privilege];
      break;
    }
    case OCSF_CLASSES.group_management.uid:
      out['user'] = targetUser;
      if (str(resource?.['type']) === 'group') {
        out['group'] = compact({ uid: str(resource?.['id']), name: str(resource?.['name']) });
        resourcePlaced = true;
      } else {
        out['group'] = compact({ uid: str(metadata?.['group_id']), name: str(metadata?.['group']) });
      }
      break;
    case OCSF_CLASSES.entity_management.uid:
      if (resource) {
        out['entity'] = compact({
          uid: str(resource['id']),
          name: str(resource['name']),
          type: str(resource['type']),
        });
        resourcePlaced = true;
      }
      break;
    default:
      out['api'] = { operation: action };
      if (resource) {
        out['resources'] = [
          compact({ uid: str(resource['id']), name: str(resource['name']), type: str(resource['type']) }) ??
            {},
        ];
      }
      resourcePlaced = resource !== undefined;
  }
  if (resource && !resourcePlaced) unmapped['resource'] = resource;
  if (Object.keys(actorRest).length > 0) unmapped['actor'] = actorRest;
  if (Object.keys(targetRest).length > 0)
    unmapped['resource'] = { ...obj(unmapped['resource']), ...targetRest };
  if (outcome === 'denied') unmapped['outcome'] = outcome;
  for (const key of ['changes', 'metadata', 'leaf_hash'] as const) {
    if (event[key] !== undefined) unmapped[key] = event[key];
  }
  out['unmapped'] = compact(unmapped);
  return compact(out) ?? {};
}

import { type ActionEntry, action, seed } from './catalog-entry.js';

// Catalog entries about privileges, administration and the platform itself:
// roles, groups, rights, administrators, configuration, machine accounts,
// certificates, the audit trail, tasks, security events and Trailwarden's own.

const ROLES: ActionEntry[] = [
  action('roles', 'role.created', 'high', 'A role was created.', [
    seed('002', 'New role created'),
    seed('004', 'ROLE_CREATE'),
  ]),
  action('roles', 'role.updated', 'high', 'A role was modified (put the fields in `changes`).', [
    seed('002', 'Role modified'),
    seed('004', 'Role update'),
  ]),
  action('roles', 'role.deleted', 'high', 'A role was deleted.', [
    seed('002', 'Role deleted'),
    seed('004', 'Role delete'),
  ]),
  action('roles', 'role.privilege.added', 'high', 'A privilege was added to a role.', [
    seed('004', 'Adding privilege on role'),
  ]),
  action('roles', 'role.privilege.removed', 'high', 'A privilege was removed from a role.', [
    seed('004', 'Removing privilege on role'),
  ]),
  action(
    'roles',
    'role.assigned',
    'high',
    'A role was assigned to a user (resource = the user, metadata.role).',
    [
      seed('001', 'Role assignment'),
      seed('002', 'Privilege/role assigned to identity'),
      seed('004', 'Role assignment'),
    ],
  ),
  action('roles', 'role.revoked', 'high', 'A role was taken away from a user.', [
    seed('002', 'Privilege/role revoked from identity'),
    seed('004', 'Role unassignment'),
  ]),
  action(
    'roles',
    'role_request.created',
    'medium',
    'Someone asked for a role to be assigned (a role request awaiting approval).',
  ),
  action('roles', 'role_request.approved', 'high', 'A role request was approved.', [
    seed('002', 'Role request approved'),
    seed('004', 'Approval of a role request'),
  ]),
  action('roles', 'role_request.rejected', 'medium', 'A role request was rejected.', [
    seed('002', 'Role request rejected'),
    seed('004', 'Disapproval of a role request'),
  ]),
];

const GROUPS: ActionEntry[] = [
  action('groups', 'group.created', 'medium', 'A user group was created.', [seed('003', 'group_registered')]),
  action('groups', 'group.updated', 'medium', "A group's attributes changed or were deleted.", [
    seed('003', 'group_attr_changed'),
  ]),
  action('groups', 'group.deleted', 'medium', 'A user group was deleted.', [seed('003', 'group_removed')]),
  action('groups', 'group.member.added', 'medium', 'A user joined a group.', [
    seed('001', 'Group membership change', { note: 'member added' }),
    seed('003', 'member_added'),
  ]),
  action('groups', 'group.member.removed', 'medium', 'A user was removed from a group.', [
    seed('001', 'Group membership change', { note: 'member removed' }),
    seed('003', 'member_removed'),
  ]),
];

const RIGHTS: ActionEntry[] = [
  action('rights', 'right.granted', 'high', 'An access right was granted (metadata.right_name, tags).', [
    seed('003', 'grant_right'),
  ]),
  action('rights', 'right.revoked', 'high', 'An access right was revoked.', [seed('003', 'revoke_right')]),
];

const ADMINISTRATORS: ActionEntry[] = [
  action('administrators', 'admin.created', 'critical', 'An administrator account was added.', [
    seed('003', 'admin_added'),
  ]),
  action('administrators', 'admin.deleted', 'critical', 'An administrator account was removed.', [
    seed('003', 'admin_removed'),
  ]),
  action(
    'administrators',
    'admin.roles.changed',
    'critical',
    "An administrator's roles changed (changes: old_roles → new_roles).",
    [seed('003', 'admin_roles_changed')],
  ),
  action('administrators', 'admin.password.changed', 'high', "An administrator's password changed.", [
    seed('003', 'admin_pswd_changed'),
  ]),
];

const CONFIGURATION: ActionEntry[] = [
  action(
    'configuration',
    'config.created',
    'high',
    'A configuration property was defined (never log its value).',
    [seed('004', 'Application configuration property created')],
  ),
  action(
    'configuration',
    'config.updated',
    'high',
    'Configuration settings changed (metadata.module; no secret values).',
    [
      seed('001', 'Account configuration update'),
      seed('003', 'config_changed'),
      seed('004', 'Application configuration property updated'),
    ],
  ),
  action('configuration', 'config.deleted', 'high', 'A configuration property was deleted.', [
    seed('004', 'Application configuration property deleted'),
  ]),
];

const MACHINE_ACCOUNTS: ActionEntry[] = [
  action(
    'machine_accounts',
    'machine_account.created',
    'high',
    'A machine account (service account) was created.',
  ),
  action('machine_accounts', 'machine_account.deleted', 'high', 'A machine account was deleted.'),
  action(
    'machine_accounts',
    'machine_account.authenticated',
    'low',
    'A machine account authenticated to an API.',
    [seed('001', 'API authentication')],
  ),
  action(
    'machine_accounts',
    'machine_account.credential.rotated',
    'high',
    "A machine account's secret or key was replaced.",
  ),
];

const CERTIFICATES: ActionEntry[] = [
  action('certificates', 'certificate.issue', 'medium', 'A certificate was issued.', [
    seed('001', 'certificate.issue'),
    seed('001', 'Certificate issuance'),
  ]),
  action('certificates', 'certificate.renew', 'medium', 'A certificate was renewed.', [
    seed('001', 'Certificate renewal'),
  ]),
  action('certificates', 'certificate.revoke', 'high', 'A certificate was revoked.', [
    seed('001', 'Certificate revocation'),
  ]),
  action('certificates', 'certificate.expire', 'medium', 'A certificate expired.', [
    seed('001', 'Certificate expiry'),
  ]),
  action('certificates', 'certificate.download', 'medium', 'A certificate (or its key) was downloaded.', [
    seed('001', 'Certificate download'),
  ]),
];

const AUDIT: ActionEntry[] = [
  action('audit', 'audit.trail.read', 'low', 'Someone queried or streamed the audit trail.', [
    seed('004', 'Audit trail read'),
  ]),
  action('audit', 'audit.trail.export', 'medium', 'Someone exported part of the audit trail.'),
  action(
    'audit',
    'audit.access.denied',
    'high',
    'A caller was refused access to the audit trail (role or tenant).',
  ),
  action(
    'audit',
    'audit.trail.modify',
    'critical',
    'Someone tried to change or delete recorded audit events.',
    [seed('004', 'Attempts to modify the audit trail', { outcome: 'denied' })],
  ),
];

const TASKS: ActionEntry[] = [
  action('tasks', 'task.started', 'low', 'A long-running task (sync, import, report) started.', [
    seed('004', 'LRT start'),
  ]),
  action('tasks', 'task.completed', 'low', 'A long-running task ended; outcome says whether it succeeded.', [
    seed('004', 'LRT end', { note: 'outcome success or failure' }),
  ]),
  action('tasks', 'task.error', 'medium', 'A long-running task hit an error (it may continue).', [
    seed('004', 'LRT errors', { outcome: 'failure' }),
  ]),
  action('tasks', 'task.cancelled', 'low', 'A long-running task was cancelled.'),
];

const SECURITY: ActionEntry[] = [
  action(
    'security',
    'security.access.denied',
    'high',
    'An action was refused for missing privileges (permission denied).',
    [
      seed('001', 'Permission denied error', { outcome: 'denied' }),
      seed('004', 'Failed actions due to missing privileges', { outcome: 'denied' }),
    ],
  ),
  action(
    'security',
    'security.ip_allowlist.violated',
    'high',
    'A request came from an address outside the IP allow-list.',
    [
      seed('001', 'IP whitelist enforcement', { outcome: 'denied' }),
      seed('001', 'IP whitelist violation', { outcome: 'denied' }),
    ],
  ),
  action('security', 'security.anomaly.detected', 'high', 'An anomalous access pattern was detected.', [
    seed('001', 'Anomalous access pattern'),
  ]),
];

const TRAILWARDEN: ActionEntry[] = [
  action('trailwarden', 'sink.created', 'high', 'A delivery sink was configured.'),
  action('trailwarden', 'sink.updated', 'high', "A sink's configuration changed (no secret values)."),
  action('trailwarden', 'sink.deleted', 'high', 'A sink was removed.'),
  action(
    'trailwarden',
    'sink.delivery.failing',
    'high',
    'A sink has kept failing to deliver; its lag is growing.',
  ),
  action('trailwarden', 'sink.delivery.recovered', 'medium', 'A failing sink delivered again.'),
  action('trailwarden', 'sink.paused', 'medium', 'An operator paused a sink.'),
  action('trailwarden', 'sink.resumed', 'medium', 'An operator resumed (or re-enabled) a sink.'),
  action(
    'trailwarden',
    'sink.replayed',
    'high',
    "An operator moved a sink's cursor to deliver events again.",
  ),
  action(
    'trailwarden',
    'sink.dead_letters.redriven',
    'medium',
    'An operator had a sink deliver its dead letters again.',
  ),
  action(
    'trailwarden',
    'log.checkpoint.signed',
    'low',
    'A signed checkpoint of the log, sent to sinks with send_checkpoints so the receiver keeps witnesses; a record of its own, not an event of the log.',
  ),
  action('trailwarden', 'key.created', 'high', 'An API key was created.'),
  action('trailwarden', 'key.revoked', 'high', 'An API key was revoked.'),
  action(
    'trailwarden',
    'log.retention.changed',
    'high',
    "A tenant's retention period was set or removed (metadata.days, null when removed; metadata.previous).",
  ),
  action(
    'trailwarden',
    'log.retention.pruned',
    'medium',
    "The pruner removed a tenant's events past retention, keeping their leaf hashes (metadata: run_id, through_seq, received_before, days, pruned, seq_digest); never pruned itself.",
  ),
  action(
    'trailwarden',
    'log.legal_hold.placed',
    'high',
    'A legal hold was placed: the events it matches are neither pruned nor erased until it is lifted (metadata: hold_id, match, reason).',
  ),
  action(
    'trailwarden',
    'log.legal_hold.lifted',
    'high',
    'A legal hold was lifted (metadata: hold_id, match, reason).',
  ),
  action(
    'trailwarden',
    'log.erasure.completed',
    'high',
    "A data subject's personal fields were removed from a tenant's events (metadata: erasure_id, subject_kind, reason, matched, redacted, held, fields, seq_digest; never the subject); never erased itself.",
  ),
];

/** Catalog entries about privileges, administration and the platform. */
export const OPERATIONS_ACTIONS: readonly ActionEntry[] = [
  ...ROLES,
  ...GROUPS,
  ...RIGHTS,
  ...ADMINISTRATORS,
  ...CONFIGURATION,
  ...MACHINE_ACCOUNTS,
  ...CERTIFICATES,
  ...AUDIT,
  ...TASKS,
  ...SECURITY,
  ...TRAILWARDEN,
];

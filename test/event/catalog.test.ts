import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EVENTS_DOC_PATH, renderEventsDoc } from '../../scripts/gen-events-doc.js';
import {
  ACTION_CATALOG,
  ACTION_CATEGORIES,
  actionSeverity,
  DEFAULT_SEVERITY,
  findAction,
  findSeedName,
  type SeedId,
} from '../../src/event/catalog.js';
import { ACTION_PATTERN, MAX_ACTION_CHARS } from '../../src/event/validate.js';

// Every security event type Blitz Identity Provider lists (seed 003), verbatim.
const BLITZ_EVENT_TYPES =
  'admin_added admin_pswd_changed admin_removed admin_roles_changed app_password_changed attribute_changed attribute_confirmed auth auth_failed auth_req authz_granted authz_rejected authz_revoked bind_ext_account config_changed duo_put duo_remove grant_right group_attr_changed group_registered group_removed hotp_attached hotp_detached internal_user_deleted locked_methods_changed login login_failed login_stopped logout logout_req member_added member_removed needed_password_change recovery recovery_fail recovery_req registration registration_req required_factor_changed reset_user_password reset_user_sessions revoke_right send_email_code send_push_code send_sms_code token_exchange_failed token_exchanged token_granted totp_attached totp_detached unbind_ext_account user_locked user_password_changed user_sec_qsn_changed user_sec_qsn_removed user_unlocked web_authn_reg_key web_authn_revoke_key'.split(
    ' ',
  );

// The events CzechIdM recommends a SIEM watch (seed 002).
const CZECHIDM_EVENTS = [
  'Successful login',
  'Unsuccessful login',
  'New identity created',
  'Identity deleted',
  'Identity enabled',
  'Identity disabled',
  'Identity password changed',
  'Privilege/role assigned to identity',
  'Privilege/role revoked from identity',
  'Role request approved',
  'Role request rejected',
  'New role created',
  'Role modified',
  'Role deleted',
];

function mapsTo(seed: SeedId, name: string): string[] {
  return findSeedName(name, seed).map((m) => m.action);
}

describe('action catalog', () => {
  it('has unique names that all match the action syntax', () => {
    const names = ACTION_CATALOG.map((e) => e.name);
    assert.equal(new Set(names).size, names.length, 'duplicate action names');
    for (const name of names) {
      assert.match(name, ACTION_PATTERN);
      assert.ok(name.length <= MAX_ACTION_CHARS, name);
    }
  });

  it('puts every entry in a declared category with a description and a severity', () => {
    const categories = new Set<string>(ACTION_CATEGORIES.map((c) => c.id));
    for (const e of ACTION_CATALOG) {
      assert.ok(categories.has(e.category), `${e.name}: unknown category ${e.category}`);
      assert.ok(e.description.length > 10, `${e.name}: description too short`);
      assert.ok(['low', 'medium', 'high', 'critical'].includes(e.severity), e.name);
    }
  });

  it('maps every Blitz event type (seed 003) to exactly one action', () => {
    assert.equal(BLITZ_EVENT_TYPES.length, 58);
    for (const name of BLITZ_EVENT_TYPES) {
      assert.equal(mapsTo('003', name).length, 1, `Blitz ${name} should map to one action`);
    }
  });

  it('maps every event CzechIdM recommends monitoring (seed 002)', () => {
    for (const name of CZECHIDM_EVENTS) assert.equal(mapsTo('002', name).length, 1, name);
  });

  it('maps failure seed names onto the same action with the outcome in the mapping', () => {
    const failed = findSeedName('login_failed', '003');
    assert.deepEqual(
      failed.map((m) => [m.action, m.mapping.outcome]),
      [['user.login', 'failure']],
    );
    assert.deepEqual(mapsTo('002', 'Unsuccessful login'), ['user.login']);
    assert.deepEqual(mapsTo('003', 'token_exchange_failed'), ['token.exchanged']);
  });

  it('maps the named seed 004 and seed 001 events', () => {
    assert.deepEqual(mapsTo('004', 'IDENTITY_PASSWORD_RESET'), ['user.password.reset']);
    assert.deepEqual(mapsTo('004', 'ROLE_CREATE'), ['role.created']);
    assert.deepEqual(mapsTo('004', 'Failed actions due to missing privileges'), ['security.access.denied']);
    assert.deepEqual(mapsTo('004', 'LRT start'), ['task.started']);
    assert.deepEqual(mapsTo('001', 'certificate.issue'), ['certificate.issue']);
    assert.deepEqual(mapsTo('001', 'Session expiry'), ['session.expired']);
  });

  it("includes the audit trail's own events and the service's future events", () => {
    for (const name of [
      'audit.access.denied',
      'audit.trail.read',
      'audit.trail.export',
      'sink.created',
      'sink.updated',
      'sink.deleted',
      'sink.delivery.failing',
      'sink.delivery.recovered',
      'key.created',
      'key.revoked',
    ]) {
      assert.ok(findAction(name), `${name} missing`);
    }
  });

  it('gives known actions their severity and unknown ones the default', () => {
    assert.equal(actionSeverity('admin.created'), 'critical');
    assert.equal(actionSeverity('user.login'), 'low');
    assert.equal(actionSeverity('acme.widget.frobbed'), DEFAULT_SEVERITY);
    assert.equal(findAction('acme.widget.frobbed'), undefined);
  });
});

describe('docs/events.md', () => {
  it('is up to date with the catalog (regenerate with npm run docs:events)', () => {
    assert.equal(readFileSync(EVENTS_DOC_PATH, 'utf8'), renderEventsDoc());
  });

  it('lists every catalog action and every Blitz event type', () => {
    const doc = renderEventsDoc();
    for (const e of ACTION_CATALOG) assert.ok(doc.includes(`\`${e.name}\``), e.name);
    for (const name of BLITZ_EVENT_TYPES) assert.ok(doc.includes(`| ${name} |`), name);
  });
});

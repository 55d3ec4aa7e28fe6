import { type ActionEntry, action, seed } from './catalog-entry.js';

// Catalog entries about end users: signing in, sessions, factors, accounts,
// passwords and OAuth. One action per thing that happened; whether it worked
// goes in `outcome`, so a seed's `login` and `login_failed` share `user.login`.

const AUTHENTICATION: ActionEntry[] = [
  action('authentication', 'user.login', 'low', 'A user signed in (or tried to: outcome failure / denied).', [
    seed('001', 'User login'),
    seed('001', 'Failed authentication attempt', { outcome: 'failure' }),
    seed('002', 'Successful login'),
    seed('002', 'Unsuccessful login', { outcome: 'failure' }),
    seed('003', 'login'),
    seed('003', 'login_failed', { outcome: 'failure' }),
    seed('003', 'login_stopped', {
      outcome: 'failure',
      note: 'metadata.stopped: true, the login was abandoned',
    }),
    seed('003', 'auth', { note: 'metadata.grant: password, the OAuth 2.0 ROPC grant' }),
    seed('003', 'auth_failed', { outcome: 'failure' }),
    seed('004', 'Log-on attempt', { note: 'outcome success or failure' }),
  ]),
  action(
    'authentication',
    'user.login.requested',
    'low',
    'An application asked the identity provider to authenticate a user.',
    [seed('003', 'auth_req')],
  ),
  action('authentication', 'user.logout', 'low', 'A user signed out.', [
    seed('001', 'User logout'),
    seed('003', 'logout'),
    seed('004', 'Log-off attempt', { note: 'outcome success or failure' }),
  ]),
  action(
    'authentication',
    'user.logout.requested',
    'low',
    'An application asked the identity provider to sign a user out.',
    [seed('003', 'logout_req')],
  ),
  action(
    'authentication',
    'sso.assertion.issued',
    'low',
    'A SAML or OIDC assertion was issued to a relying party.',
    [seed('001', 'SSO assertion')],
  ),
  action(
    'authentication',
    'user.external_account.linked',
    'medium',
    'A user account was bound to an external identity provider account.',
    [seed('003', 'bind_ext_account')],
  ),
  action(
    'authentication',
    'user.external_account.unlinked',
    'medium',
    'A user account was unbound from an external identity provider account.',
    [seed('003', 'unbind_ext_account')],
  ),
  action(
    'authentication',
    'user.locked_methods.changed',
    'high',
    'The list of authentication methods blocked for a user changed.',
    [seed('003', 'locked_methods_changed')],
  ),
];

const SESSIONS: ActionEntry[] = [
  action('sessions', 'session.created', 'low', 'A session was started for a user or machine account.'),
  action('sessions', 'session.expired', 'low', 'A session ended because it timed out.', [
    seed('001', 'Session expiry'),
  ]),
  action(
    'sessions',
    'session.revoked',
    'medium',
    "A user's sessions were ended by the user or an administrator (devices logged out).",
    [seed('003', 'reset_user_sessions', { note: 'metadata.scope: all sessions of the user' })],
  ),
];

const MFA: ActionEntry[] = [
  action(
    'mfa',
    'mfa.factor.added',
    'high',
    'A second factor (TOTP, HOTP, security key, authenticator app) was bound to a user.',
    [
      seed('003', 'duo_put', { note: 'metadata.factor_type: duo' }),
      seed('003', 'hotp_attached', { note: 'metadata.factor_type: hotp' }),
      seed('003', 'totp_attached', { note: 'metadata.factor_type: totp' }),
      seed('003', 'web_authn_reg_key', { note: 'metadata.factor_type: webauthn' }),
    ],
  ),
  action('mfa', 'mfa.factor.removed', 'high', 'A second factor was unbound from a user.', [
    seed('003', 'duo_remove', { note: 'metadata.factor_type: duo' }),
    seed('003', 'hotp_detached', { note: 'metadata.factor_type: hotp' }),
    seed('003', 'totp_detached', { note: 'metadata.factor_type: totp' }),
    seed('003', 'web_authn_revoke_key', { note: 'metadata.factor_type: webauthn' }),
  ]),
  action(
    'mfa',
    'mfa.requirement.changed',
    'high',
    "A user's authentication mode (whether a second factor is required) changed.",
    [seed('003', 'required_factor_changed')],
  ),
  action('mfa', 'user.verification_code.sent', 'low', 'A one-time confirmation code was sent to a user.', [
    seed('003', 'send_email_code', { note: 'metadata.channel: email' }),
    seed('003', 'send_push_code', { note: 'metadata.channel: push' }),
    seed('003', 'send_sms_code', { note: 'metadata.channel: sms' }),
  ]),
];

const IDENTITIES: ActionEntry[] = [
  action(
    'identities',
    'user.created',
    'medium',
    'A user account (identity) was created by an administrator or a provisioning system.',
    [
      seed('000', 'user.human.added'),
      seed('001', 'User creation'),
      seed('002', 'New identity created'),
      seed('004', 'Create of identity'),
    ],
  ),
  action(
    'identities',
    'user.registration.requested',
    'low',
    'Someone started self-registration of an account.',
    [seed('003', 'registration_req')],
  ),
  action('identities', 'user.registration.completed', 'medium', 'A self-registered account was created.', [
    seed('003', 'registration'),
  ]),
  action(
    'identities',
    'user.updated',
    'medium',
    "A user's attributes changed (put the fields in `changes`).",
    [
      seed('003', 'attribute_changed', { note: 'changes: [{field: attr_name, old, new}]' }),
      seed('004', 'Change of identity attributes'),
    ],
  ),
  action(
    'identities',
    'user.attribute.confirmed',
    'low',
    'A user confirmed an attribute (an email address or phone number).',
    [seed('003', 'attribute_confirmed')],
  ),
  action('identities', 'user.deleted', 'high', 'A user account was deleted.', [
    seed('002', 'Identity deleted'),
    seed('003', 'internal_user_deleted'),
    seed('004', 'Delete of identity'),
  ]),
  action('identities', 'user.enabled', 'medium', 'A disabled user account was enabled.', [
    seed('002', 'Identity enabled'),
    seed('004', 'Enable of identity'),
  ]),
  action('identities', 'user.disabled', 'medium', 'A user account was disabled (deactivated).', [
    seed('001', 'User deactivation'),
    seed('002', 'Identity disabled'),
    seed('004', 'Disable of identity'),
  ]),
  action('identities', 'user.locked', 'medium', 'A user account was locked (e.g. after failed logins).', [
    seed('003', 'user_locked'),
  ]),
  action('identities', 'user.unlocked', 'medium', 'A locked user account was unlocked.', [
    seed('003', 'user_unlocked'),
  ]),
];

const PASSWORDS: ActionEntry[] = [
  action('passwords', 'user.password.changed', 'medium', 'A user changed their own password.', [
    seed('000', 'password changed'),
    seed('002', 'Identity password changed'),
    seed('003', 'user_password_changed'),
    seed('004', 'Password change'),
  ]),
  action(
    'passwords',
    'user.password.reset',
    'high',
    "Someone else (an administrator, a help desk) set a user's password.",
    [seed('003', 'reset_user_password'), seed('004', 'IDENTITY_PASSWORD_RESET')],
  ),
  action(
    'passwords',
    'user.password.change_required',
    'medium',
    'A user was flagged to change their password at the next login.',
    [seed('003', 'needed_password_change', { note: 'metadata.alt_pswd_cause' })],
  ),
  action(
    'passwords',
    'user.app_password.set',
    'medium',
    'An application-specific password was set for a user.',
    [seed('003', 'app_password_changed')],
  ),
  action(
    'passwords',
    'user.security_question.changed',
    'medium',
    "A user's security question was set or changed.",
    [seed('003', 'user_sec_qsn_changed')],
  ),
  action('passwords', 'user.security_question.removed', 'medium', "A user's security question was removed.", [
    seed('003', 'user_sec_qsn_removed'),
  ]),
  action('passwords', 'user.recovery.requested', 'medium', 'Someone asked to recover access to an account.', [
    seed('003', 'recovery_req'),
  ]),
  action(
    'passwords',
    'user.recovery.completed',
    'high',
    'Access to an account was restored (or the attempt failed: outcome failure).',
    [seed('003', 'recovery'), seed('003', 'recovery_fail', { outcome: 'failure' })],
  ),
];

const OAUTH: ActionEntry[] = [
  action(
    'oauth',
    'oauth.authorization.granted',
    'medium',
    'A user authorised an application (OAuth consent, scopes in metadata).',
    [seed('003', 'authz_granted', { note: 'metadata.oauth_scopes' })],
  ),
  action('oauth', 'oauth.authorization.rejected', 'low', 'A user declined to authorise an application.', [
    seed('003', 'authz_rejected'),
  ]),
  action(
    'oauth',
    'oauth.authorization.revoked',
    'medium',
    'A user or administrator withdrew an application authorisation.',
    [seed('003', 'authz_revoked')],
  ),
  action('oauth', 'token.issued', 'low', 'An access token was issued.', [
    seed('000', 'user token created'),
    seed('003', 'token_granted'),
  ]),
  action(
    'oauth',
    'token.exchanged',
    'medium',
    'A token was exchanged for another (RFC 8693); refused exchanges have outcome denied.',
    [
      seed('001', 'Federated identity token exchange'),
      seed('003', 'token_exchanged'),
      seed('003', 'token_exchange_failed', { outcome: 'denied' }),
    ],
  ),
  action('oauth', 'token.revoked', 'medium', 'An access or refresh token was revoked.'),
];

/** Catalog entries about end users and their credentials. */
export const IDENTITY_ACTIONS: readonly ActionEntry[] = [
  ...AUTHENTICATION,
  ...SESSIONS,
  ...MFA,
  ...IDENTITIES,
  ...PASSWORDS,
  ...OAUTH,
];

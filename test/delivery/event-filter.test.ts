import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileSinkFilter } from '../../src/delivery/event-filter.js';

const filter = {
  include_actions: ['user.*'],
  exclude_actions: [],
  tenants: ['acme'],
  outcomes: ['failure' as const],
};
const notice = { tenant_id: 'acme', action: 'log.erasure.completed', outcome: 'success' as const };

describe('a sink filter with erasure_notices', () => {
  test("passes log.erasure.completed of the sink's tenants whatever its actions and outcomes say", () => {
    const pass = compileSinkFilter({ filter, erasure_notices: true });
    assert.equal(pass(notice), true);
    assert.equal(pass({ ...notice, tenant_id: 'globex' }), false, "another tenant's notice stays out");
    assert.equal(pass({ ...notice, action: 'log.retention.pruned' }), false);
    assert.equal(pass({ tenant_id: 'acme', action: 'user.login', outcome: 'failure' }), true);
  });

  test('without the option the filter drops the notice as any other action', () => {
    assert.equal(compileSinkFilter({ filter, erasure_notices: false })(notice), false);
  });
});

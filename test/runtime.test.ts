import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import { nodeIdOf } from '../src/cluster/node-id.js';
import { parseConfig } from '../src/config/load-config.js';
import { storeSettingsFrom } from '../src/runtime.js';

const parse = (text: string) => parseConfig(text, { env: {}, overrides: {}, fileName: 'trailwarden.yaml' });

describe('store settings from the config', () => {
  test('the store gets the backend, the data folder and each cluster setting under its own name', () => {
    const config = parse(
      [
        'store: postgres://db.example/audit?pool_size=3',
        'data_dir: relative/data',
        'cluster:',
        '  node_id: node-7',
        '  lease_ms: 2000',
        '  max_pending_events: 700',
        '  pending_wait_ms: 3000',
      ].join('\n'),
    );
    assert.deepEqual(storeSettingsFrom(config), {
      store: 'postgres://db.example/audit?pool_size=3',
      dataDir: resolve('relative/data'),
      cluster: { nodeId: 'node-7', leaseMs: 2000, maxPendingEvents: 700, pendingWaitMs: 3000 },
    });
  });

  test('without a node_id the store is named as the rest of the process is', () => {
    assert.equal(storeSettingsFrom(parse('store: sqlite')).cluster?.nodeId, nodeIdOf(null));
  });
});

// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are config text with ${VAR} references
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { formatPath, loadConfig, parseConfig } from '../../src/config/load-config.js';
import { parseListen } from '../../src/config/schema.js';
import { isTrailwardenError } from '../../src/errors.js';

/** Runs `fn` expecting a TW_ERR_CONFIG error and returns its message. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isTrailwardenError(err), `expected a TrailwardenError, got ${String(err)}`);
    assert.equal(err.code, 'TW_ERR_CONFIG');
    return err.message;
  }
  assert.fail('expected a configuration error');
}

const parse = (text: string, env: NodeJS.ProcessEnv = {}, overrides = {}) =>
  parseConfig(text, { env, overrides, fileName: 'trailwarden.yaml' });

describe('loadConfig', () => {
  test('without a file every setting has its documented default', async () => {
    const config = await loadConfig({ env: {} });
    assert.deepEqual(config, {
      listen: '127.0.0.1:8080',
      data_dir: './data',
      file_sink_root: null,
      store: 'sqlite',
      default_tenant: 'default',
      strict_actions: false,
      audit_reads: true,
      limits: {
        max_event_bytes: 32768,
        max_batch_events: 1000,
        max_body_bytes: 5242880,
        max_metadata_depth: 8,
        max_metadata_keys: 256,
        max_string_length: 1024,
        max_text_length: 8192,
        max_array_length: 256,
        max_clock_skew_ms: 300000,
        max_event_age_ms: null,
        max_page_size: 1000,
        max_inflight_body_bytes: 67108864,
        headers_timeout_ms: 10000,
        request_timeout_ms: 60000,
        keep_alive_timeout_ms: 72000,
        idle_timeout_ms: 300000,
      },
      checkpoints: {
        every_events: 1000,
        every_ms: 10000,
        origin: null,
        key_file: null,
        key_name: null,
        key_pem: null,
      },
      stream: { heartbeat_ms: 15000, max_buffered_bytes: 1048576 },
      cluster: { lease_ms: 10000, node_id: null, max_pending_events: 5000, pending_wait_ms: 10000 },
      log_level: 'info',
      sinks: [],
      emit: null,
      secrets: { key_file: null },
      retention: {
        default_days: null,
        minimum_days: 1,
        prune_interval_ms: 3600000,
        prune_after_delivered: [],
        chunk_events: 500,
        busy_share_percent: 5,
        erasure: { metadata_paths: [] },
      },
      allowed_private_networks: [],
    });
  });

  test('a file sets nested values and keeps the defaults of the others', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tw-config-'));
    try {
      const file = join(dir, 'trailwarden.yaml');
      await writeFile(file, 'listen: 0.0.0.0:9000\nlimits:\n  max_page_size: 50\n');
      const config = await loadConfig({ file, env: {} });
      assert.equal(config.listen, '0.0.0.0:9000');
      assert.equal(config.limits.max_page_size, 50);
      assert.equal(config.limits.max_event_bytes, 32768);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a missing file is a config error naming the file', async () => {
    await assert.rejects(loadConfig({ file: '/nonexistent/tw.yaml', env: {} }), (err: unknown) => {
      assert.ok(isTrailwardenError(err));
      assert.equal(err.code, 'TW_ERR_CONFIG');
      assert.match(err.message, /\/nonexistent\/tw\.yaml/);
      return true;
    });
  });

  test('environment variables override the file and CLI flags override both', () => {
    const text = 'listen: 127.0.0.1:1000\ndata_dir: /file\nlog_level: warn\n';
    const env = {
      TRAILWARDEN_LISTEN: '127.0.0.1:2000',
      TRAILWARDEN_DATA_DIR: '/env',
      TRAILWARDEN_LOG_LEVEL: 'debug',
    };
    const config = parse(text, env, { listen: '127.0.0.1:3000' });
    assert.equal(config.listen, '127.0.0.1:3000');
    assert.equal(config.data_dir, '/env');
    assert.equal(config.log_level, 'debug');
  });

  test('an invalid override names the variable it came from', () => {
    const message = configError(() => parse('', { TRAILWARDEN_LOG_LEVEL: 'loud' }));
    assert.match(
      message,
      /log_level: expected one of fatal, error, warn, info, debug, trace, silent \(from TRAILWARDEN_LOG_LEVEL\)/,
    );
  });

  test('the signing key is read from TRAILWARDEN_SIGNING_KEY and refused in the file', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n';
    assert.equal(parse('', { TRAILWARDEN_SIGNING_KEY: pem }).checkpoints.key_pem, pem);
    const message = configError(() => parse('checkpoints:\n  key_pem: secret\n'));
    assert.match(
      message,
      /checkpoints\.key_pem: unknown setting; the signing key is read only from the TRAILWARDEN_SIGNING_KEY/,
    );
  });

  test('the store is sqlite or a postgres:// URL; anything else is refused naming both', () => {
    assert.equal(parse('store: postgres://db/trail\n').store, 'postgres://db/trail');
    assert.equal(
      parse('store: postgresql://u@db:5433/trail?pool_size=20\n').store,
      'postgresql://u@db:5433/trail?pool_size=20',
    );
    assert.match(
      configError(() => parse('store: mysql://db/trail\n')),
      /^\s*- store: /m,
    );
    assert.match(
      configError(() => parse('store: postgres://db/trail?pool_size=0\n')),
      /pool_size/,
    );
  });

  test('listen must be HOST:PORT with a valid port', () => {
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.match(
      configError(() => parse('listen: localhost\n')),
      /listen: expected HOST:PORT/,
    );
    assert.match(
      configError(() => parse('listen: "127.0.0.1:70000"\n')),
      /listen: expected HOST:PORT/,
    );
  });
});

describe('environment substitution', () => {
  test('a substituted value containing YAML syntax stays one string', () => {
    const config = parse('default_tenant: ${TENANT}\ndata_dir: "${DIR}"\n', {
      TENANT: 'acme: {}',
      DIR: 'x\nstrict_actions: true',
    });
    assert.equal(config.default_tenant, 'acme: {}');
    assert.equal(config.data_dir, 'x\nstrict_actions: true');
    assert.equal(config.strict_actions, false);
  });

  test('an unquoted substitution that is a number is read as a number, a quoted one is not', () => {
    assert.equal(parse('limits:\n  max_page_size: ${PAGE}\n', { PAGE: '25' }).limits.max_page_size, 25);
    const message = configError(() => parse('limits:\n  max_page_size: "${PAGE}"\n', { PAGE: '25' }));
    assert.match(message, /limits\.max_page_size: must be an integer between 1 and 10000/);
  });

  test('an unset variable without a default names the variable and the path', () => {
    const message = configError(() => parse('checkpoints:\n  key_file: ${KEY_DIR}/key.pem\n'));
    assert.match(message, /trailwarden\.yaml/);
    assert.match(message, /checkpoints\.key_file: environment variable KEY_DIR is not set/);
  });

  test('keys are left alone: only values are substituted', () => {
    const message = configError(() => parse('${X}: 1\n', { X: 'listen' }));
    assert.match(message, /\$\{X\}/);
  });
});

describe('validation messages', () => {
  test('name the exact nested path and the allowed range', () => {
    const message = configError(() => parse('limits:\n  max_event_bytes: 10\n  max_page_size: 2.5\n'));
    assert.match(message, /^Invalid configuration in trailwarden\.yaml:/);
    assert.match(
      message,
      / {2}- limits\.max_event_bytes: must be an integer between 1024 and 1048576 \(line 2\)/,
    );
    assert.match(message, / {2}- limits\.max_page_size: must be an integer between 1 and 10000 \(line 3\)/);
  });

  test('bound the flow-control settings of a cluster', () => {
    const message = configError(() => parse('cluster:\n  max_pending_events: 10\n  pending_wait_ms: -1\n'));
    assert.match(
      message,
      /cluster\.max_pending_events: must be an integer between 100 and 1000000 \(line 2\)/,
    );
    assert.match(message, /cluster\.pending_wait_ms: must be an integer between 0 and 300000 \(line 3\)/);
  });

  test('bound every retention setting and keep the default period at or above the minimum', () => {
    const message = configError(() =>
      parse(
        [
          'retention:',
          '  default_days: 36501',
          '  minimum_days: 0',
          '  prune_interval_ms: 1000',
          '  chunk_events: 50',
          '  prune_after_delivered: [Not A Sink]',
          '  busy_share_percent: 0',
          '  erasure:',
          '    metadata_paths: [actor.email]',
          '',
        ].join('\n'),
      ),
    );
    assert.match(message, /retention\.default_days: must be an integer between 1 and 36500 \(line 2\)/);
    assert.match(message, /retention\.minimum_days: must be an integer between 1 and 36500 \(line 3\)/);
    assert.match(
      message,
      /retention\.prune_interval_ms: must be an integer between 60000 and 604800000 \(line 4\)/,
    );
    assert.match(message, /retention\.chunk_events: must be an integer between 100 and 50000 \(line 5\)/);
    assert.match(message, /retention\.prune_after_delivered\[0\]: expected a sink name/);
    assert.match(message, /retention\.busy_share_percent: must be an integer between 1 and 100 \(line 7\)/);
    assert.match(
      message,
      /retention\.erasure\.metadata_paths\[0\]: expected a dot path into metadata such as metadata\.phone/,
    );
    const below = configError(() => parse('retention:\n  default_days: 7\n  minimum_days: 30\n'));
    assert.match(below, /retention\.default_days: must be at least retention\.minimum_days \(30\)/);
    const many = configError(() =>
      parse(
        `retention:\n  erasure:\n    metadata_paths: [${Array.from({ length: 65 }, (_, i) => `metadata.f${i}`).join(', ')}]\n`,
      ),
    );
    assert.match(many, /retention\.erasure\.metadata_paths: at most 64 paths/);
  });

  test('bound the connection settings and keep them consistent with each other', () => {
    const bounds = configError(() =>
      parse(
        'limits:\n  headers_timeout_ms: 50\n  request_timeout_ms: 0\n  keep_alive_timeout_ms: 99\n  idle_timeout_ms: 999\n  max_inflight_body_bytes: 1\n',
      ),
    );
    assert.match(bounds, /limits\.headers_timeout_ms: must be an integer between 100 and 600000 \(line 2\)/);
    assert.match(bounds, /limits\.request_timeout_ms: must be an integer between 100 and 3600000 \(line 3\)/);
    assert.match(
      bounds,
      /limits\.keep_alive_timeout_ms: must be an integer between 100 and 3600000 \(line 4\)/,
    );
    assert.match(bounds, /limits\.idle_timeout_ms: must be an integer between 1000 and 3600000 \(line 5\)/);
    assert.match(
      bounds,
      /limits\.max_inflight_body_bytes: must be an integer between 1024 and 4294967296 \(line 6\)/,
    );

    const inconsistent = configError(() =>
      parse(
        'limits:\n  headers_timeout_ms: 5000\n  request_timeout_ms: 1000\n  max_body_bytes: 65536\n  max_inflight_body_bytes: 4096\n',
      ),
    );
    assert.match(
      inconsistent,
      /limits\.headers_timeout_ms: must be at most limits\.request_timeout_ms \(1000\)/,
    );
    assert.match(
      inconsistent,
      /limits\.max_inflight_body_bytes: must be at least limits\.max_body_bytes \(65536\)/,
    );
  });

  test('every silence the server keeps with a client is shorter than limits.idle_timeout_ms', () => {
    const message = configError(() =>
      parse(
        [
          'limits:\n  idle_timeout_ms: 20000',
          'stream:\n  heartbeat_ms: 20000',
          'cluster:\n  pending_wait_ms: 30000',
          'sinks:\n  - { name: out, type: stdout }',
          'emit:\n  to_all_of: [out]\n  timeout_ms: 25000',
        ].join('\n'),
      ),
    );
    assert.match(message, /stream\.heartbeat_ms: must be less than limits\.idle_timeout_ms \(20000\)/);
    assert.match(message, /cluster\.pending_wait_ms: must be less than limits\.idle_timeout_ms \(20000\)/);
    assert.match(message, /emit\.timeout_ms: must be less than limits\.idle_timeout_ms \(20000\)/);
    const ok = parse(
      'limits:\n  idle_timeout_ms: 20000\nstream:\n  heartbeat_ms: 15000\ncluster:\n  pending_wait_ms: 5000\n',
    );
    assert.equal(ok.limits.idle_timeout_ms, 20000);
  });

  test('list every problem at once', () => {
    const message = configError(() => parse('strict_actions: maybe\nstream:\n  heartbeat_ms: 1\n'));
    assert.match(message, /strict_actions: expected true or false/);
    assert.match(message, /stream\.heartbeat_ms: must be an integer between 1000 and 300000/);
  });

  test('refuse unknown keys and suggest the closest known one', () => {
    const message = configError(() => parse('limits:\n  max_event_byte: 2048\nbogus: 1\n'));
    assert.match(
      message,
      /limits\.max_event_byte: unknown setting; did you mean "max_event_bytes"\? \(line 2\)/,
    );
    assert.match(message, /bogus: unknown setting \(line 3\)/);
  });

  test('format array indexes and odd keys in paths', () => {
    assert.equal(formatPath(['sinks', 0, 'url']), 'sinks[0].url');
    assert.equal(formatPath(['labels', 'a b']), 'labels["a b"]');
    const schema = z.strictObject({
      sinks: z.array(z.strictObject({ url: z.url({ error: 'expected a URL' }) })),
    });
    const issue = schema.safeParse({ sinks: [{ url: 'http://ok' }, { url: 'nope' }] }).error?.issues[0];
    assert.equal(`${formatPath(issue?.path ?? [])}: ${issue?.message}`, 'sinks[1].url: expected a URL');
  });

  test('a YAML syntax error names the line and column', () => {
    const message = configError(() => parse('listen: 127.0.0.1:8080\nlimits: [1, 2\nlog_level: "info\n'));
    assert.match(message, /line 3, column \d+: YAML syntax error: /);
  });

  test('a document that is not a mapping is refused', () => {
    assert.match(
      configError(() => parse('- a\n- b\n')),
      /\(top level\): expected a mapping/,
    );
  });
});

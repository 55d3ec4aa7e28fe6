import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load-config.js';
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
  return assert.fail('expected a configuration error');
}

const parse = (text: string, overrides = {}) =>
  parseConfig(text, { env: {}, overrides, fileName: 'trailwarden.yaml' });

describe('file_sink_root', () => {
  test('is null unless set, and an absolute folder apart from data_dir is kept as given', () => {
    assert.equal(parse('').file_sink_root, null);
    const config = parse('data_dir: /var/lib/trailwarden\nfile_sink_root: /var/log/trailwarden/sinks\n');
    assert.equal(config.file_sink_root, '/var/log/trailwarden/sinks');
  });

  test('a relative path is refused: the folder must be named absolutely', () => {
    const message = configError(() => parse('file_sink_root: sinks\n'));
    assert.match(message, /file_sink_root: must be an absolute path, e.g. .* \(line 1\)/);
  });

  test('a folder inside data_dir, or one containing it, is refused with both named', () => {
    const inside = configError(() =>
      parse('data_dir: /var/lib/trailwarden\nfile_sink_root: /var/lib/trailwarden/files\n'),
    );
    assert.match(
      inside,
      /file_sink_root: \/var\/lib\/trailwarden\/files is inside data_dir \(\/var\/lib\/trailwarden\)/,
    );
    const same = configError(() => parse('data_dir: /srv/tw\nfile_sink_root: /srv/tw/\n'));
    assert.match(same, /is inside data_dir \(\/srv\/tw\)/);
    const around = configError(() => parse('data_dir: /srv/tw/data\nfile_sink_root: /srv\n'));
    assert.match(around, /file_sink_root: \/srv contains data_dir \(\/srv\/tw\/data\)/);
  });

  test('data_dir given on the command line is checked against it too', () => {
    const message = configError(() => parse('file_sink_root: /srv/tw/sinks\n', { data_dir: '/srv/tw' }));
    assert.match(message, /file_sink_root: \/srv\/tw\/sinks is inside data_dir \(\/srv\/tw\)/);
  });

  test('a sibling whose name starts like data_dir is not inside it', () => {
    assert.equal(parse('data_dir: /srv/tw\nfile_sink_root: /srv/tw-sinks\n').file_sink_root, '/srv/tw-sinks');
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeResult } from '../../src/cli/verify.js';
import type { VerifyLogResult } from '../../src/verify/verify-log.js';

const base: Extract<VerifyLogResult, { ok: true }> = {
  ok: true,
  events: 1000,
  checkpoints: 4,
  treeSize: 1000,
  root: 'cm9vdA==',
  uncovered: 0,
  trusted: [],
  pruned: { count: 0, firstSeq: 0, lastSeq: 0, contiguous: false, runs: [] },
  redacted: { count: 0, erasures: [] },
  inProgress: [],
};

const pruned = (firstSeq: number, lastSeq: number, count: number) => ({
  count,
  firstSeq,
  lastSeq,
  contiguous: lastSeq - firstSeq + 1 === count,
  runs: [{ runId: 'prn_1', tenantId: 'acme', count }],
});

describe('the OK line of verify', () => {
  test('a log that forgot nothing reads as before', () => {
    assert.equal(
      describeResult(base),
      'OK: 1000 events, 4 signed checkpoint(s) verified; tree size 1000, root cm9vdA==',
    );
  });

  test('leaves pruned contiguously from seq 1 read "pruned by retention before seq N"', () => {
    assert.match(
      describeResult({ ...base, pruned: pruned(1, 250, 250) }),
      /^OK: 1000 events, 250 pruned by retention before seq 251, 4 signed checkpoint\(s\) verified;/,
    );
  });

  test('pruned leaves that do not start at seq 1 or have kept events between read as a range', () => {
    assert.match(
      describeResult({ ...base, pruned: pruned(11, 20, 10) }),
      /, 10 pruned by retention \(seq 11–20\),/,
    );
    assert.match(
      describeResult({ ...base, pruned: pruned(1, 300, 250) }),
      /, 250 pruned by retention \(seq 1–300, with kept events between\),/,
    );
  });

  test('redacted events are counted and named by their erasures', () => {
    const redacted = {
      count: 12,
      erasures: [
        { erasureId: 'era_A', count: 10 },
        { erasureId: 'era_B', count: 2 },
      ],
    };
    assert.match(
      describeResult({ ...base, pruned: pruned(1, 250, 250), redacted }),
      /^OK: 1000 events, 250 pruned by retention before seq 251, 12 redacted by 2 erasures \(era_A, era_B\), 4 signed/,
    );
  });

  test('a prune run in progress is a warning line after the OK line', () => {
    const text = describeResult({
      ...base,
      inProgress: [
        {
          kind: 'prune_run',
          id: 'prn_9',
          tenantId: 'acme',
          count: 5,
          message: 'prune run prn_9 is in progress',
        },
      ],
    });
    assert.match(text, /^OK: .*\nWarning: prune run prn_9 is in progress\.$/);
  });
});

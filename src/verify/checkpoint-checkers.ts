import { type NoteVerifier, verifyCheckpoint } from '../log/checkpoint.js';
import type { MerkleFrontier } from '../store/merkle/frontier.js';
import type { CheckpointRecord } from '../store/store.js';

/** The checkpoints a log is held to, and how. */
export interface CheckpointInput {
  /** The signed checkpoints, ascending by tree size. */
  checkpoints: readonly CheckpointRecord[];
  /** The key the checkpoints must be signed with. */
  verifier: NoteVerifier;
  /**
   * Checkpoints the verifier kept from earlier (`verify --trusted-checkpoint`).
   * Each must be signed by `verifier`, and the log must reach its tree size with
   * the same root, whether or not the log still keeps that checkpoint: a log
   * rolled back or cut short cannot verify against what its verifiers saw.
   */
  trusted?: readonly TrustedCheckpoint[];
  /** When set, every checkpoint must name this log origin. */
  origin?: string;
  /**
   * The events may end before the last checkpoints: a copy that lags the log
   * (an archive whose sink wrote a checkpoint before the objects it covers).
   * Checkpoints past the last event are then checked for their signature
   * only and listed in `ahead`, instead of failing as deleted events.
   */
  mayLagCheckpoints?: boolean;
}

/** A checkpoint the verifier kept, and where it was kept (for messages). */
export interface TrustedCheckpoint extends CheckpointRecord {
  /** E.g. the file it was read from. */
  source: string;
}

/** A checkpoint the log fails, as `verifyLog` reports it. */
export interface CheckpointFailure {
  ok: false;
  /** The first bad `seq`, or `null` when the problem is the checkpoint itself. */
  seq: number | null;
  problem: 'deleted' | 'truncated' | 'bad_signature' | 'root_mismatch' | 'malformed';
  message: string;
  /** Tree size of the checkpoint involved. */
  checkpointSize?: number;
  /** For `root_mismatch`: the events the failing checkpoint covers beyond the last good one. */
  range?: { fromSeq: number; toSeq: number };
}

/** Walks the checkpoints in step with the rebuilt tree. */
export class CheckpointChecker {
  verified = 0;
  lastGoodSize = 0;
  /** Signed checkpoints past the last event, when the events may lag them. */
  readonly ahead: number[] = [];
  #next = 0;
  readonly #input: CheckpointInput;

  constructor(input: CheckpointInput) {
    this.#input = input;
  }

  /** Checks every checkpoint whose tree size the frontier has reached. */
  checkUpTo(frontier: MerkleFrontier): CheckpointFailure | undefined {
    const list = this.#input.checkpoints;
    for (let cp = list[this.#next]; cp !== undefined && cp.treeSize <= frontier.size; cp = list[this.#next]) {
      const failure = this.#checkOne(cp, frontier);
      if (failure) return failure;
      this.#next += 1;
    }
    return undefined;
  }

  /** Checkpoints past the end of the log: valid ones prove events were cut off the tail. */
  checkBeyond(seen: number): CheckpointFailure | undefined {
    const cp = this.#input.checkpoints[this.#next];
    if (cp === undefined) return undefined;
    const failure = this.#checkSigned(cp);
    if (failure) return failure;
    if (this.#input.mayLagCheckpoints) {
      for (const later of this.#input.checkpoints.slice(this.#next)) {
        const bad = this.#checkSigned(later);
        if (bad) return bad;
        this.ahead.push(later.treeSize);
      }
      return undefined;
    }
    return {
      ok: false,
      seq: seen + 1,
      problem: 'deleted',
      checkpointSize: cp.treeSize,
      message:
        `a checkpoint signed for ${cp.treeSize} events exists but the log ends at seq ${seen}: ` +
        `events ${seen + 1}..${cp.treeSize} were deleted`,
    };
  }

  #checkOne(cp: CheckpointRecord, frontier: MerkleFrontier): CheckpointFailure | undefined {
    if (cp.treeSize < this.lastGoodSize || cp.treeSize < frontier.size) {
      return {
        ok: false,
        seq: null,
        problem: 'malformed',
        checkpointSize: cp.treeSize,
        message: `checkpoints are not in ascending tree-size order (size ${cp.treeSize} after ${frontier.size})`,
      };
    }
    const failure = this.#checkSigned(cp);
    if (failure) return failure;
    const root = frontier.root().toString('base64');
    if (root !== cp.rootHash) {
      const fromSeq = Math.min(this.lastGoodSize + 1, cp.treeSize);
      return {
        ok: false,
        seq: cp.treeSize === 0 ? null : fromSeq,
        problem: 'root_mismatch',
        checkpointSize: cp.treeSize,
        range: { fromSeq, toSeq: cp.treeSize },
        message:
          `the signed checkpoint at tree size ${cp.treeSize} does not match the stored events: ` +
          `at least one event in seq ${fromSeq}..${cp.treeSize} was changed, removed or added ` +
          '(its stored leaf hash was rewritten to match)',
      };
    }
    this.verified += 1;
    this.lastGoodSize = cp.treeSize;
    return undefined;
  }

  /** The note's signature, origin, and agreement between the record's fields and its note. */
  #checkSigned(cp: CheckpointRecord): CheckpointFailure | undefined {
    return checkSigned(cp, this.#input, `checkpoint at tree size ${cp.treeSize}`);
  }
}

/**
 * Walks the verifier's kept checkpoints in step with the rebuilt tree, the
 * same way as the log's own, and holds the log to each one even when the log
 * no longer has it.
 */
export class TrustedChecker {
  /** Sizes of the kept checkpoints the rebuilt tree matched so far. */
  readonly matched: number[] = [];
  readonly #list: TrustedCheckpoint[];
  readonly #input: CheckpointInput;
  #next = 0;

  constructor(input: CheckpointInput) {
    this.#input = input;
    this.#list = [...(input.trusted ?? [])].sort((a, b) => a.treeSize - b.treeSize);
  }

  checkSignatures(): CheckpointFailure | undefined {
    for (const cp of this.#list) {
      const failure = checkSigned(cp, this.#input, describeTrusted(cp));
      if (failure) return failure;
    }
    return undefined;
  }

  /** Checks every kept checkpoint whose tree size the frontier has reached (it is then exactly that size). */
  checkUpTo(frontier: MerkleFrontier): CheckpointFailure | undefined {
    for (
      let cp = this.#list[this.#next];
      cp !== undefined && cp.treeSize <= frontier.size;
      cp = this.#list[this.#next]
    ) {
      if (frontier.root().toString('base64') !== cp.rootHash) {
        return {
          ok: false,
          seq: null,
          problem: 'root_mismatch',
          checkpointSize: cp.treeSize,
          message:
            `the log is not consistent with ${describeTrusted(cp)}: the root of its first ${cp.treeSize} events ` +
            `differs from the one signed then, so events in seq 1..${cp.treeSize} were changed, removed or added since`,
        };
      }
      this.matched.push(cp.treeSize);
      this.#next += 1;
    }
    return undefined;
  }

  /** A kept checkpoint past the end of the log: the log lost events its verifiers saw signed. */
  checkBeyond(seen: number): CheckpointFailure | undefined {
    const cp = this.#list[this.#next];
    if (cp === undefined) return undefined;
    const lost =
      seen + 1 === cp.treeSize ? `event ${cp.treeSize} is` : `events ${seen + 1}..${cp.treeSize} are`;
    return {
      ok: false,
      seq: seen + 1,
      problem: 'truncated',
      checkpointSize: cp.treeSize,
      message:
        `the log ends at seq ${seen}, but ${describeTrusted(cp)} was signed for ${cp.treeSize} events: ` +
        `${lost} gone — the log was truncated or rolled back`,
    };
  }
}

function describeTrusted(cp: TrustedCheckpoint): string {
  return `the trusted checkpoint at tree size ${cp.treeSize} (${cp.source})`;
}

/** The note's signature, origin, and agreement between the record's fields and its note. */
function checkSigned(
  cp: CheckpointRecord,
  input: CheckpointInput,
  what: string,
): CheckpointFailure | undefined {
  const base = { ok: false as const, seq: null, checkpointSize: cp.treeSize };
  const result = verifyCheckpoint(cp.note, input.verifier);
  if (!result.ok) {
    const problem = result.problem === 'malformed' ? 'malformed' : 'bad_signature';
    return { ...base, problem, message: `${what}: ${result.message}` };
  }
  const note = result.checkpoint;
  if (note.treeSize !== cp.treeSize || note.rootHash.toString('base64') !== cp.rootHash) {
    return {
      ...base,
      problem: 'malformed',
      message: `${what}: its tree size or root hash disagrees with its signed note (size ${note.treeSize})`,
    };
  }
  const origin = input.origin;
  if (origin !== undefined && note.origin !== origin) {
    return {
      ...base,
      problem: 'malformed',
      message: `${what} is for log "${note.origin}", not "${origin}"`,
    };
  }
  return undefined;
}

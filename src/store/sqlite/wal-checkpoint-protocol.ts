/** What the WAL checkpointing thread is started with. */
export interface CheckpointerData {
  file: string;
  /** Pause between two looks at the WAL's progress. */
  pollMs: number;
  /** Frames waiting to be copied that start a PASSIVE checkpoint. */
  passFrames: number;
}

/** What one PASSIVE checkpoint found: frames in the WAL, and how many of them are in the database file now. */
export interface CheckpointPass {
  walFrames: number;
  copiedFrames: number;
}

/** Store → checkpointer. */
export type ToCheckpointer = { type: 'close' };

/** Checkpointer → store. */
export type FromCheckpointer =
  | { type: 'ready' }
  | ({ type: 'pass' } & CheckpointPass)
  | { type: 'failed'; message: string };

/** How often the checkpointing thread looks at the WAL's progress. */
export const WAL_CHECKPOINT_POLL_MS = 25;

/**
 * Frames waiting to be copied that start a pass: three quarters of the
 * writer's own threshold (`WAL_AUTOCHECKPOINT_PAGES`), so the writer's
 * checkpoint copies only the last quarter, and each WAL generation costs
 * about one pass.
 */
export const WAL_CHECKPOINT_PASS_FRAMES = 7_500;

/** What the WAL checkpointing thread is started with. */
export interface CheckpointerData {
  file: string;
  /** Pause between the end of one PASSIVE checkpoint and the start of the next. */
  intervalMs: number;
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

/**
 * Pause between PASSIVE checkpoints. Short enough that the writer's own
 * checkpoint, every `WAL_AUTOCHECKPOINT_PAGES`, finds nearly every frame
 * already copied; long enough that a hot index page rewritten by many
 * commits is copied once per pass, not once per commit.
 */
export const WAL_CHECKPOINT_INTERVAL_MS = 100;

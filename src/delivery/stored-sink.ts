import { TrailwardenError } from '../errors.js';
import type { SinkState, Store } from '../store/store.js';
import type { SinkConfig } from './sink-config.js';

/**
 * What a node that does not deliver a sink (another node holds its lease)
 * does for the admin API: it changes the sink's stored state, and the node
 * delivering it finds the change at its next lease renewal or cursor move.
 */

/** The sink's stored state (under its key), created where a worker would start it when there is none yet. */
export async function storedSinkState(store: Store, key: string, config: SinkConfig): Promise<SinkState> {
  const st = await store.delivery.getSinkState(key);
  if (st !== undefined) return st;
  const initial = config.start_from === 'beginning' ? 0 : await store.headSeq();
  return store.delivery.ensureSinkState(key, initial);
}

/**
 * Moves the stored cursor to `cursor` with a new epoch (fresh delivery ids),
 * by compare-and-set: a move of the delivering node in between makes it try
 * again from there; the delivering node's own next move then fails and it
 * reloads the state.
 */
export async function replayStoredSink(
  store: Store,
  key: string,
  config: SinkConfig,
  cursor: number,
): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    const st = await storedSinkState(store, key, config);
    const moved = await store.delivery.moveSinkCursor(key, st.cursor, cursor, {
      inflightTo: null,
      epochBump: true,
    });
    if (moved.ok) return;
  }
  throw new TrailwardenError(
    'TW_ERR_NOT_READY',
    `the cursor of sink ${config.name} kept moving under the replay; try again`,
  );
}

/** Pauses or resumes the sink in the store; a resume also re-enables a sink the receiver disabled. */
export async function setStoredSinkPaused(
  store: Store,
  key: string,
  config: SinkConfig,
  paused: boolean,
): Promise<void> {
  await storedSinkState(store, key, config);
  await store.delivery.setSinkFlags(key, {
    paused,
    ...(paused ? {} : { disabledReason: null }),
  });
}

import type { StoredEvent } from '../event/event.js';
import type { CheckpointRecord, Store } from '../store/store.js';

const PAGE = 1000;

/** Every event of a store in `seq` order, a page at a time, for `verifyLog`. */
export async function* storeEvents(store: Store): AsyncGenerator<StoredEvent> {
  let after = 0;
  for (;;) {
    const page = await store.readRange(after, PAGE);
    yield* page;
    if (page.length < PAGE) return;
    after = page.at(-1)!.seq;
  }
}

/** Every checkpoint a store keeps, ascending by tree size. */
export async function storeCheckpoints(store: Store): Promise<CheckpointRecord[]> {
  const all: CheckpointRecord[] = [];
  for (;;) {
    const page = await store.listCheckpoints({ fromSize: (all.at(-1)?.treeSize ?? -1) + 1, limit: PAGE });
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}

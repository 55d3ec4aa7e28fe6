import type { StoredEvent } from '../event/event.js';
import { type ArchiveFile, ArchiveProblem, type ObjectLine, objectLines } from './archive-files.js';

/** The message for lines that are not stored events: what the archive must be instead. */
const NEEDS_JSON_SINK =
  'verify --archive needs the archive of an unfiltered, unshaped sink with format json ' +
  '(OCSF, ECS, shaped or projected lines carry no seq and leaf_hash to check)';

/** An object being read: its next event not yet handed on. */
interface Cursor {
  file: ArchiveFile;
  lines: AsyncGenerator<ObjectLine>;
  head: StoredEvent;
  line: number;
}

/**
 * The events of an archive's objects merged into one stream in `seq` order.
 * Objects of different tenants (or partitions) out of one delivery interleave
 * in `seq`, so they are read side by side: an object is opened when the
 * merged stream reaches its first `seq` and closed at its end, so memory is
 * bounded by the objects that overlap, not by the archive. Every break in
 * `seq` (a gap, a duplicate, a reordered line) and every object whose lines
 * disagree with the range in its name is an {@link ArchiveProblem} naming
 * the objects involved.
 */
export class ArchiveEvents {
  /** `seq` range each object was seen to hold so far, for naming the objects around a problem. */
  readonly #seen = new Map<ArchiveFile, { first: number; last: number }>();
  readonly #files: ArchiveFile[];
  /** Each object's first `seq`. */
  readonly #firsts: ReadonlyMap<ArchiveFile, number>;
  /** The object of the last event handed on. */
  #last: ArchiveFile | undefined;

  private constructor(files: ArchiveFile[], firsts: ReadonlyMap<ArchiveFile, number>) {
    this.#files = files;
    this.#firsts = firsts;
  }

  /**
   * Orders the objects by their first `seq`: from the name when it has
   * `{first_seq}-{last_seq}`, by reading the first line otherwise.
   */
  static async open(files: readonly ArchiveFile[]): Promise<ArchiveEvents> {
    const firsts = new Map<ArchiveFile, number>();
    for (const file of files) {
      if (file.named) {
        firsts.set(file, file.named.first);
        continue;
      }
      const cursor = await openCursor(file);
      firsts.set(file, cursor.head.seq);
      await cursor.lines.return(undefined);
    }
    const first = (f: ArchiveFile) => firsts.get(f) ?? 0;
    const sorted = [...files].sort(
      (a, b) =>
        first(a) - first(b) ||
        (a.named?.last ?? Number.MAX_SAFE_INTEGER) - (b.named?.last ?? Number.MAX_SAFE_INTEGER) ||
        a.name.localeCompare(b.name),
    );
    return new ArchiveEvents(sorted, firsts);
  }

  /** The objects, in the order their first events come. */
  get files(): readonly ArchiveFile[] {
    return this.#files;
  }

  /** `seq` of the archive's first event. */
  get firstSeq(): number {
    const file = this.#files[0];
    return file === undefined ? 0 : (this.#firsts.get(file) ?? 0);
  }

  /** Name of the object the last event handed on came from. */
  get lastObject(): string | undefined {
    return this.#last?.name;
  }

  /** Names of the objects read so far that hold events in `from..to`, in order. */
  objectsHolding(from: number, to: number): string[] {
    return this.#files
      .filter((f) => {
        const r = this.#seen.get(f);
        return r !== undefined && r.first <= to && r.last >= from;
      })
      .map((f) => f.name);
  }

  /** Every event, in `seq` order from the first object's first `seq`, without gap or duplicate. */
  async *events(): AsyncGenerator<StoredEvent> {
    const heap = new CursorHeap();
    let next = 0;
    let expected = this.firstSeq;
    try {
      for (;;) {
        for (
          let f = this.#files[next];
          f !== undefined && this.#first(f) <= expected;
          f = this.#files[next]
        ) {
          const cursor = await openCursor(f);
          this.#saw(f, cursor.head.seq);
          heap.push(cursor);
          next += 1;
        }
        const top = heap.peek();
        if (top === undefined) {
          const after = this.#files[next];
          if (after === undefined) return;
          throw this.#gap(expected, this.#first(after), after, []);
        }
        const seq = top.head.seq;
        if (seq > expected) throw await this.#missing(expected, top, heap);
        if (seq < expected) throw this.#duplicate(top);
        this.#last = top.file;
        yield top.head;
        expected += 1;
        if (await advance(top)) {
          this.#saw(top.file, top.head.seq);
          heap.siftTop();
        } else {
          heap.pop();
        }
      }
    } finally {
      for (const cursor of heap.all()) await cursor.lines.return(undefined);
    }
  }

  #first(file: ArchiveFile): number {
    return this.#firsts.get(file) ?? 0;
  }

  #saw(file: ArchiveFile, seq: number): void {
    const r = this.#seen.get(file);
    if (r === undefined) this.#seen.set(file, { first: seq, last: seq });
    else r.last = Math.max(r.last, seq);
  }

  /** `expected` is not next: it either comes later in an open object (a reordering) or nowhere (a gap). */
  async #missing(expected: number, top: Cursor, heap: CursorHeap): Promise<ArchiveProblem> {
    for (const cursor of heap.all()) {
      let previous = cursor.head.seq;
      for (let l = await cursor.lines.next(); !l.done; l = await cursor.lines.next()) {
        const seq = seqOf(l.value.text);
        if (seq === expected) {
          return new ArchiveProblem(
            'reordered',
            `seq ${expected} is at line ${l.value.line} of object ${cursor.file.name}, after seq ${previous}: ` +
              'lines were reordered',
            expected,
          );
        }
        if (seq !== undefined) previous = seq;
      }
    }
    return this.#gap(expected, top.head.seq, top.file, heap.all());
  }

  /**
   * Names where `expected..found-1` went missing: the open objects whose
   * range spans it (tenants interleave, so the name cannot say which lost
   * it), and the objects either side of it.
   */
  #gap(expected: number, found: number, next: ArchiveFile, open: readonly Cursor[]): ArchiveProblem {
    const missing = found - 1 === expected ? `seq ${expected} is` : `seqs ${expected}..${found - 1} are`;
    const spanning = open
      .filter((c) => (c.file.named?.last ?? Number.POSITIVE_INFINITY) >= expected)
      .map((c) => `${c.file.name}${rangeOf(c.file)}`);
    const span = spanning.length === 0 ? '' : `; object(s) whose range spans it: ${spanning.join(', ')}`;
    return new ArchiveProblem(
      'gap',
      `${missing} in no object: lines or an object were removed, or the sink has a filter ` +
        '(verify --archive needs an unfiltered sink). ' +
        `The last event before it (seq ${expected - 1}) is in ${this.#last?.name ?? '(none)'}, ` +
        `the next (seq ${found}) in ${next.name}${span}`,
      expected,
    );
  }

  /**
   * `top` holds a `seq` already handed on. The merge hands on the smallest
   * `seq` first, so that was the last one, from the last object read.
   */
  #duplicate(top: Cursor): ArchiveProblem {
    const seq = top.head.seq;
    return new ArchiveProblem(
      'duplicate',
      `seq ${seq} is in object ${this.#last?.name ?? '(none)'} and again at line ${top.line} of object ` +
        `${top.file.name}: an object or lines were duplicated`,
      seq,
    );
  }
}

async function openCursor(file: ArchiveFile): Promise<Cursor> {
  const lines = objectLines(file);
  const first = await lines.next();
  if (first.done) throw new ArchiveProblem('empty', `object ${file.name} holds no events`);
  const head = storedEvent(first.value, file);
  if (file.named && head.seq !== file.named.first) {
    await lines.return(undefined);
    throw rangeProblem(file, `its first line holds seq ${head.seq}`, head.seq);
  }
  return { file, lines, head, line: first.value.line };
}

/** Moves `cursor` to its object's next line; false at the object's end. */
async function advance(cursor: Cursor): Promise<boolean> {
  const { file } = cursor;
  const previous = cursor.head.seq;
  const next = await cursor.lines.next();
  if (next.done) {
    if (file.named && previous !== file.named.last) {
      throw rangeProblem(file, `its last line holds seq ${previous}`, previous + 1);
    }
    return false;
  }
  const event = storedEvent(next.value, file);
  if (event.seq === previous) {
    throw new ArchiveProblem(
      'duplicate',
      `seq ${previous} is twice in object ${file.name} (line ${next.value.line}): a line was duplicated`,
      previous,
    );
  }
  if (event.seq < previous) {
    throw new ArchiveProblem(
      'reordered',
      `seq ${event.seq} is at line ${next.value.line} of object ${file.name}, after seq ${previous}: ` +
        'lines were reordered',
      event.seq,
    );
  }
  if (file.named && event.seq > file.named.last) {
    throw rangeProblem(file, `line ${next.value.line} holds seq ${event.seq}`, event.seq);
  }
  cursor.head = event;
  cursor.line = next.value.line;
  return true;
}

function rangeOf(file: ArchiveFile): string {
  return file.named ? ` (named for seqs ${file.named.first}..${file.named.last})` : '';
}

function rangeProblem(file: ArchiveFile, what: string, seq: number): ArchiveProblem {
  const { first, last } = file.named ?? { first: 0, last: 0 };
  return new ArchiveProblem(
    'range',
    `object ${file.name} is named for seqs ${first}..${last}, but ${what}: ` +
      'the object was renamed, or lines were added or removed',
    seq,
  );
}

/** Parses one line; anything but a stored event (seq, received_at, leaf_hash) stops the verification. */
function storedEvent(line: ObjectLine, file: ArchiveFile): StoredEvent {
  let value: unknown;
  try {
    value = JSON.parse(line.text);
  } catch {
    throw new ArchiveProblem('malformed', `line ${line.line} of object ${file.name} is not valid JSON`);
  }
  if (!isStoredEvent(value)) {
    throw new ArchiveProblem(
      'not_stored_events',
      `line ${line.line} of object ${file.name} is not a stored Trailwarden event: ${NEEDS_JSON_SINK}`,
    );
  }
  return value;
}

function isStoredEvent(value: unknown): value is StoredEvent {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    'seq' in value &&
    Number.isSafeInteger(value.seq) &&
    (value.seq as number) >= 1 &&
    'leaf_hash' in value &&
    typeof value.leaf_hash === 'string' &&
    'received_at' in value &&
    typeof value.received_at === 'string' &&
    'event_id' in value &&
    typeof value.event_id === 'string'
  );
}

/** The `seq` of a line, if it has one (a look-ahead for a missing `seq` tolerates anything). */
function seqOf(text: string): number | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isStoredEvent(value) ? value.seq : undefined;
  } catch {
    return undefined;
  }
}

/** Open objects by the `seq` of their next event (a binary min-heap: many tenants may interleave). */
class CursorHeap {
  readonly #items: Cursor[] = [];

  peek(): Cursor | undefined {
    return this.#items[0];
  }

  all(): readonly Cursor[] {
    return this.#items;
  }

  push(cursor: Cursor): void {
    this.#items.push(cursor);
    this.#up(this.#items.length - 1);
  }

  pop(): void {
    const last = this.#items.pop();
    if (last === undefined || this.#items.length === 0) return;
    this.#items[0] = last;
    this.#down(0);
  }

  /** The top's key grew: sinks it to its place. */
  siftTop(): void {
    this.#down(0);
  }

  #key(i: number): number {
    return this.#items[i]?.head.seq ?? Number.POSITIVE_INFINITY;
  }

  #swap(i: number, j: number): void {
    const a = this.#items[i];
    const b = this.#items[j];
    if (a === undefined || b === undefined) return;
    this.#items[i] = b;
    this.#items[j] = a;
  }

  #up(i: number): void {
    for (let p = (i - 1) >> 1; i > 0 && this.#key(i) < this.#key(p); i = p, p = (i - 1) >> 1)
      this.#swap(i, p);
  }

  #down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.#items.length && this.#key(l) < this.#key(m)) m = l;
      if (r < this.#items.length && this.#key(r) < this.#key(m)) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

/** A one-line progress display on a terminal; silent when the stream is not a TTY (pipes, CI logs). */
export interface Progress {
  /** Replaces the line (at most every `intervalMs`, so a fast loop costs nothing). */
  update(text: string): void;
  /** Clears the line, so the summary that follows starts clean. */
  done(): void;
}

const NOOP: Progress = { update() {}, done() {} };

/** Progress on `stream` (stderr by default, so stdout stays clean for data). */
export function createProgress(
  stream: NodeJS.WriteStream = process.stderr,
  opts: { intervalMs?: number } = {},
): Progress {
  if (!stream.isTTY) return NOOP;
  const intervalMs = opts.intervalMs ?? 100;
  let last = 0;
  let shown = false;
  return {
    update(text) {
      const now = Date.now();
      if (now - last < intervalMs) return;
      last = now;
      shown = true;
      // Carriage return, the text, then "erase to end of line" for a shorter text.
      stream.write(`\r${text}\x1b[K`);
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}

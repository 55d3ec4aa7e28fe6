/**
 * Preloaded (`--import`) into a bench child process so its clock runs
 * BENCH_CLOCK_OFFSET_MS behind: events it appends are received in the past,
 * as a log that has run for a year holds them, so the retention bench prunes
 * events whose leaf hashes are real (nothing is rewritten afterwards). Plain
 * JavaScript: worker threads started from a file inherit the preload (the
 * SQLite writer), without the TypeScript loader.
 */
const offset = Number(process.env.BENCH_CLOCK_OFFSET_MS ?? '0');
const RealDate = Date;

class PastDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() - offset);
    else super(...args);
  }

  static now() {
    return RealDate.now() - offset;
  }
}

globalThis.Date = PastDate;

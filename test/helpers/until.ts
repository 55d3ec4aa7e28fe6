/** Polls `cond` until it holds; fails naming `what` after `ms` (a hung peer fails the test, not the run). */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
  everyMs = 20,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

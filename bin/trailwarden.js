#!/usr/bin/env node
// The CLI runs from the compiled output; `npm install` builds it (the `prepare` script).
import { main } from '../dist/cli/main.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`trailwarden: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

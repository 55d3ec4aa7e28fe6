import type { Command } from 'commander';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { createLogger, flushLogSync } from '../process-logger.js';
import { start } from '../runtime.js';

export interface ConfigFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
}

/** Loads the configuration from `--config`, the environment and flags. */
export function configFromFlags(flags: ConfigFlags) {
  return loadConfig({
    ...(flags.config === undefined ? {} : { file: flags.config }),
    env: process.env,
    overrides: {
      ...(flags.dataDir === undefined ? {} : { data_dir: flags.dataDir }),
      ...(flags.listen === undefined ? {} : { listen: flags.listen }),
    },
  });
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** `trailwarden serve`: runs the service until SIGINT/SIGTERM. */
export async function serveCommand(flags: ConfigFlags): Promise<number> {
  const config = await configFromFlags(flags);
  const logger = createLogger(config.log_level);
  process.stdout.on('error', ignoreStdoutError);
  try {
    return await serveUntilStopped(config, logger);
  } finally {
    // A start or a close that failed still leaves its log lines behind.
    flushLogSync(logger);
  }
}

async function serveUntilStopped(config: Config, logger: Logger): Promise<number> {
  const running = await start(config, { logger });
  const out = process.stdout;
  // Log lines are buffered; what was logged before a message printed here comes out before it.
  flushLogSync(logger);
  out.write(
    `Trailwarden listening on ${running.url} (store: ${running.store.kind}, data: ${config.data_dir})\n`,
  );
  out.write(`Log origin: ${running.origin}\n`);
  if (running.createdAdminToken !== undefined) {
    out.write(
      `\nFirst start: an admin API key was created. It is shown only this once; store it now:\n\n  ${running.createdAdminToken}\n\n` +
        `Use it as "Authorization: Bearer <key>". Create more with \`trailwarden keys create\`.\n`,
    );
  } else if (process.env['TRAILWARDEN_ADMIN_KEY']) {
    out.write('Admin key: the one in TRAILWARDEN_ADMIN_KEY.\n');
  } else {
    out.write(
      `Admin keys already exist. Create another through this server with: trailwarden keys create --role admin --url ${running.url} --key <an admin key>\n`,
    );
  }
  await stopSignal(logger);
  flushLogSync(logger);
  out.write('Shutting down…\n');
  await running.close();
  return 0;
}

/**
 * What serve prints on stdout is for whoever watches; a reader that has gone
 * away must not take the server down (an `error` on stdout with no listener
 * throws EPIPE). The stdout sink gets its write errors through its callback.
 */
function ignoreStdoutError(): void {}

/**
 * Resolves on the first SIGINT or SIGTERM. A second one stops the process at
 * once, as it would with no handler, after writing out the buffered log lines.
 */
function stopSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const stopNow = (signal: NodeJS.Signals) => {
      flushLogSync(logger);
      for (const s of STOP_SIGNALS) process.off(s, stopNow);
      process.kill(process.pid, signal);
    };
    const stop = () => {
      for (const s of STOP_SIGNALS) {
        process.off(s, stop);
        process.on(s, stopNow);
      }
      resolve();
    };
    for (const s of STOP_SIGNALS) process.on(s, stop);
  });
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('Start the service (SQLite in the data folder by default).')
    .option('-c, --config <file>', 'YAML config file (see docs/configuration.md)')
    .option('-d, --data-dir <dir>', 'data folder (database, signing key); default ./data')
    .option('-l, --listen <host:port>', 'address to listen on; default 127.0.0.1:8080')
    .addHelpText(
      'after',
      '\nEnvironment: TRAILWARDEN_ADMIN_KEY (bootstrap admin key), TRAILWARDEN_SIGNING_KEY (Ed25519 PEM),\nTRAILWARDEN_LISTEN, TRAILWARDEN_DATA_DIR, TRAILWARDEN_LOG_LEVEL.',
    )
    .action(async (flags: ConfigFlags) => {
      process.exitCode = await serveCommand(flags);
    });
}

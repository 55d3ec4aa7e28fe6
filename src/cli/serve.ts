import type { Command } from 'commander';
import { loadConfig } from '../config/load-config.js';
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

/** `trailwarden serve`: runs the service until SIGINT/SIGTERM. */
export async function serveCommand(flags: ConfigFlags): Promise<number> {
  const config = await configFromFlags(flags);
  const running = await start(config);
  const out = process.stdout;
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
      `Admin keys already exist. Create another with: trailwarden keys create --role admin --data-dir ${config.data_dir}\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  out.write('Shutting down…\n');
  await running.close();
  return 0;
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

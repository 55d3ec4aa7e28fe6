import { Command, CommanderError } from 'commander';
import { isTrailwardenError } from '../errors.js';
import { VERSION } from '../version.js';
import { registerExportCommand } from './export.js';
import { registerKeysCommand } from './keys.js';
import { registerSecretsCommand } from './secrets.js';
import { registerSendCommand } from './send.js';
import { registerServeCommand } from './serve.js';
import { registerSinksCommand } from './sinks.js';
import { registerTailCommand } from './tail.js';
import { registerVerifyCommand } from './verify.js';

/** Builds the `trailwarden` command line. */
export function buildProgram(): Command {
  const program = new Command('trailwarden')
    .description('Tamper-evident audit trail: ingest, query, stream and verify security events.')
    .version(VERSION)
    .showHelpAfterError();
  registerServeCommand(program);
  registerKeysCommand(program);
  registerVerifyCommand(program);
  registerSendCommand(program);
  registerTailCommand(program);
  registerExportCommand(program);
  registerSinksCommand(program);
  registerSecretsCommand(program);
  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const message = isTrailwardenError(err)
      ? `${err.code}: ${err.message}`
      : err instanceof Error
        ? err.message
        : String(err);
    process.stderr.write(`trailwarden: ${message}\n`);
    return 1;
  }
}

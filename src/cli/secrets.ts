import type { Command } from 'commander';
import { generateSecretKey, SECRETS_KEY_ENV } from '../secrets/secret-box.js';

/** Adds `trailwarden secrets`: the key that encrypts the secrets of API sinks at rest. */
export function registerSecretsCommand(program: Command, out: NodeJS.WritableStream = process.stdout): void {
  const secrets = program
    .command('secrets')
    .description('The key that encrypts the secrets of sinks created through the API (docs/security.md).');
  secrets
    .command('generate-key')
    .description(
      `Print a fresh key for ${SECRETS_KEY_ENV} or secrets.key_file (stores nothing). To rotate, put the new ` +
        'key first and the old one after it, restart every node (stored secrets are re-sealed with the new ' +
        'key), then drop the old one.',
    )
    .action(() => {
      out.write(`${generateSecretKey()}\n`);
    });
}

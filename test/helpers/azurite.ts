/**
 * Azurite 3.35 (the Azure Storage emulator, npm `azurite`) as the blob peer
 * of the `azure_blob` sink's tests: its `azurite-blob` bin started directly
 * (killing an npx wrapper would leave the server running), in memory, on a
 * free port of 127.0.0.1, with the emulator's well-known development account.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The emulator's fixed development account (documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A running Azurite blob service. */
export interface Azurite {
  port: number;
  /** The account URL, path-style: `http://127.0.0.1:PORT/devstoreaccount1`. */
  accountUrl: string;
  connectionString: string;
  stop(): Promise<void>;
}

/** Starts Azurite's blob service on a free port and waits until it listens. */
export async function startAzurite(): Promise<Azurite> {
  const cwd = mkdtempSync(join(tmpdir(), 'tw-azurite-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(process.cwd(), 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js'),
      '--disableTelemetry',
      '--inMemoryPersistence',
      '--extentMemoryLimit',
      '256',
      '--skipApiVersionCheck',
      '--silent',
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      '0',
    ],
    { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m?.[1]) {
        child.stdout?.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.once('exit', (code) => reject(new Error(`azurite exited (${code}) before listening: ${out}`)));
  });
  const accountUrl = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    port,
    accountUrl,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${accountUrl};`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}

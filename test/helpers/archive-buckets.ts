/**
 * The object stores of the archive crash test (s3rver, Azurite), each with
 * one bucket (container), and read back the way a bucket's reader would:
 * every object listed and downloaded with its metadata, content type and
 * encoding, then written to a folder with keys as paths.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from './azurite.js';
import { S3RVER_KEYS, startS3rver } from './s3rver-peer.js';

/** The one bucket (container) of each store. */
export const BUCKET = 'archive';

/** An object as downloaded: its key, bytes, and the metadata the store kept. */
export interface Downloaded {
  key: string;
  bytes: Buffer;
  metadata: Record<string, string>;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

/** An object store the test runs, and how a bucket's reader downloads it. */
export interface BucketPeer {
  port: number;
  /** The sink's provider options, reaching the store at `endpoint` (the relay). */
  sinkOptions(endpoint: string): Record<string, unknown>;
  /** The object key a relayed request's path names. */
  keyOf(path: string): string;
  /** Every object of the bucket. */
  download(): Promise<Downloaded[]>;
  stop(): Promise<void>;
}

/** s3rver with the bucket; the sink reaches it with s3rver's keys, path-style. */
export async function startS3rverBucket(): Promise<BucketPeer> {
  const s3rver = await startS3rver({ buckets: [BUCKET] });
  const { S3Client, ListObjectsV2Command, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const reader = new S3Client({
    endpoint: s3rver.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: S3RVER_KEYS.access_key_id,
      secretAccessKey: S3RVER_KEYS.secret_access_key,
    },
  });
  return {
    port: s3rver.port,
    sinkOptions: (endpoint) => ({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint,
      force_path_style: true,
      ...S3RVER_KEYS,
    }),
    keyOf: (path) => path.slice(`/${BUCKET}/`.length),
    async download() {
      const out: Downloaded[] = [];
      let token: string | undefined;
      do {
        const page = await reader.send(
          new ListObjectsV2Command({ Bucket: BUCKET, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          const got = await reader.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key }));
          const bytes = Buffer.from(await got.Body!.transformToByteArray());
          out.push({
            key: o.Key ?? '',
            bytes,
            metadata: got.Metadata ?? {},
            contentType: got.ContentType,
            contentEncoding: got.ContentEncoding,
          });
        }
        token = page.NextContinuationToken;
      } while (token !== undefined);
      return out;
    },
    async stop() {
      reader.destroy();
      await s3rver.close();
    },
  };
}

/** Azurite with the container; the sink reaches it with a connection string. */
export async function startAzuriteBucket(): Promise<BucketPeer> {
  const azurite = await startAzurite();
  const blob = await import('@azure/storage-blob');
  const container = blob.BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
    BUCKET,
  );
  await container.create();
  return {
    port: azurite.port,
    sinkOptions: (endpoint) => ({
      container: BUCKET,
      connection_string:
        `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
        `BlobEndpoint=${endpoint}/${AZURITE_ACCOUNT};`,
    }),
    keyOf: (path) => path.slice(`/${AZURITE_ACCOUNT}/${BUCKET}/`.length),
    async download() {
      const out: Downloaded[] = [];
      for await (const item of container.listBlobsFlat({ includeMetadata: true })) {
        const bytes = await container.getBlobClient(item.name).downloadToBuffer();
        out.push({
          key: item.name,
          bytes,
          metadata: item.metadata ?? {},
          contentType: item.properties.contentType,
          contentEncoding: item.properties.contentEncoding,
        });
      }
      return out;
    },
    stop: () => azurite.stop(),
  };
}
/** Writes each object under `dir` at its key, as a bucket's download tool does. */
export function writeDownload(dir: string, objects: Downloaded[]): void {
  for (const o of objects) {
    mkdirSync(dirname(join(dir, o.key)), { recursive: true });
    writeFileSync(join(dir, o.key), o.bytes);
  }
}

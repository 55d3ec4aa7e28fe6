import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { SinkContext } from '../../../../../src/delivery/sink.js';
import {
  type ArchiveObject,
  OBJECT_METADATA,
} from '../../../../../src/delivery/sinks/archive/object-store.js';
import { createS3ObjectStore } from '../../../../../src/delivery/sinks/archive/s3/s3-object-store.js';
import { s3OptionsShape } from '../../../../../src/delivery/sinks/archive/s3/s3-options.js';

const schema = z.strictObject(s3OptionsShape);

/** What a store under test logged through ctx.log. */
export interface LoggedLine {
  level: 'info' | 'warn';
  msg: string;
  extra?: object;
}

/** A store from raw options (validated as the config would), owned by the operator unless `tenantId` is given. */
export async function s3Store(
  raw: Record<string, unknown>,
  opts: { tenantId?: string; source?: 'config' | 'api' } = {},
) {
  const logs: LoggedLine[] = [];
  const tenantId = opts.tenantId ?? null;
  const ctx: SinkContext = {
    name: 'archive',
    owner: { source: opts.source ?? (tenantId === null ? 'config' : 'api'), tenantId },
    format: 'json',
    dataDir: '/nonexistent/data',
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: () => Date.now(),
    log: {
      info: (msg, extra) => logs.push({ level: 'info', msg, ...(extra ? { extra } : {}) }),
      warn: (msg, extra) => logs.push({ level: 'warn', msg, ...(extra ? { extra } : {}) }),
    },
  };
  const store = await createS3ObjectStore(schema.parse(raw), ctx);
  return { store, logs };
}

/** An archive object of `body` under `key`, with the metadata the archive writer gives it. */
export function archiveObject(key: string, body: Buffer, events = 3): ArchiveObject {
  const sha256 = createHash('sha256').update(body).digest('hex');
  return {
    key,
    body,
    contentType: 'application/x-ndjson',
    contentEncoding: 'gzip',
    metadata: {
      [OBJECT_METADATA.firstSeq]: '1',
      [OBJECT_METADATA.lastSeq]: String(events),
      [OBJECT_METADATA.events]: String(events),
      [OBJECT_METADATA.sha256]: sha256,
    },
    sha256,
  };
}

/** A signal for one call that a hung peer cannot outlast. */
export const soon = () => AbortSignal.timeout(30_000);

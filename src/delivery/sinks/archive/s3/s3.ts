import { defineArchiveSink } from '../archive-sink.js';
import { createS3ObjectStore } from './s3-object-store.js';
import { hostOptions, placementProblems, s3OptionsShape, secretFields } from './s3-options.js';

/** `type: s3`: objects in an Amazon S3 bucket or an S3-compatible store (docs/sinks/s3.md). */
export const s3Sink = defineArchiveSink({
  kind: 's3',
  description: 'Date-partitioned objects in an Amazon S3 bucket or an S3-compatible store',
  options: s3OptionsShape,
  secretFields,
  hostOptions,
  placementProblems,
  createStore: createS3ObjectStore,
});

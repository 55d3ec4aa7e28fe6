import { defineArchiveSink } from '../archive-sink.js';
import { createGcsObjectStore } from './gcs-object-store.js';
import { gcsHostOptions, gcsOptionsShape, gcsPlacementProblems, gcsSecretFields } from './gcs-options.js';

/** `type: gcs`: objects in a Google Cloud Storage bucket (docs/sinks/gcs.md). */
export const gcsSink = defineArchiveSink({
  kind: 'gcs',
  description: 'Date-partitioned objects in a Google Cloud Storage bucket',
  options: gcsOptionsShape,
  secretFields: gcsSecretFields,
  hostOptions: gcsHostOptions,
  placementProblems: gcsPlacementProblems,
  createStore: createGcsObjectStore,
});

import { defineArchiveSink } from '../archive-sink.js';
import { createAzureBlobObjectStore } from './azure-blob-object-store.js';
import {
  azureBlobHostOptions,
  azureBlobOptionsShape,
  azureBlobPlacementProblems,
  azureBlobSecretFields,
} from './azure-blob-options.js';

/** `type: azure_blob`: blobs in an Azure Storage container (docs/sinks/azure-blob.md). */
export const azureBlobSink = defineArchiveSink({
  kind: 'azure_blob',
  description: 'Date-partitioned blobs in an Azure Blob Storage container',
  options: azureBlobOptionsShape,
  secretFields: azureBlobSecretFields,
  hostOptions: azureBlobHostOptions,
  placementProblems: azureBlobPlacementProblems,
  createStore: createAzureBlobObjectStore,
});

import { BucketHashTree } from './bucket-hash-tree.ts';

/**
 * Content hash of cluster data, O(bucket) per changed item instead of O(cluster): items are keyed
 * "svc:ns/name" or "node:name" with the SHA-256 of the item's canonical JSON, in a BucketHashTree
 * without groups, tagged "switchboard-data-v1". See docs/versioning.md.
 */
export class DataHashTree extends BucketHashTree {
  constructor() {
    super({ tag: 'switchboard-data-v1\n', groupSize: 0 });
  }
}

import { contentHash, type NodeState } from '../model/index.ts';

/** The hash an applier echoes in its ACK: SHA-256 of the node state's canonical JSON. */
export function nodeStateHash(state: NodeState): string {
  return contentHash(state);
}

/**
 * The data axis' one piece of operator state: whether published data is held at some version's
 * content. Pin and data rollback both hold; only unpin releases.
 */
export interface DataPin {
  /** The version whose content is held. */
  readonly version: number;
  readonly hash: string;
  readonly kind: 'pin' | 'rollback';
}

/** What the next sync must do with the live cluster data. */
export type PublishDecision =
  | { readonly action: 'none' } // published content already equals what should be published
  | { readonly action: 'hold'; readonly pinnedTo: number } // events advance live state only
  | { readonly action: 'publish-live' };

export function decideSync(input: {
  pin: DataPin | undefined;
  liveHash: string;
  publishedHash: string | undefined;
}): PublishDecision {
  if (input.pin) return { action: 'hold', pinnedTo: input.pin.version };
  return input.liveHash === input.publishedHash ? { action: 'none' } : { action: 'publish-live' };
}

/**
 * Pin or data rollback to version N: a NEW version carrying N's content is needed unless the
 * published content already is N's (versions never go backwards, and never repeat content).
 */
export function decidePin(input: { targetHash: string; publishedHash: string | undefined }): { publish: boolean } {
  return { publish: input.targetHash !== input.publishedHash };
}

/** Unpin: the live content is published as a new version only when it differs from the held one. */
export function decideUnpin(input: { pin: DataPin | undefined; liveHash: string; publishedHash: string | undefined }): {
  publish: boolean;
} {
  if (!input.pin) throw new Error('data is not pinned');
  return { publish: input.liveHash !== input.publishedHash };
}

import type { NodeTarget, SignedTarget } from '../model/index.ts';
import { DEFAULT_TARGET_KEY, targetStatement, type Verifier } from '../bus/index.ts';

/**
 * What one node should run, from the two KV keys it follows: its own override and the cluster
 * default. Pure bookkeeping. Entries are ordered per key by the planner's signed `issued` stamp,
 * never by KV revision (which restarts at 1 when NATS loses its store, and which a notice can
 * claim freely): an entry not newer than what we hold (a redelivery, a get racing a notice, a
 * replayed old message) is ignored, so updates arrive from several sources in any order and the
 * view still converges on the newest.
 */
export class TargetView {
  private readonly keys = new Map<string, { issued: number; target: NodeTarget | undefined }>();

  constructor(private readonly nodeKey: string) {}

  /** Records an entry; returns true when it was newer. */
  observe(key: string, entry: SignedTarget): boolean {
    if (key !== this.nodeKey && key !== DEFAULT_TARGET_KEY) return false;
    const cur = this.keys.get(key);
    if (cur && cur.issued >= entry.issued) return false;
    const target = 'cleared' in entry ? undefined : { version: entry.version, configRevision: entry.configRevision };
    this.keys.set(key, { issued: entry.issued, target });
    return true;
  }

  /** The node override when set, else the default, else undefined (nothing to run yet). */
  effective(): NodeTarget | undefined {
    return this.keys.get(this.nodeKey)?.target ?? this.keys.get(DEFAULT_TARGET_KEY)?.target;
  }
}

/** Why a signed target for `key` must be dropped (undefined: accept). Without a verifier, all pass. */
export function signedTargetFault(
  key: string,
  entry: SignedTarget,
  verifier: Verifier | undefined,
): string | undefined {
  if (!verifier) return undefined;
  if (!entry.sig) return 'unsigned';
  const statement = targetStatement(key, 'cleared' in entry ? 'cleared' : entry, entry.issued);
  return verifier.verify(statement, entry.sig) ? undefined : 'bad signature';
}

import type { NodeTarget, SignedTarget } from '../model/index.ts';
import { DEFAULT_TARGET_KEY, targetStatement, type Verifier } from '../bus/index.ts';

/** What observe() did with an entry: taken, ignored (not newer), or refused (older than followed before a restart). */
export type Observed = 'newer' | 'not newer' | { readonly refused: string };

/**
 * What one node should run, from the two KV keys it follows: its own override and the cluster
 * default. Pure bookkeeping. Entries are ordered per key by the planner's signed `issued` stamp,
 * never by KV revision (which restarts at 1 when NATS loses its store, and which a notice can
 * claim freely): an entry not newer than what we hold (a redelivery, a get racing a notice, a
 * replayed old message) is ignored, so updates arrive from several sources in any order and the
 * view still converges on the newest.
 *
 * `followedBefore`: the `issued` of each key as the previous process of this node held it
 * (persisted with its last ACK). An entry below it is an old signed entry put back into the key
 * (probe10 H1: KV history holds every old target, verbatim and validly signed), not news: it is
 * refused, and while a key's newest offer is refused the view holds no target at all, so the node
 * keeps what its kernel runs rather than falling back to the other key. A rollback is a new
 * target with a new, higher `issued` (the planner stamps every write), so it always passes.
 */
export class TargetView {
  private readonly keys = new Map<string, { issued: number; target: NodeTarget | undefined }>();
  /** Keys whose newest offer was below `followedBefore` (and none taken since). */
  private readonly refused = new Set<string>();

  constructor(
    private readonly nodeKey: string,
    private readonly followedBefore: Readonly<Record<string, number>> = {},
  ) {}

  /** Records an entry when it is newer than what the view holds. */
  observe(key: string, entry: SignedTarget): Observed {
    if (key !== this.nodeKey && key !== DEFAULT_TARGET_KEY) return 'not newer';
    const cur = this.keys.get(key);
    if (cur && cur.issued >= entry.issued) return 'not newer';
    const floor = this.followedBefore[key] ?? 0;
    if (entry.issued < floor) {
      this.refused.add(key);
      const what = 'cleared' in entry ? 'a cleared override' : `target version ${entry.version}`;
      return {
        refused: `${what} (issued ${entry.issued}) in ${key} is older than the one this node followed before its restart (issued ${floor}): a replayed old target? not followed`,
      };
    }
    this.refused.delete(key);
    const target = 'cleared' in entry ? undefined : { version: entry.version, configRevision: entry.configRevision };
    this.keys.set(key, { issued: entry.issued, target });
    return 'newer';
  }

  /** The node override when set, else the default, else undefined (nothing to run yet, or a key refused). */
  effective(): NodeTarget | undefined {
    if (this.refused.size > 0) return undefined;
    return this.keys.get(this.nodeKey)?.target ?? this.keys.get(DEFAULT_TARGET_KEY)?.target;
  }

  /** Whether a key's newest offer is refused (the view then holds no target). */
  refusing(): boolean {
    return this.refused.size > 0;
  }

  /** The `issued` of each key as followed now (the floor where nothing newer came yet): persisted with an ACK. */
  followed(): Record<string, number> {
    const out: Record<string, number> = { ...this.followedBefore };
    for (const [k, v] of this.keys) out[k] = Math.max(out[k] ?? 0, v.issued);
    return out;
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

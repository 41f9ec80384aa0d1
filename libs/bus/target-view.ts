import type { NodeTarget } from '../model/index.ts';
import { DEFAULT_TARGET_KEY } from './subjects.ts';

/**
 * What one node should run, from the two KV keys it watches: its own override and the cluster
 * default. Pure bookkeeping. Each key's entries carry the KV revision; an entry not newer than
 * what we hold (a redelivery after a watch restart, a get racing a watch) is ignored, so updates
 * can arrive from several sources in any order and the view still converges on the newest.
 */
export class TargetView {
  private readonly keys = new Map<string, { revision: number; target: NodeTarget | undefined }>();

  constructor(private readonly nodeKey: string) {}

  /** Records an entry (undefined = deleted/purged); returns true when it was newer. */
  observe(key: string, revision: number, target: NodeTarget | undefined): boolean {
    if (key !== this.nodeKey && key !== DEFAULT_TARGET_KEY) return false;
    const cur = this.keys.get(key);
    if (cur && cur.revision >= revision) return false;
    this.keys.set(key, { revision, target });
    return true;
  }

  /** The node override when set, else the default, else undefined (nothing to run yet). */
  effective(): NodeTarget | undefined {
    return this.keys.get(this.nodeKey)?.target ?? this.keys.get(DEFAULT_TARGET_KEY)?.target;
  }
}

/** Parses a NodeTarget value; undefined when malformed (a corrupt entry never moves a node). */
export function parseNodeTarget(bytes: Uint8Array): NodeTarget | undefined {
  try {
    const v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
    if (typeof v !== 'object' || v === null) return undefined;
    const { version, configRevision } = v;
    if (!Number.isSafeInteger(version) || (version as number) < 1) return undefined;
    if (!Number.isSafeInteger(configRevision) || (configRevision as number) < 0) return undefined;
    return { version: version as number, configRevision: configRevision as number };
  } catch {
    return undefined;
  }
}

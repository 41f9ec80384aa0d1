import type { ConfigAxis, DataAxis } from '../../libs/versioning/index.ts';
import type { PlannerBus } from './planner-bus.ts';

export interface TargetWriterOptions {
  readonly bus: PlannerBus;
  /** The planner's data and config (read at each use). */
  readonly axes: { readonly data: DataAxis; readonly config: ConfigAxis };
}

/** Writes what each node must run (its target) and the config revisions targets name to the bus. */
export class TargetWriter {
  private overridden = new Set<string>();
  private putRevisions = new Set<number>();

  constructor(private readonly o: TargetWriterOptions) {}

  /**
   * Puts the config revisions the targets name (each once), then the default target and each
   * overridden node's, removes the overrides that ended and the keys of Nodes gone from the cluster.
   */
  async write(version: number): Promise<void> {
    const st = this.o.axes.config.state;
    const overrides = this.o.axes.config.overrides();
    for (const rev of [st.defaultRevision, ...overrides.values()]) {
      if (this.putRevisions.has(rev)) continue;
      await this.o.bus.putConfigRevision(this.o.axes.config.revision(rev)!);
      this.putRevisions.add(rev);
    }
    await this.o.bus.setDefaultTarget({ version, configRevision: st.defaultRevision });
    for (const [node, rev] of overrides) await this.o.bus.setNodeTarget(node, { version, configRevision: rev });
    // every override but this planner's goes, another planner's too (the bus knows them); a bus
    // that cannot tell clears those this writer made
    if (this.o.bus.clearOverridesExcept) await this.o.bus.clearOverridesExcept(overrides.keys());
    else for (const node of this.overridden) if (!overrides.has(node)) await this.o.bus.setNodeTarget(node, undefined);
    this.overridden = new Set(overrides.keys());
    // A Node gone from the cluster (not in the published data) and no longer overridden: its key
    // goes (probe9 K1); one kept while the Node exists or a rollout still names it.
    await this.o.bus.removeNodeTargets?.([...this.o.axes.data.publishedData().nodeNames(), ...overrides.keys()]);
  }
}

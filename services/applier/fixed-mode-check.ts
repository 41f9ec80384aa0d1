import type { ApplyResult, Dataplane } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';

/**
 * `applier --mode ipvs|nftables` programs that mode whatever the config asks (only `--mode auto`
 * follows the config's `mode`, libs/dataplane/mode-following-dataplane.ts), and its ACK echoes the
 * hashes the planner rendered, so a `ctl mode` rollout completed with every such node SYNCED on the
 * new revision while none had switched (probe24 F1). Each apply compares the asked mode with the
 * fixed one: a mismatch is a note on the apply and a node warning (`ctl status` prints it under its
 * table) until a target asks for the mode the node runs again.
 */
export function withFixedModeCheck(
  dp: Dataplane,
  fixed: 'ipvs' | 'nftables',
  onReport: (text: string | undefined) => void,
): Dataplane {
  const check = (s: NodeState, r: ApplyResult): ApplyResult => {
    const asked = s.settings.mode ?? 'ipvs';
    if (asked === fixed) {
      onReport(undefined);
      return r;
    }
    const text = `the config asks for mode ${asked}; this applier runs --mode ${fixed}, which ignores the config's mode (it programs ${fixed}): run it with --mode auto to follow the config, or set the config's mode to ${fixed}`;
    onReport(text);
    return { ...r, notes: [...r.notes, text] };
  };
  return {
    get mode() {
      return dp.mode;
    },
    get draining() {
      return dp.draining;
    },
    apply: async (s, change) => check(s, await dp.apply(s, change)),
    resync: (o) => dp.resync(o),
    cleanup: () => dp.cleanup(),
    close: () => dp.close(),
  };
}

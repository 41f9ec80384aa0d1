import { MAX_NODE_WARNING, MAX_NODE_WARNINGS, truncateReportText } from '../../libs/model/index.ts';

/**
 * What a node warns of: conditions that are no failure (the node stays SYNCED, its dataplane
 * verified) yet leave it weaker than it looks, sent in every heartbeat (`warnings`,
 * libs/model/wire-schemas.ts) so that `ctl status` (`WARN NODE: text` under its table) and the
 * console show them, not only the node's own log. One entry per source, replaced when its text
 * changes and removed when it clears; `onChange` then heartbeats at once.
 *
 * Sources today: the nftables change-notification listener down (drift of our table goes
 * unsignalled until its restart; nft-listener-supervisor.ts), and another program's forward drop
 * policy (forward-drop-check.ts, both modes), and a config asking for another mode than the
 * applier's fixed `--mode ipvs|nftables` (fixed-mode-check.ts), and ipvs mode still programmed
 * behind nftables for the connections it made (ModeFollowingDataplane's drain after a switch), and
 * the applier's heap near the limit V8 stops it at (services/cli/heap-headroom.ts).
 */
export type NodeWarningSource = 'nft-listener' | 'forward-drop' | 'fixed-mode' | 'mode-drain' | 'heap';

/** The hooks a dataplane's conditions reach the warnings through (createDataplane's options, the forward drop check's onReport). */
export interface NodeWarningHooks {
  readonly onListenerState: (down: string | undefined) => void;
  readonly onForwardDrop: (report: string | undefined) => void;
  readonly onModeDrain: (text: string | undefined) => void;
}

export class NodeWarnings {
  private readonly bySource = new Map<NodeWarningSource, string>();

  constructor(
    private readonly onChange: () => void = () => {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Sets (text) or clears (undefined) the warning of one source. */
  set(source: NodeWarningSource, text: string | undefined): void {
    if (this.bySource.get(source) === text) return;
    if (text === undefined) this.bySource.delete(source);
    else this.bySource.set(source, text);
    this.onChange();
  }

  /** The heartbeat's `warnings`: within the wire's bounds (a last entry says how many were left out). */
  list(): string[] {
    const all = [...this.bySource.values()];
    const kept =
      all.length > MAX_NODE_WARNINGS
        ? [
            ...all.slice(0, MAX_NODE_WARNINGS - 1),
            `${all.length - MAX_NODE_WARNINGS + 1} more warnings in the applier log`,
          ]
        : all;
    return kept.map((w) => truncateReportText(w, MAX_NODE_WARNING));
  }

  hooks(): NodeWarningHooks {
    return {
      onListenerState: (down) =>
        this.set(
          'nft-listener',
          down === undefined
            ? undefined
            : `nftables change-notification listener down since ${this.now().toISOString()} (${down}): our table deleted or flushed is not noticed at once; restarting with backoff, a full resync follows`,
        ),
      onForwardDrop: (report) => this.set('forward-drop', report),
      onModeDrain: (text) => this.set('mode-drain', text),
    };
  }
}

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AppliedState } from '../../libs/applier/index.ts';

/** The file's content: the last ACK, and the `issued` of each target key followed then. */
export interface PersistedState extends AppliedState {
  /**
   * Target key -> the planner's `issued` stamp followed when this was written. A restarted
   * applier refuses an older entry (a replayed old signed target: probe10 H1; TargetView).
   * Absent in files written before it: then nothing is refused.
   */
  readonly followed?: Readonly<Record<string, number>>;
}

/**
 * What this node last ACKed (always a state this process applied and verified), kept across
 * restarts for operators and the start-up log, with the order of the targets it followed (the
 * one thing a restart does trust: the floor below which a target is a replay). Never a reason to
 * skip an apply: a restarted applier checks the kernel with one full apply cycle before it ACKs
 * (the kernel may have lost the state while it was down). Written atomically (temp file +
 * rename); an unreadable file is treated as absent, a malformed `followed` as missing.
 */
export class AppliedStateFile {
  readonly file: string;

  constructor(dir: string, node: string) {
    this.file = path.join(dir, `applied-${node.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  }

  read(): PersistedState | undefined {
    try {
      const v = JSON.parse(readFileSync(this.file, 'utf8')) as PersistedState;
      const ok =
        Number.isSafeInteger(v.version) &&
        Number.isSafeInteger(v.configRevision) &&
        typeof v.nodeStateHash === 'string' &&
        typeof v.dataHash === 'string';
      if (!ok) return undefined;
      const { followed, ...applied } = v;
      return validFollowed(followed) ? { ...applied, followed } : applied;
    } catch {
      return undefined;
    }
  }

  write(s: PersistedState): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(s) + '\n');
    renameSync(tmp, this.file);
  }
}

function validFollowed(f: unknown): f is Record<string, number> {
  return (
    typeof f === 'object' &&
    f !== null &&
    !Array.isArray(f) &&
    Object.values(f).every((n) => Number.isSafeInteger(n) && (n as number) > 0)
  );
}

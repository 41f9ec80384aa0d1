import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AppliedState } from '../../libs/applier/index.ts';

/**
 * What this node last ACKed (always a state this process applied and verified), kept across
 * restarts for operators and the start-up log. Never a reason to skip an apply: a restarted
 * applier checks the kernel with one full apply cycle before it ACKs (the kernel may have lost
 * the state while it was down). Written atomically (temp file + rename); an unreadable file is
 * treated as absent.
 */
export class AppliedStateFile {
  readonly file: string;

  constructor(dir: string, node: string) {
    this.file = path.join(dir, `applied-${node.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  }

  read(): AppliedState | undefined {
    try {
      const v = JSON.parse(readFileSync(this.file, 'utf8')) as AppliedState;
      const ok =
        Number.isSafeInteger(v.version) &&
        Number.isSafeInteger(v.configRevision) &&
        typeof v.nodeStateHash === 'string' &&
        typeof v.dataHash === 'string';
      return ok ? v : undefined;
    } catch {
      return undefined;
    }
  }

  write(s: AppliedState): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(s) + '\n');
    renameSync(tmp, this.file);
  }
}

import type { Command } from 'commander';
import { duration, waves } from './flag-values.ts';

/**
 * The one place ctl declares how a rollout runs (rollout, mode, config set share it). Rollout
 * policies added later (`--bake`, `--wave-timeout`, `--max-failures`, `--pause-before`) go here,
 * with their field in rolloutBody; the planner reads them in operation-routes.ts.
 */
export interface RolloutFlags {
  waves?: string;
  pauseOnError?: boolean;
  wait?: boolean;
  timeout?: number;
}

export function addRolloutFlags(cmd: Command, o: { defaultWaves?: string; wavesHelp: string }): Command {
  cmd.option('--waves <spec>', o.wavesHelp, waves, o.defaultWaves)
    .option('--pause-on-error', 'pause (keep the wave) on NACK instead of halting')
    .option('--wait', 'wait until the rollout completes, showing progress on stderr (exit 1 if it halts)')
    .option('--timeout <duration>', 'with --wait: give up after this long (e.g. 90s, 10m)', duration, 10 * 60_000);
  return cmd;
}

/** The rollout fields of a request body; undefined waves means "make the revision, start nothing". */
export function rolloutBody(o: RolloutFlags): { waves?: string; pauseOnError: boolean } {
  return { waves: o.waves, pauseOnError: !!o.pauseOnError };
}

import { InvalidArgumentError, type Command } from 'commander';
import { parseMaxFailures, parsePauseBefore } from '../../libs/control/wave-policy.ts'; // not the barrel: keeps zod out of ctl
import { duration, parseDuration, waves } from './flag-values.ts';
import { given, refuseFlags } from './flag-rules.ts';

/**
 * The one place ctl declares how a rollout runs (rollout, mode, config set share it): waves and
 * the wave policy (`--bake`, `--wave-timeout`, `--max-failures`, `--pause-before`), with their
 * fields in rolloutBody; the planner reads them in operation-routes.ts.
 */
export interface RolloutFlags {
  waves?: string;
  pauseOnError?: boolean;
  bake?: number;
  waveTimeout?: number;
  maxFailures?: string;
  pauseBefore?: number[];
  wait?: boolean;
  timeout?: number;
}

/** A bake may be zero (`0` or `0s`: advance as soon as the wave ACKed). */
function bakeDuration(v: string): number {
  const ms = v.trim() === '0' ? 0 : parseDuration(v);
  if (ms === undefined || !Number.isInteger(ms))
    throw new InvalidArgumentError('expected a duration such as 0, 30s, 10m or 2h.');
  return ms;
}

const checked =
  <T>(parse: (v: string) => T) =>
  (v: string): T => {
    try {
      return parse(v);
    } catch (e) {
      throw new InvalidArgumentError(`${(e as Error).message}.`);
    }
  };

export function addRolloutFlags(cmd: Command, o: { defaultWaves?: string; wavesHelp: string }): Command {
  cmd
    .option('--waves <spec>', o.wavesHelp, waves, o.defaultWaves)
    .option('--pause-on-error', 'pause (keep the wave) on failure instead of halting')
    .option('--bake <duration>', 'time every wave must stay ACKed before the next starts (default 0)', bakeDuration)
    .option(
      '--wave-timeout <duration>',
      'a node that has not ACKed this long after its wave started counts as failed (default 10m)',
      duration,
    )
    .option(
      '--max-failures <n|p%>',
      'failed nodes tolerated before the rollout halts: a count or a share of the fleet (default 0)',
      checked(parseMaxFailures),
    )
    .option(
      '--pause-before <wave>',
      'wait before this wave (2 or more; comma list) until `ctl rollout --promote`',
      checked(parsePauseBefore),
    )
    .option('--wait', 'wait until the rollout completes, showing progress on stderr (exit 1 if it halts)')
    .option('--timeout <duration>', 'with --wait: give up after this long (e.g. 90s, 10m)', duration, 10 * 60_000);
  return cmd;
}

/** The flags that say how a new rollout runs: they mean nothing to one that already runs. */
export const ROLLOUT_POLICY_FLAGS = [
  '--waves',
  '--pause-on-error',
  '--bake',
  '--wave-timeout',
  '--max-failures',
  '--pause-before',
] as const;

/** `--timeout` is how long `--wait` waits: without --wait it would be silently ignored. */
export function refuseTimeoutWithoutWait(cmd: Command, context: string): void {
  if (!given(cmd, '--wait')) refuseFlags(cmd, ['--timeout'], context, 'it is how long --wait waits (add --wait)');
}

/** Whether any flag asks for a rollout (waves or a policy flag). */
export function asksForRollout(o: RolloutFlags): boolean {
  return (
    o.waves !== undefined ||
    o.bake !== undefined ||
    o.waveTimeout !== undefined ||
    o.maxFailures !== undefined ||
    o.pauseBefore !== undefined
  );
}

/** The rollout fields of a request body; no waves and no policy means "make the revision, start nothing". */
export function rolloutBody(o: RolloutFlags): Record<string, unknown> {
  return {
    waves: o.waves,
    pauseOnError: !!o.pauseOnError,
    bakeMs: o.bake,
    waveTimeoutMs: o.waveTimeout,
    maxFailures: o.maxFailures,
    pauseBefore: o.pauseBefore,
  };
}

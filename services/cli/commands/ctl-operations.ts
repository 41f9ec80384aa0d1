import { Argument, type Command } from 'commander';
import { UsageError } from '../cli-errors.ts';
import { parseConfigAssignments } from '../config-fields.ts';
import { positiveInt } from '../flag-values.ts';
import {
  configChangeSentence,
  configRollbackSentence,
  pinSentence,
  rolloutSentence,
  rolloutStatusText,
  type WaveNodeView,
} from '../operation-sentences.ts';
import { emit } from '../output.ts';
import { callPlanner, plannerStatus, type Json } from '../planner-client.ts';
import { refuseFlags } from '../flag-rules.ts';
import {
  addRolloutFlags,
  asksForRollout,
  refuseTimeoutWithoutWait,
  ROLLOUT_POLICY_FLAGS,
  rolloutBody,
  type RolloutFlags,
} from '../rollout-flags.ts';
import type { CtlContext } from './ctl.ts';
import { untilRolledOut, waitUntil } from './ctl-wait.ts';
import type { SetExit } from './index.ts';

/** `--expect-pin`: a version, or `none` (0 on the wire: no pin expected). */
function expectedPin(v: string): number {
  return v.trim() === 'none' ? 0 : positiveInt(v);
}

/**
 * What `ctl rollback` (no target) saw: the default, and the unfinished rollout it would stop
 * (`--from-revision` given: that default, and no rollout).
 */
async function rollbackExpectation(
  c: CtlContext,
  fromRevision: number | undefined,
): Promise<{ fromRevision: number; rollout?: number }> {
  if (fromRevision !== undefined) return { fromRevision };
  const s = (await plannerStatus(c)).config as {
    defaultRevision: number;
    rollout?: { configRevision: number; status: string } | null;
  };
  const r = s.rollout;
  const unfinished = r && ['running', 'paused', 'halted'].includes(r.status) ? r.configRevision : undefined;
  return { fromRevision: s.defaultRevision, ...(unfinished !== undefined ? { rollout: unfinished } : {}) };
}

/** Operations: each prints a sentence (or the planner's answer with -o json|yaml). */
export function registerCtlOperations(ctl: Command, config: Command, ctx: () => CtlContext, setExit: SetExit): void {
  const done = (c: CtlContext, answer: Json, sentence: string) => {
    emit(c.format, answer, () => sentence);
    setExit(0);
  };
  /** With --wait: follow the rollout of `revision` to its end; exit 1 unless it completed. */
  const follow = async (c: CtlContext, o: RolloutFlags, revision: number | undefined) => {
    if (!o.wait || revision === undefined) return;
    const r = await waitUntil(
      c,
      untilRolledOut(revision),
      o.timeout ?? 10 * 60_000,
      `the rollout of config revision ${revision}`,
    );
    if (!r.ok) throw new Error(r.line);
    process.stderr.write(`${r.line}\n`);
  };
  const reason = (cmd: Command) => cmd.option('--reason <text>', 'why: recorded with the operation');

  addRolloutFlags(
    reason(
      ctl
        .command('rollout')
        .description(
          'roll a config revision out in waves (--pause a running one, --resume a paused one, --promote past a gate; `rollout status` shows it)',
        )
        .addArgument(
          new Argument('[status]', '`status`: show the rollout, its wave, bake clock and failures').choices(['status']),
        )
        .option('--config-revision <r>', 'the revision to roll out', positiveInt)
        .option(
          '--pause',
          'pause the running rollout: no further wave starts; nodes keep what they run (--resume goes on)',
        )
        .option('--resume', 'resume a paused rollout')
        .option('--promote', 'start the wave a --pause-before gate holds')
        .option(
          '--force',
          'roll out a revision made from an earlier default although it also changes fields back to that default',
        ),
    ),
    { defaultWaves: '1,10%,50%,100%', wavesHelp: 'cumulative waves: node counts or shares of the fleet' },
  ).action(
    async (
      show: string | undefined,
      o: RolloutFlags & {
        configRevision?: number;
        pause?: boolean;
        resume?: boolean;
        promote?: boolean;
        force?: boolean;
        reason?: string;
      },
      cmd: Command,
    ) => {
      if (show === 'status')
        refuseFlags(
          cmd,
          [
            '--config-revision',
            '--pause',
            '--resume',
            '--promote',
            ...ROLLOUT_POLICY_FLAGS,
            '--wait',
            '--timeout',
            '--reason',
            '--force',
          ],
          'rollout status',
          'it only shows the rollout',
        );
      const verbs = [o.configRevision !== undefined, !!o.pause, !!o.resume, !!o.promote].filter(Boolean).length;
      if (show !== 'status' && verbs === 0)
        throw new UsageError(
          'rollout needs --config-revision R (or --pause, --resume, --promote, or `rollout status`)',
        );
      if (verbs > 1) throw new UsageError('rollout: give one of --config-revision R, --pause, --resume or --promote');
      const verb = o.pause ? '--pause' : o.resume ? '--resume' : o.promote ? '--promote' : undefined;
      if (verb !== undefined)
        refuseFlags(
          cmd,
          [...ROLLOUT_POLICY_FLAGS, '--force'],
          `rollout ${verb}`,
          'it acts on the rollout in progress, whose waves and policy are set',
        );
      // a paused rollout never completes: --wait would wait out its --timeout
      if (o.pause) refuseFlags(cmd, ['--wait'], 'rollout --pause', 'a paused rollout does not complete');
      refuseTimeoutWithoutWait(cmd, 'rollout');
      const c = ctx();
      if (show === 'status') {
        const s = await plannerStatus(c);
        const view = s.rollout as
          | { waveNodes?: WaveNodeView[]; waveElapsedMs?: number | null; bakeElapsedMs?: number | null }
          | null
          | undefined;
        done(
          c,
          { config: s.config, rollout: s.rollout ?? null, nodes: s.nodes } as Json,
          rolloutStatusText(
            s.config as never,
            Date.parse(String(s.now ?? new Date().toISOString())),
            view?.waveNodes ?? [],
            // what the planner's gates go by (its monotonic measure): probe12 L6
            { waveMs: view?.waveElapsedMs ?? undefined, bakeMs: view?.bakeElapsedMs ?? undefined },
          ),
        );
        return;
      }
      const st = await callPlanner(c, 'POST', '/rollout', {
        configRevision: o.configRevision,
        ...rolloutBody(o),
        pause: !!o.pause,
        resume: !!o.resume,
        promote: !!o.promote,
        ...(o.force ? { force: true } : {}),
        reason: o.reason,
      });
      done(c, st, rolloutSentence(st as never, o.resume ? 'resumed' : o.promote ? 'promoted' : undefined));
      await follow(c, o, (st.rollout as { configRevision: number } | undefined)?.configRevision ?? o.configRevision);
    },
  );

  const expectPinOption = (cmd: Command) =>
    cmd.option(
      '--expect-pin <n|none>',
      'refuse (exit 1) unless the data is pinned to version N (none: not pinned): another pin or unpin since is not overwritten',
      expectedPin,
    );

  expectPinOption(
    reason(
      ctl
        .command('rollback')
        .description('instant rollback: config (default) or data (--to-version)')
        .option('--to-version <n>', "publish version N's content as a new version and hold it", positiveInt)
        .option('--config-revision <r>', 'config revision to return to (default: the previous one)', positiveInt)
        .option(
          '--from-revision <r>',
          'roll back only if revision R is the cluster default and no rollout is in flight (default: the state ctl status shows now)',
          positiveInt,
        )
        .option('--force', 'with --config-revision: roll back to a revision that never was the cluster default'),
    ),
  ).action(
    async (o: {
      toVersion?: number;
      configRevision?: number;
      fromRevision?: number;
      force?: boolean;
      expectPin?: number;
      reason?: string;
    }) => {
      if (o.toVersion && o.configRevision)
        throw new UsageError('rollback: give --to-version (data) or --config-revision (config), not both');
      if (o.fromRevision !== undefined && (o.toVersion || o.configRevision))
        throw new UsageError(
          'rollback: --from-revision goes with a rollback without --to-version or --config-revision',
        );
      if (o.force && !o.configRevision) throw new UsageError('rollback: --force goes with --config-revision');
      if (o.expectPin !== undefined && !o.toVersion)
        throw new UsageError('rollback: --expect-pin goes with --to-version (data)');
      const c = ctx();
      // K2: a rollback without a target walks back from what the sender saw; sent along, the
      // planner refuses it (409) when the state moved since (a double submit, a second operator).
      const expect = o.toVersion || o.configRevision ? {} : await rollbackExpectation(c, o.fromRevision);
      const r = await callPlanner(c, 'POST', '/rollback', {
        toVersion: o.toVersion,
        configRevision: o.configRevision,
        ...expect,
        ...(o.force ? { force: true } : {}),
        ...(o.expectPin !== undefined ? { expectPin: o.expectPin } : {}),
        reason: o.reason,
      }).catch((e: Error) => {
        // an answer lost or not confirmed may still land: a plain retry would walk back twice
        if ('fromRevision' in expect && /not confirmed|cannot reach|timed out|timeout/i.test(e.message))
          throw new Error(
            `${e.message} (retry with \`ctl rollback --from-revision ${expect.fromRevision}\`: it is refused if this one landed)`,
          );
        throw e;
      });
      done(c, r, o.toVersion ? pinSentence('rollback', r) : configRollbackSentence(r as never));
    },
  );

  expectPinOption(
    reason(
      ctl
        .command('pin')
        .requiredOption('--version <n>', 'the version whose content to hold', positiveInt)
        .description("hold published data at version N's content"),
    ),
  ).action(async (o: { version: number; expectPin?: number; reason?: string }) => {
    const c = ctx();
    const r = await callPlanner(c, 'POST', '/pin', {
      version: o.version,
      ...(o.expectPin !== undefined ? { expectPin: o.expectPin } : {}),
      reason: o.reason,
    });
    done(c, r, pinSentence('pin', r));
  });

  expectPinOption(
    reason(ctl.command('unpin').description('release the pin (publishes live content if it differs)')),
  ).action(async (o: { expectPin?: number; reason?: string }) => {
    const c = ctx();
    const r = await callPlanner(c, 'POST', '/unpin', {
      ...(o.expectPin !== undefined ? { expectPin: o.expectPin } : {}),
      reason: o.reason,
    });
    done(c, r, pinSentence('unpin', r));
  });

  addRolloutFlags(
    reason(
      ctl
        .command('mode')
        .addArgument(new Argument('<mode>', 'proxy mode').choices(['ipvs', 'nftables']))
        .description('make a config revision with proxy mode ipvs|nftables (with --waves: roll it out)'),
    ),
    { wavesHelp: 'start a rollout of the new revision in these waves' },
  ).action(async (mode: string, o: RolloutFlags & { reason?: string }, cmd: Command) => {
    if (mode !== 'ipvs' && mode !== 'nftables')
      throw new UsageError(`mode ${JSON.stringify(mode)}: must be ipvs or nftables`);
    await configChange(cmd, o, 'mode', (b) => ({ mode, ...b }));
  });

  addRolloutFlags(
    reason(
      config
        .command('set')
        .description('make a config revision with these fields changed (with --waves: roll it out)')
        .argument(
          '<KEY=VALUE...>',
          'e.g. scheduler=wrr tcpTimeout=15m excludeCIDRs=10.0.0.0/8,192.168.0.0/16 strictARP=true',
        ),
    ),
    { wavesHelp: 'start a rollout of the new revision in these waves' },
  ).action(async (assignments: string[], o: RolloutFlags & { reason?: string }, cmd: Command) => {
    const change = parseConfigAssignments(assignments);
    await configChange(cmd, o, 'config', (b) => ({ change, ...b }));
  });

  async function configChange(
    cmd: Command,
    o: RolloutFlags & { reason?: string },
    path: 'mode' | 'config',
    body: (b: Json) => Json,
  ) {
    if (o.wait && !asksForRollout(o)) throw new UsageError('--wait needs --waves (a rollout to wait for)');
    const name = path === 'mode' ? 'mode' : 'config set';
    if (!asksForRollout(o))
      refuseFlags(
        cmd,
        ['--pause-on-error'],
        `${name} without --waves`,
        'it says how a rollout handles a failure, and none is started',
      );
    refuseTimeoutWithoutWait(cmd, name);
    const c = ctx();
    const r = await callPlanner(c, 'POST', `/${path}`, body({ ...rolloutBody(o), reason: o.reason }));
    done(c, r, configChangeSentence(r, asksForRollout(o)));
    const rev = r.revision as number;
    const st = r.state as { defaultRevision: number; rollout?: { configRevision: number; status: string } };
    if (st.rollout?.configRevision === rev && st.rollout.status !== 'rolled-back') return follow(c, o, rev);
    if (!asksForRollout(o)) return;
    // Asked to roll out, and no rollout of the answered revision runs: exit 0 only where there is
    // nothing to roll out (it is the default, no other revision's rollout in progress). A script
    // reading 0 believes its change is on its way (review5 F2).
    const other = st.rollout && ['running', 'paused'].includes(st.rollout.status) ? st.rollout : undefined;
    if (st.defaultRevision === rev && !other) return;
    throw new Error(
      other
        ? `no rollout of config revision ${rev} started: the rollout of config revision ${other.configRevision} is ${other.status}`
        : `no rollout of config revision ${rev} started (the planner answered without one)`,
    );
  }
}

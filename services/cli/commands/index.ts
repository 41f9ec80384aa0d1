import type { Command } from 'commander';
import { registerPlan } from './plan.ts';
import { registerPlanner } from './planner.ts';
import { registerCtl } from './ctl.ts';
import { registerDb } from './db.ts';
import { registerReplay } from './replay.ts';
import { registerAudit } from './audit.ts';
import { registerCleanup } from './cleanup.ts';
import { registerApplier } from './applier.ts';
import { registerApply } from './apply.ts';
import { registerCredentials } from './credentials.ts';

/** Sets the exit code a command finished with. */
export type SetExit = (code: number) => void;

/** Every subcommand registers itself here; one line per module keeps merges trivial. */
export function registerCommands(program: Command, setExit: SetExit): void {
  registerPlan(program, setExit);
  registerPlanner(program, setExit);
  registerCtl(program, setExit);
  registerDb(program, setExit);
  registerReplay(program, setExit);
  registerAudit(program, setExit);
  registerCleanup(program, setExit);
  registerApplier(program, setExit);
  registerApply(program, setExit);
  registerCredentials(program, setExit);
}

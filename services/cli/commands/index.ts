import type { Command } from 'commander';

/** Sets the exit code a command finished with. */
export type SetExit = (code: number) => void;

type Register = (program: Command, setExit: SetExit) => void;

/**
 * Every subcommand: its one-line summary (the top-level help lists it without loading the
 * module) and how to load the module that registers it. Modules load lazily, so `ctl` never
 * loads the Kubernetes client, SQLite or netlink, and `--help` loads none of them (in dist/ each
 * dynamic import below is its own chunk). One line per module keeps merges trivial; a test checks
 * that every module here exporting a top-level register function is listed.
 */
export const commandModules: Record<string, { summary: string; load: () => Promise<Register> }> = {
  plan: {
    summary: 'print what one node must program, from a directory of Kubernetes manifests',
    load: async () => (await import('./plan.ts')).registerPlan,
  },
  planner: {
    summary: 'watch Kubernetes (or manifests), log every event, publish versioned desired state on NATS',
    load: async () => (await import('./planner.ts')).registerPlanner,
  },
  ctl: {
    summary: 'operate a running planner: status, versions, diffs, rollouts, rollbacks, pins, mode switches',
    load: async () => (await import('./ctl.ts')).registerCtl,
  },
  db: {
    summary: 'event log maintenance: migrate | status | verify | backup | compact',
    load: async () => (await import('./db.ts')).registerDb,
  },
  replay: {
    summary: 'rebuild a version from the event log and print its hash',
    load: async () => (await import('./replay.ts')).registerReplay,
  },
  audit: {
    summary: 'audit queries over the event log: service | node | ops | diff | behind | churn',
    load: async () => (await import('./audit.ts')).registerAudit,
  },
  cleanup: {
    summary: 'remove everything Switchboard programmed on this host (and nothing else)',
    load: async () => (await import('./cleanup.ts')).registerCleanup,
  },
  applier: {
    summary: "follow this node's target on NATS: fetch, verify, render, program the kernel, ACK",
    load: async () => (await import('./applier.ts')).registerApplier,
  },
  apply: {
    summary: 'program this host once from a directory of Kubernetes manifests (no NATS)',
    load: async () => (await import('./apply.ts')).registerApply,
  },
  completion: {
    summary: 'print a shell completion script (bash or zsh)',
    load: async () => (await import('./completion.ts')).registerCompletion,
  },
  credentials: {
    summary: 'per-node NATS credentials: init, rotate-readers-key, mint, serve (issuer), fetch (node side)',
    load: async () => (await import('./credentials.ts')).registerCredentials,
  },
};

/** The command an argument vector runs (`help NAME` asks for NAME's help), if it names one. */
function commandOf(argv: readonly string[]): string | undefined {
  const [first, second] = argv;
  const name = first === 'help' ? second : first;
  return name !== undefined && Object.hasOwn(commandModules, name) ? name : undefined;
}

/**
 * Registers the commands `argv` needs: the one it names, fully; otherwise (help, no command, an
 * unknown one) every command as a summary-only entry, which is all commander needs to list them
 * or to reject a wrong name. Without argv every module is loaded (tests inspecting the CLI).
 */
export async function registerCommands(program: Command, setExit: SetExit, argv?: readonly string[]): Promise<void> {
  const wanted = argv === undefined ? Object.keys(commandModules) : [commandOf(argv)].filter((n) => n !== undefined);
  for (const [name, { summary, load }] of Object.entries(commandModules)) {
    if (!wanted.includes(name)) {
      if (wanted.length === 0) program.command(name).summary(summary);
      continue;
    }
    (await load())(program, setExit);
    program.commands.find((c) => c.name() === name)?.summary(summary);
  }
}

import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.ts';
import { UsageError } from './cli-errors.ts';
import { refuseRepeatedFlags } from './flag-rules.ts';
import { printable } from './output.ts';
import packageJson from '../../package.json' with { type: 'json' };

/**
 * `switchboard` CLI. Exit codes: 0 ok, 1 failure, 2 usage error; errors go to stderr as one line.
 * Each subcommand lives in its own module under commands/ and returns its exit code.
 */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('switchboard')
    .description(
      'Switchboard: versioned, audited Kubernetes service proxying (IPVS / nftables); switchboard --version prints the release',
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError(false);
  // The release, asked alone. Not a commander option: the program's options are read after a
  // subcommand too, where `ctl pin --version 3` means a version of the log.
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(`switchboard ${packageJson.version}\n`);
    return 0;
  }
  let code = 0;
  try {
    await registerCommands(
      program,
      (c) => {
        code = c;
      },
      argv,
    );
    // No command at all: one line naming them (the 29-line help on stderr read as an error; probe10 H10).
    if (argv.length === 0)
      throw new UsageError(
        `give a command: ${program.commands.map((c) => c.name()).join('|')} (switchboard --help says what each does)`,
      );
    refuseRepeatedFlags(program);
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      // `switchboard help` asks for the help (exit code 0); a command that needs a subcommand and
      // got none (`switchboard ctl`) printed its help to stderr as the error.
      if (e.code === 'commander.help') return e.exitCode === 0 ? 0 : 2;
      return 2; // commander already printed its one-line message
    }
    if (e instanceof UsageError) {
      process.stderr.write(`switchboard: ${printable(e.message)}\n`);
      return 2;
    }
    process.stderr.write(`switchboard: ${printable(e instanceof Error ? e.message : String(e))}\n`);
    if (process.env.SWITCHBOARD_DEBUG) console.error(e);
    return 1;
  }
}

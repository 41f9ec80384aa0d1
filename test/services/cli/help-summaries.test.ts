// The top-level help lists each command by a summary kept beside its lazy loader (commands/index.ts),
// apart from the command's own definition; it had fallen behind twice (audit's churn, credentials'
// rotate-readers-key, found from outside on 2026-12-07). These hold the lists in step with what
// each command takes.
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerCommands } from '../../../services/cli/commands/index.ts';
import packageJson from '../../../package.json' with { type: 'json' };
import { sb, sbIn } from './cli-support.ts';

const program = new Command('switchboard');
await registerCommands(program, () => undefined); // no argv: every module loaded
const command = (name: string) => program.commands.find((c) => c.name() === name)!;
/** The `a | b | c` list a summary or an argument's description names. */
const listed = (text: string) =>
  text
    .slice(text.lastIndexOf(':') + 1)
    .split('|')
    .map((s) => s.trim());

describe('the top-level help names what each command takes', () => {
  it('audit: every query its <query> argument takes, and none other', () => {
    const queries = command('audit')
      .registeredArguments[0]!.description.split('|')
      .map((s) => s.trim());
    expect(queries).toContain('churn');
    expect(listed(command('audit').summary())).toEqual(queries);
  });

  it('db: every action its <action> argument takes, and none other', () => {
    const actions = command('db')
      .registeredArguments[0]!.description.split('|')
      .map((s) => s.trim());
    expect(actions).toContain('compact');
    expect(listed(command('db').summary())).toEqual(actions);
  });

  it('credentials: every subcommand by name', () => {
    const subcommands = command('credentials').commands.map((c) => c.name());
    expect(subcommands).toContain('rotate-readers-key');
    for (const name of subcommands) expect(command('credentials').summary()).toContain(name);
  });

  it('--version prints the release, exit 0 (the compiled binary too)', async () => {
    const expected = { code: 0, stdout: `switchboard ${packageJson.version}\n`, stderr: '' };
    expect(await sbIn(['--version'])).toEqual(expected);
    expect(await sb(['--version'])).toEqual(expected);
  });
});

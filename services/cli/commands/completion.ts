import { Argument, Command, type Option } from 'commander';
import type { SetExit } from './index.ts';

/** One command of the tree, flattened: its path (`ctl config set`), what may follow it, and its flags' values. */
interface Node {
  readonly path: string[];
  /** Subcommands, choices of its first argument, and its options. */
  readonly words: string[];
  /** Per flag: its choices (`-o` → json yaml wide), or that it takes a file or a directory. */
  readonly values: Map<string, readonly string[] | 'file' | 'dir'>;
}

/** Flags of this command and of its parents (commander accepts a parent's options after a subcommand). */
function walk(cmd: Command, path: string[], inherited: readonly Option[], out: Node[]): void {
  const options = [...inherited, ...(cmd.options as Option[])];
  const values = new Map<string, readonly string[] | 'file' | 'dir'>();
  for (const o of options) {
    const arg = /<(\w+)/.exec(o.flags)?.[1] ?? '';
    const v = o.argChoices ?? (/dir/.test(arg) ? 'dir' : /file/.test(arg) ? 'file' : undefined);
    if (v) for (const n of [o.long, o.short]) if (n) values.set(n, v);
  }
  const firstArg = (cmd.registeredArguments as Argument[])[0];
  out.push({
    path,
    values,
    words: [
      ...cmd.commands.map((c) => c.name()),
      ...(firstArg?.argChoices ?? []),
      ...options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)),
      '--help',
    ],
  });
  for (const c of cmd.commands) walk(c, [...path, c.name()], options, out);
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A bash completion function generated from the CLI's own command tree (so it never drifts from
 * the flags): subcommands and options per command path, choices for flags that have them,
 * files and directories for flags that take them. zsh runs it through bashcompinit.
 */
export function bashCompletion(program: Command): string {
  const nodes: Node[] = [];
  walk(program, [], [], nodes);
  const reply = (v: readonly string[] | 'file' | 'dir') =>
    v === 'file'
      ? 'compgen -f -- "$cur"'
      : v === 'dir'
        ? 'compgen -d -- "$cur"'
        : `compgen -W ${quote(v.join(' '))} -- "$cur"`;
  const key = (p: string[]) => quote(p.join(' '));
  const lines = [
    '# switchboard bash completion: source <(switchboard completion bash)',
    '_switchboard() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path="" i w',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    w="${COMP_WORDS[i]}"',
    '    case "$w" in -*) continue ;; esac',
    '    case "${path:+$path }$w" in',
    ...nodes.filter((n) => n.path.length > 0).map((n) => `      ${key(n.path)}) path=${key(n.path)} ;;`),
    '    esac',
    '  done',
    '  case "$path|$prev" in',
    ...nodes.flatMap((n) =>
      [...n.values].map(
        ([flag, v]) => `    ${quote(`${n.path.join(' ')}|${flag}`)}) COMPREPLY=($(${reply(v)})); return ;;`,
      ),
    ),
    '  esac',
    '  local words=""',
    '  case "$path" in',
    ...nodes.map((n) => `    ${key(n.path)}) words=${quote(n.words.join(' '))} ;;`),
    '  esac',
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '}',
    'complete -F _switchboard switchboard',
  ];
  return lines.join('\n') + '\n';
}

export function zshCompletion(program: Command): string {
  return (
    '# switchboard zsh completion: source <(switchboard completion zsh)\n' +
    'autoload -U +X bashcompinit && bashcompinit\n' +
    bashCompletion(program)
  );
}

const SHELLS = ['bash', 'zsh'] as const;

export function registerCompletion(program: Command, setExit: SetExit): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(switchboard completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action(async (shell: 'bash' | 'zsh') => {
      // The whole tree, every module loaded (commands register lazily for normal runs).
      const { registerCommands } = await import('./index.ts');
      const full = new Command('switchboard');
      await registerCommands(full, () => {});
      process.stdout.write(shell === 'bash' ? bashCompletion(full) : zshCompletion(full));
      setExit(0);
    });
}

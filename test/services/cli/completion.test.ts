import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sbIn } from './cli-support.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-completion-'));
const script = path.join(dir, 'switchboard.bash');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  const r = await sbIn(['completion', 'bash']);
  expect(r.code).toBe(0);
  writeFileSync(script, r.stdout);
});

/** What real bash completes for the words typed so far (the last one is being typed). */
function complete(...words: string[]): string[] {
  const arr = ['switchboard', ...words].map((w) => `'${w}'`).join(' ');
  const out = execFileSync(
    'bash',
    [
      '-c',
      `source '${script}'; COMP_WORDS=(${arr}); COMP_CWORD=${words.length}; _switchboard; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  );
  return out.split('\n').filter(Boolean);
}

describe('switchboard completion', () => {
  it('completes commands, subcommands, flags, flag choices and argument choices from the real command tree', () => {
    expect(complete('c')).toEqual(['ctl', 'cleanup', 'completion', 'credentials']);
    expect(complete('ctl', '--server', 'http://x', 'st')).toEqual(['status']);
    expect(complete('ctl', 'config', '')).toEqual(expect.arrayContaining(['show', 'set']));
    expect(complete('ctl', 'status', '-o', '')).toEqual(['json', 'yaml', 'wide']);
    expect(complete('ctl', 'mode', 'nf')).toEqual(['nftables']);
    expect(complete('ctl', 'rollout', '--w')).toEqual(['--waves', '--wave-timeout', '--wait']);
    expect(complete('plan', '--mode', '')).toEqual(['ipvs', 'nftables']);
    expect(complete('applier', '--mode', 'd')).toEqual(['dry-run']);
    expect(complete('completion', '')).toEqual(expect.arrayContaining(['bash', 'zsh']));
    expect(complete('audit', '--a')).toEqual(['--at', '--all']);
  });

  it('completes files for --db and directories for --manifests', () => {
    writeFileSync(path.join(dir, 'log.db'), '');
    expect(complete('audit', '--db', path.join(dir, 'lo'))).toEqual([path.join(dir, 'log.db')]);
    expect(complete('plan', '--manifests', dir.slice(0, -2))).toEqual([dir]);
  });

  it('zsh gets the same function through bashcompinit; an unknown shell is a usage error', async () => {
    const zsh = await sbIn(['completion', 'zsh']);
    expect(zsh.stdout).toMatch(
      /^# switchboard zsh completion.*\nautoload -U \+X bashcompinit && bashcompinit\n# switchboard bash completion/,
    );
    expect(() => execFileSync('bash', ['-n', '-c', zsh.stdout.split('\n').slice(2).join('\n')])).not.toThrow();
    const fish = await sbIn(['completion', 'fish']);
    expect(fish).toMatchObject({ code: 2, stdout: '' });
    expect(fish.stderr).toMatch(
      /^error: command-argument value 'fish' is invalid for argument 'shell'\. Allowed choices are bash, zsh\.\n$/,
    );
  });
});

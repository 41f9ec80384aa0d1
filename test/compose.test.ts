import { existsSync, readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { registerCommands } from '../services/cli/commands/index.ts';

// No Docker engine runs here, so compose.yaml is checked structurally: it parses, every service
// has an image or a build, and every switchboard command it runs exists in the CLI.
const program = new Command();
await registerCommands(program, () => undefined); // every command, fully (lazy loading off)

describe('compose.yaml', () => {
  const compose = parse(readFileSync('compose.yaml', 'utf8')) as { services: Record<string, { image?: string; build?: string; command?: string[] }> };
  const commands = new Set(program.commands.map((c) => c.name()));

  it('defines nats, a planner and appliers', () => {
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(['nats', 'planner', 'applier-a']));
  });

  it('runs only commands the CLI has, with the options the contracts name', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      expect(svc.image ?? svc.build, name).toBeTruthy();
      if (!svc.build) continue;
      const [cmd, ...args] = svc.command ?? [];
      expect(commands.has(cmd!), `${name}: ${cmd}`).toBe(true);
      const sub = program.commands.find((c) => c.name() === cmd)!;
      const known = new Set(sub.options.map((o) => o.long));
      for (const a of args.filter((x) => x.startsWith('--'))) expect(known.has(a), `${name}: ${cmd} ${a}`).toBe(true);
    }
  });

  it('points the planner at manifests that exist in the image', () => {
    const args = compose.services.planner!.command!;
    const dir = args[args.indexOf('--manifests') + 1]!.replace('/opt/switchboard/', '');
    expect(existsSync(dir)).toBe(true);
  });
});

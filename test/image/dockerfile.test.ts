import { existsSync, readFileSync } from 'node:fs';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';

// No Docker engine runs here: the Dockerfile is linted with dockerfile-utils (the linter behind
// the Docker language server) and its structure is checked with the same project's parser.
const text = readFileSync('Dockerfile', 'utf8');
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();
const froms = instructions
  .map((x, i) => [x, i] as const)
  .filter(([x]) => x.getKeyword() === 'FROM')
  .map(([, i]) => i);
const buildStage = instructions.slice(froms[0], froms[1]);
const runtimeStage = instructions.slice(froms.at(-1));
const args = (x: Instruction) => x.getArguments().map((a) => a.getValue());
const of = (stage: Instruction[], keyword: string) => stage.filter((x) => x.getKeyword() === keyword);
const flag = (x: Instruction, name: string) =>
  (x as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] })
    .getFlags()
    .find((f) => f.getName() === name)
    ?.getValue();

/** Packages the stage's `apt-get install` lines name. */
function aptPackages(stage: Instruction[]): string[] {
  return of(stage, 'RUN')
    .flatMap((x) => x.getTextContent().replace(/\\\n/g, ' ').split('&&'))
    .filter((cmd) => /apt-get\s+install/.test(cmd))
    .flatMap((cmd) =>
      cmd
        .split(/\s+/)
        .slice(cmd.split(/\s+/).indexOf('install') + 1)
        .filter((w) => w && !w.startsWith('-')),
    );
}

describe('Dockerfile', () => {
  it('passes dockerfile-utils lint with no diagnostic (which does flag a broken file)', () => {
    expect(validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
    expect(validate('FROM node\nMAINTAINER x\nEXPOSE abc\n').length).toBeGreaterThan(0);
  });

  it('has a build stage with the native-module toolchain that builds dist/ and prunes devDependencies', () => {
    expect(froms.length).toBe(2);
    expect(args(instructions[froms[0]!]!)).toEqual(['node:20-bookworm-slim', 'AS', 'build']);
    expect(aptPackages(buildStage)).toEqual(expect.arrayContaining(['python3', 'make', 'g++']));
    const run = of(buildStage, 'RUN')
      .map((x) => x.getTextContent())
      .join('\n');
    expect(run).toMatch(/npm ci/);
    expect(run).toMatch(/node scripts\/build\.mjs/);
    expect(run).toMatch(/npm prune --omit=dev/);
  });

  it('has a runtime stage with the kernel tools and no compiler, sources or devDependencies', () => {
    const pkgs = aptPackages(runtimeStage);
    expect(pkgs).toEqual(expect.arrayContaining(['iptables', 'ipset', 'ipvsadm', 'nftables', 'conntrack']));
    for (const tool of ['python3', 'make', 'g++', 'gcc', 'build-essential']) expect(pkgs).not.toContain(tool);
    const copies = of(runtimeStage, 'COPY').map((x) => ({ from: flag(x, 'from'), src: args(x).slice(0, -1) }));
    const fromBuild = copies.filter((c) => c.from === 'build').flatMap((c) => c.src);
    expect(fromBuild.sort()).toEqual(['/src/bin', '/src/dist', '/src/node_modules', '/src/package.json']);
    // from the context: only example manifests (compose.yaml's planner reads them), never sources
    expect(copies.filter((c) => c.from === undefined).flatMap((c) => c.src)).toEqual(['examples']);
    expect(of(runtimeStage, 'RUN').some((x) => /npm (ci|install)/.test(x.getTextContent()))).toBe(false);
  });

  it('runs as a non-root user by default, with bin/switchboard as the entry point', () => {
    const user = of(runtimeStage, 'USER').at(-1);
    expect(user).toBeDefined();
    const [uid] = args(user!)[0]!.split(':');
    expect(uid).toMatch(/^\d+$/); // numeric, so Kubernetes' runAsNonRoot can check it
    expect(Number(uid)).toBeGreaterThan(0);
    expect(
      of(runtimeStage, 'RUN')
        .map((x) => x.getTextContent())
        .join('\n'),
    ).toMatch(new RegExp(`useradd[^&]*--uid ${uid}`));
    expect(of(runtimeStage, 'ENTRYPOINT').at(-1)!.getTextContent()).toContain('"/opt/switchboard/bin/switchboard"');
  });

  it('copies from the build context only paths that exist and .dockerignore keeps', () => {
    const ignored = readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const sources = of(instructions, 'COPY')
      .filter((x) => flag(x, 'from') === undefined)
      .flatMap((x) => args(x).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      expect(existsSync(src), src).toBe(true);
      expect(
        ignored.some((p) => src === p || src.startsWith(`${p}/`)),
        `${src} is in .dockerignore`,
      ).toBe(false);
    }
    // host-built native modules and builds never enter the context
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist']));
  });
});

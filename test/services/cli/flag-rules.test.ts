import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, sb, sbIn, type CliResult } from './cli-support.ts';

/** The real binary, killed after `ms` (code null then). */
function sbWithin(args: string[], ms: number): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(BIN, args, { timeout: ms }, (e, stdout, stderr) =>
      resolve({ code: e ? ((e as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

const dir = mkdtempSync(path.join(tmpdir(), 'sb-flag-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const manifests = path.join(dir, 'manifests');
mkdirSync(manifests);
const file = path.join(dir, 'a-file');
writeFileSync(file, '');
// a token file is read as one when the flag is parsed (a malformed one is a usage error of its own)
const tokens = path.join(dir, 'tokens');
writeFileSync(tokens, 'a-long-enough-token-value alice operator\n', { mode: 0o600 });

/** A usage error: exit 2, nothing on stdout, one line on stderr matching `line`. */
function expectUsage(r: CliResult, line: RegExp, what: string): void {
  expect({ what, code: r.code, stdout: r.stdout }).toEqual({ what, code: 2, stdout: '' });
  expect(r.stderr, what).toMatch(line);
  expect(r.stderr.trimEnd().split('\n'), what).toHaveLength(1);
}

const CTL = ['ctl', '--server', 'http://127.0.0.1:1'];

describe('no subcommand is a usage error; --help is not', () => {
  it('bare switchboard says so in one line naming the commands, exit 2 (probe10 H10; the real binary)', async () => {
    expectUsage(await sb([]), /^switchboard: give a command: .*\bplanner\b.*--help/, 'bare');
  });

  it('bare ctl prints usage to stderr and exit 2 (the real binary)', async () => {
    for (const [i, args] of [['ctl'], ['ctl', '--server', 'http://127.0.0.1:1'], ['ctl', 'config']].entries()) {
      const r = await (i < 1 ? sb : sbIn)(args); // one through the real binary: the code its users get
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(r.stderr).toMatch(/^Usage: switchboard/);
    }
    for (const args of [['--help'], ['ctl', '--help'], ['help']]) {
      const r = await sbIn(args);
      expect({ args, code: r.code }).toEqual({ args, code: 0 });
      expect(r.stdout).toMatch(/^Usage: switchboard/);
    }
  });
});

describe('a flag given twice is a usage error naming it', () => {
  it('refuses a repeated value flag, a repeated switch and -o/--output mixed (the real binary for one)', async () => {
    expectUsage(
      await sb([...CTL, 'rollout', '--config-revision', '2', '--waves', '1', '--waves=100%']),
      /^switchboard: --waves given twice \("1" and "100%"\): give it once\n$/,
      'waves',
    );
    const cases: [string[], RegExp][] = [
      [['ctl', '--server', 'http://127.0.0.1:1', '--server', 'http://127.0.0.1:2', 'status'], /--server given twice/],
      [[...CTL, 'status', '-o', 'json', '--output', 'yaml'], /^switchboard: -o\/--output given twice/],
      [[...CTL, '--json', 'status', '--json'], /^switchboard: --json given twice: give it once\n$/],
      [[...CTL, 'status', '--json', '-o', 'yaml'], /^switchboard: --json and -o yaml ask for two formats: give one\n$/],
      [['plan', '--manifests', manifests, '--manifests', manifests, '--node', 'n'], /--manifests given twice/],
      [['applier', '--node', 'a', '--node', 'b', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run'], /--node given/],
    ];
    for (const [args, line] of cases) expectUsage(await sbIn(args), line, args.join(' '));
  });
});

describe('a flag that does not apply is a usage error naming it and why', () => {
  it('db, audit, ctl, apply, applier, planner and credentials', async () => {
    const db = path.join(dir, 'log.db');
    expect((await sbIn(['db', 'migrate', '--db', db])).code).toBe(0);
    const planner = ['planner', '--nats', 'nats://127.0.0.1:1', '--db', path.join(dir, 'p.db')];
    const cases: [string[], RegExp][] = [
      [
        ['db', 'status', '--db', db, '--deep'],
        /^switchboard: --deep does not apply to db status: it is for db verify only/,
      ],
      [
        ['db', 'verify', '--db', db, '--before-version', '3'],
        /^switchboard: --before-version does not apply to db verify/,
      ],
      [
        ['db', 'backup', path.join(dir, 'b.db'), '--db', db, '--nats', 'nats://x:1'],
        /--nats does not apply to db backup/,
      ],
      [['db', 'verify', '--db', db, '--planner-key', file], /--planner-key does not apply to db verify without --nats/],
      [
        ['audit', 'ops', '--db', db, '--at', '10m'],
        /^switchboard: --at does not apply to audit ops: it is for audit node/,
      ],
      [['audit', 'node', 'n', '--db', db, '--since', '1h'], /--since does not apply to audit node/],
      [['audit', 'churn', '--db', db, '--all'], /--all does not apply to audit churn: it is for audit behind only/],
      [[...CTL, 'rollout', 'status', '--waves', '100%'], /^switchboard: --waves does not apply to rollout status/],
      [
        [...CTL, 'rollout', '--resume', '--bake', '1m'],
        /^switchboard: --bake does not apply to rollout --resume: it acts/,
      ],
      [[...CTL, 'rollout', '--promote', '--waves', '1'], /--waves does not apply to rollout --promote/],
      [[...CTL, 'rollout', '--pause', '--wait'], /--wait does not apply to rollout --pause: a paused rollout/],
      [
        [...CTL, 'rollout', '--config-revision', '2', '--timeout', '1m'],
        /--timeout does not apply to rollout: it is how long --wait/,
      ],
      [[...CTL, 'mode', 'ipvs', '--timeout', '1m'], /--timeout does not apply to mode/],
      [[...CTL, 'mode', 'ipvs', '--pause-on-error'], /--pause-on-error does not apply to mode without --waves/],
      [[...CTL, 'config', 'set', 'scheduler=rr', '--pause-on-error'], /does not apply to config set without --waves/],
      [
        ['apply', '--once', '--manifests', manifests, '--node', 'n', '--mode', 'ipvs', '--nft-backend', 'nft'],
        /^switchboard: --nft-backend does not apply to apply --mode ipvs: it is for --mode nftables\n$/,
      ],
      [
        [
          'apply',
          '--once',
          '--manifests',
          manifests,
          '--node',
          'n',
          '--mode',
          'nftables',
          '--ipvs-rate-estimation',
          'off',
        ],
        /--ipvs-rate-estimation does not apply to apply --mode nftables: it is for --mode ipvs/,
      ],
      [
        ['applier', '--node', 'n', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run', '--nft-notifications', 'off'],
        /--nft-notifications does not apply to applier --mode dry-run: dry-run touches no kernel/,
      ],
      [
        [...planner, '--manifests', manifests, '--relist'],
        /^switchboard: --relist does not apply to planner --manifests/,
      ],
      [
        [...planner, '--manifests', manifests, '--adopt-cluster'],
        /--adopt-cluster does not apply to planner --manifests/,
      ],
      [
        [...planner, '--kubeconfig', file, '--max-manifest-bytes', '9'],
        /--max-manifest-bytes does not apply to planner --kubeconfig/,
      ],
      [
        [...planner, '--manifests', manifests, '--token-file', tokens, '--insecure-open-api'],
        /--insecure-open-api does not apply to planner --token-file/,
      ],
      [
        ['credentials', 'mint', '--keys', file, '--role', 'planner', '--ttl', '60'],
        /--ttl does not apply to credentials mint --role/,
      ],
    ];
    for (const [args, line] of cases) expectUsage(await sbIn(args), line, args.join(' '));
  });
});

describe('a range given backwards is a usage error', () => {
  it('ctl versions --from after --to; audit churn --since and node --at in the future', async () => {
    expectUsage(
      await sbIn([...CTL, 'versions', '--from', '9', '--to', '3']),
      /^switchboard: --from 9 is after --to 3: the range is backwards \(swap them\)\n$/,
      'versions',
    );
    const db = path.join(dir, 'range.db');
    expect((await sbIn(['db', 'migrate', '--db', db])).code).toBe(0);
    expectUsage(
      await sbIn(['audit', 'churn', '--db', db, '--since', '2999-01-01T00:00:00Z']),
      /^switchboard: --since 2999-01-01T00:00:00\.000Z is in the future: churn counts the events received from then until now\n$/,
      'churn',
    );
    expect((await sbIn(['audit', 'churn', '--db', db, '--since', '1h'])).code).toBe(0);
    expectUsage(
      await sbIn(['audit', 'node', 'n1', '--db', db, '--at', '2999-01-01T00:00:00Z']),
      /^switchboard: --at 2999-01-01T00:00:00\.000Z is in the future: audit node answers for a time the log has reached\n$/,
      'node --at',
    );
    expect((await sbIn(['audit', 'node', 'n1', '--db', db, '--at', '1h'])).code).toBe(0);
  });
});

describe('a missing input file named on the command line is a usage error naming it', () => {
  it('every command alike: exit 2, one line naming the flag and the path', async () => {
    const gone = path.join(dir, 'gone');
    const nats = ['--nats', 'nats://127.0.0.1:1'];
    const cases: [string[], string][] = [
      [
        ['plan', '--manifests', gone, '--node', 'n'],
        `option '--manifests <dir>' argument '${gone}' is invalid. no such directory.`,
      ],
      [
        ['plan', '--manifests', file, '--node', 'n'],
        `option '--manifests <dir>' argument '${file}' is invalid. not a directory.`,
      ],
      [
        ['apply', '--once', '--manifests', gone, '--node', 'n'],
        `'--manifests <dir>' argument '${gone}' is invalid. no such directory.`,
      ],
      [
        ['plan', '--manifests', manifests, '--node', 'n', '--config', dir],
        `'--config <file>' argument '${dir}' is invalid. not a file.`,
      ],
      [
        ['planner', '--manifests', manifests, ...nats, '--db', path.join(dir, 'x.db'), '--token-file', gone],
        `'--token-file <file>' argument '${gone}' is invalid. no such file.`,
      ],
      [
        ['applier', '--node', 'n', ...nats, '--mode', 'dry-run', '--creds', gone],
        `'--creds <file>' argument '${gone}' is invalid. no such file.`,
      ],
      [['replay', '--db', gone], `'--db <file>' argument '${gone}' is invalid. no such file.`],
      [['audit', 'ops', '--db', gone], `'--db <file>' argument '${gone}' is invalid. no such file.`],
      [['db', 'status', '--db', gone], `switchboard: --db ${gone}: no such file`],
      [
        ['credentials', 'mint', '--keys', gone, '--role', 'planner'],
        `'--keys <file>' argument '${gone}' is invalid. no such file.`,
      ],
      [
        [
          'credentials',
          'fetch',
          '--node',
          'n',
          ...nats,
          '--bootstrap-creds',
          file,
          '--token-file',
          gone,
          '--out',
          gone,
        ],
        `'--token-file <file>' argument '${gone}' is invalid. no such file.`,
      ],
    ];
    for (const [args, line] of cases) {
      const r = await sbIn(args);
      expectUsage(r, /./, args.join(' '));
      expect(r.stderr).toContain(line);
    }
  });
});

describe('a FIFO given as a file flag is a usage error, not a hang (probe10 H10)', () => {
  // --keys stands for every flag inputFile checks (--token-file, --creds, --db, …: one function)
  it('exit 2, one line, for flags checked up front and for --signing-key / --planner-key', {
    timeout: 40_000,
  }, async () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const nats = ['--nats', 'nats://127.0.0.1:1'];
    const db = path.join(dir, 'fifo-x.db');
    const cases: [string[], RegExp][] = [
      [['credentials', 'mint', '--keys', fifo, '--role', 'planner'], /'--keys <file>' argument .* not a regular file/],
      [
        ['planner', '--manifests', manifests, ...nats, '--db', db, '--signing-key', fifo],
        /--signing-key: .*not a regular/,
      ],
      [
        ['applier', '--node', 'n', ...nats, '--mode', 'dry-run', '--planner-key', fifo],
        /--planner-key .*not a regular/,
      ],
    ];
    // The old code blocked in open() for ever: each runs as its own process with a timeout (killed,
    // it has no exit code), so a hang fails the test instead of stopping the suite. In parallel: time.
    const runs = await Promise.all(cases.map(([args]) => sbWithin(args, 20_000)));
    for (const [i, [args, line]] of cases.entries()) expectUsage(runs[i]!, line, args.join(' '));
  });

  it('a file the command creates (planner and db migrate --db, db backup OUT): a FIFO, an empty path or a missing directory is refused before any lock file', {
    timeout: 40_000,
  }, async () => {
    const here = mkdtempSync(path.join(dir, 'created-'));
    const fifo = path.join(here, 'log.db');
    execFileSync('mkfifo', [fifo]);
    const log = path.join(dir, 'created-log.db');
    expect((await sb(['db', 'migrate', '--db', log])).code).toBe(0);
    const nats = ['--nats', 'nats://127.0.0.1:1'];
    const gone = path.join(here, 'no-dir', 'x.db');
    const cases: [string[], RegExp][] = [
      [
        ['db', 'migrate', '--db', fifo],
        /^switchboard: --db \S+log\.db: not a regular file \(a FIFO, socket or device\)\n$/,
      ],
      [['planner', '--manifests', manifests, ...nats, '--db', fifo], /'--db <file>' argument .* not a regular file/],
      [['db', 'migrate', '--db', ''], /^switchboard: --db "": an empty path\n$/],
      [['db', 'migrate', '--db', gone], /^switchboard: --db \S+: no such directory \S+no-dir\n$/],
      [['planner', '--manifests', manifests, ...nats, '--db', gone], /'--db <file>' argument .* no such directory/],
      [['db', 'migrate', '--db', here], /^switchboard: --db \S+: a directory, not a file\n$/],
      [['db', 'backup', '--db', log, gone], /^switchboard: db backup OUT \S+: no such directory \S+no-dir\n$/],
      [['db', 'compact', '--db', fifo, '--before-version', '2'], /--db \S+: not a regular file/],
    ];
    const runs = await Promise.all(cases.map(([args]) => sbWithin(args, 20_000)));
    for (const [i, [args, line]] of cases.entries()) expectUsage(runs[i]!, line, args.join(' '));
    // nothing was made beside any of them (the hang left FILE.lock, -journal and .holder behind)
    expect(readdirSync(here)).toEqual(['log.db']);
  });
});

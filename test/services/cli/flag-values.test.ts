import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../../services/cli/flag-values.ts';
import { sbIn } from './cli-support.ts';

/** `switchboard applier` with its required flags (a NATS nobody listens on) and `flags`. */
const applier = (...flags: string[]) =>
  sbIn(['applier', '--node', 'n1', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run', ...flags]);

/** Where a pod's service account is mounted (the path @kubernetes/client-node reads). */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

describe('flag values of the long-running commands are checked before they connect', () => {
  it('applier --http notanaddr is a usage error naming the flag (NATS is never tried)', async () => {
    const r = await applier('--http', 'notanaddr');
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(
      /^switchboard: --http "notanaddr": not an address \(expected HOST:PORT, e\.g\. 127\.0\.0\.1:9440\)\n$/,
    );
  });

  it('applier --probe-* values are usage errors naming the flag (exit 2, one line, NATS never tried)', async () => {
    const cases: [string[], RegExp][] = [
      [['--probe-sample', 'x'], /^switchboard: --probe-sample must be a whole number from 0 to 100, got "x"\n$/],
      [
        ['--probe-rate', '0'],
        /^switchboard: --probe-rate must be a whole number per second from 1 to 10000, got "0"\n$/,
      ],
      [
        ['--probe-timeout', '1.5'],
        /^switchboard: --probe-timeout must be a whole number of ms from 1 to 60000, got "1\.5"\n$/,
      ],
      [
        ['--probe-interval', '-1'],
        /^switchboard: --probe-interval must be a whole number of ms from 0 to 86400000, got "-1"\n$/,
      ],
    ];
    for (const [flags, msg] of cases) {
      const r = await applier(...flags);
      expect({ flags, code: r.code, stdout: r.stdout }).toEqual({ flags, code: 2, stdout: '' });
      expect(r.stderr).toMatch(msg);
    }
  });

  it('applier --nft-notifications takes on or off only (exit 2, one line naming the choices)', async () => {
    const r = await applier('--nft-notifications', 'maybe');
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(
      /--nft-notifications <on\|off>' argument 'maybe' is invalid\. Allowed choices are on, off\.\n$/,
    );
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('applier --ipvs-rate-estimation takes on, off or keep only (exit 2, one line naming the choices)', async () => {
    const r = await applier('--ipvs-rate-estimation', '0');
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(
      /--ipvs-rate-estimation <on\|off\|keep>' argument '0' is invalid\. Allowed choices are on, off, keep\.\n$/,
    );
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('applier --resync-interval takes a duration of at least 1s, or 0 (exit 2 naming the flag)', async () => {
    for (const bad of ['10', '500ms', 'often']) {
      const r = await applier('--resync-interval', bad);
      expect({ bad, code: r.code, stdout: r.stdout }).toEqual({ bad, code: 2, stdout: '' });
      expect(r.stderr).toBe(
        `switchboard: --resync-interval must be a duration of at least 1s (e.g. 60s, 5m) or 0, got "${bad}"\n`,
      );
    }
  });

  it('applier --leftover-check-interval takes a duration of at least 1s (exit 2 naming the flag)', async () => {
    for (const bad of ['10', '500ms', '0', 'often']) {
      const r = await applier('--leftover-check-interval', bad);
      expect({ bad, code: r.code, stdout: r.stdout }).toEqual({ bad, code: 2, stdout: '' });
      expect(r.stderr).toBe(
        `switchboard: --leftover-check-interval must be a duration of at least 1s (e.g. 10s, 1m), got "${bad}"\n`,
      );
    }
  });

  it('applier --heartbeat is whole ms from 100 to 15000 (the planner calls 30 s of silence UNKNOWN)', async () => {
    for (const bad of ['99', '15001', '100000000000', '5s']) {
      const r = await applier('--heartbeat', bad);
      expect({ bad, code: r.code, stdout: r.stdout }).toEqual({ bad, code: 2, stdout: '' });
      expect(r.stderr).toBe(`switchboard: --heartbeat must be a whole number of ms from 100 to 15000, got "${bad}"\n`);
    }
  });

  it('applier --node that is no DNS subdomain is a usage error, not a wait for NATS', async () => {
    for (const bad of ['bad node', '*', '-a']) {
      const r = await sbIn(['applier', '--node', bad, '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run']);
      expect({ bad, code: r.code, stdout: r.stdout }).toEqual({ bad, code: 2, stdout: '' });
      expect(r.stderr).toBe(`switchboard: --node: invalid node name ${JSON.stringify(bad)} (DNS subdomain expected)\n`);
    }
  });

  it('bad values of plan, replay, db and planner flags say what is wrong with them (exit 2, one line)', async () => {
    const planner = [
      'planner',
      '--manifests',
      'examples/demo',
      '--nats',
      'nats://127.0.0.1:1',
      '--db',
      path.join(tmpdir(), `sb-flag-values-${process.pid}.db`), // never made: each case fails before it
    ];
    const cases: [string[], string][] = [
      [
        ['plan', '--manifests', 'examples/demo', '--node', 'node-a', '--config', '/nonexistent/proxy.yaml'],
        "error: option '--config <file>' argument '/nonexistent/proxy.yaml' is invalid. no such file.\n",
      ],
      [
        ['replay', '--db', 'package.json', '--to-version', '0'], // checked before the file is opened
        'switchboard: --to-version must be a version number (a whole number; versions start at 1), got "0"\n',
      ],
      // what Number() reads as a number is not one here: 0x2 was version 2, "" seq 0
      ...['0x2', '1e0', '+2', ' 2', '-1', '9007199254740993'].map((v): [string[], string] => [
        ['replay', '--db', 'package.json', '--to-version', v],
        `switchboard: --to-version must be a version number (a whole number; versions start at 1), got ${JSON.stringify(v)}\n`,
      ]),
      [
        ['replay', '--db', 'package.json', '--to-seq', ''],
        'switchboard: --to-seq must be an event seq (a whole number from 0), got ""\n',
      ],
      [
        ['audit', '--db', 'package.json', 'diff', '0x1', '1'],
        'switchboard: audit diff: A must be a version number (a whole number; versions start at 1), got "0x1"\n',
      ],
      [
        ['audit', '--db', 'package.json', 'diff', '1', '1e0'],
        'switchboard: audit diff: B must be a version number (a whole number; versions start at 1), got "1e0"\n',
      ],
      [
        ['db', 'compact', '--db', '/nonexistent/log.db', '--before-version', 'abc'],
        'switchboard: db compact: --before-version must be a positive version number, got "abc"\n',
      ],
      [
        [...planner, '--versions-keep-checkpoints', '1'],
        'switchboard: --versions-keep-checkpoints 1: keep at least 2 (a node still loading the previous checkpoint must find it) or 0\n',
      ],
      [
        [...planner, '--versions-keep-checkpoints', 'all'],
        'switchboard: --versions-keep-checkpoints all: expected a whole number (0 keeps every version)\n',
      ],
      [
        [...planner, '--retain-versions', '0'],
        'switchboard: --retain-versions 0: expected a whole number of at least 1\n',
      ],
      [
        [...planner, '--retain-age', '30s'],
        'switchboard: --retain-age 30s: expected a duration of at least 1m, such as 7d or 12h\n',
      ],
      [
        [...planner, '--node-selector', 'kubernetes.io/os in linux'],
        `switchboard: --node-selector: label selector "kubernetes.io/os in linux": expected '(' after 'in' for kubernetes.io/os\n`,
      ],
    ];
    for (const [args, stderr] of cases) expect(await sbIn(args)).toEqual({ code: 2, stdout: '', stderr });
  });

  it('planner --kubeconfig / --in-cluster that cannot work is a usage error before the log or key is made (review5 F7)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sb-kubeconfig-'));
    const podEnv = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    delete process.env.KUBERNETES_SERVICE_HOST; // as outside a pod, wherever the suite runs
    delete process.env.KUBERNETES_SERVICE_PORT;
    try {
      const empty = path.join(dir, 'empty.yaml');
      writeFileSync(empty, '');
      const noContext = path.join(dir, 'no-context.yaml');
      writeFileSync(
        noContext,
        'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://10.0.0.1"}}]\n',
      );
      const planner = ['planner', '--nats', 'nats://127.0.0.1:1', '--db', path.join(dir, 'p.db')];
      const cases: [string[], string][] = [
        [['--kubeconfig', empty], `--kubeconfig: kubeconfig ${empty}: cannot read it as a kubeconfig: `],
        [['--kubeconfig', noContext], '--kubeconfig: kubeconfig names no current-context'],
        [
          ['--in-cluster'],
          '--in-cluster: in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT',
        ],
      ];
      const missing = await sbIn([...planner, '--kubeconfig', '/nonexistent/kc']);
      expect(missing).toEqual({
        code: 2,
        stdout: '',
        stderr: "error: option '--kubeconfig <file>' argument '/nonexistent/kc' is invalid. no such file.\n",
      });
      for (const [flags, line] of cases) {
        const r = await sbIn([...planner, ...flags]);
        expect(r, flags.join(' ')).toMatchObject({ code: 2, stdout: '' });
        expect(r.stderr.startsWith(`switchboard: ${line}`), r.stderr).toBe(true);
        expect(r.stderr.split('\n')).toHaveLength(2); // one line
      }
      // The service's env set but no service account mounted (a pod's would be at that fixed path:
      // where one is, as in a CI pod, this case cannot be made, and is left out).
      if (!existsSync(SERVICE_ACCOUNT_DIR)) {
        process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
        process.env.KUBERNETES_SERVICE_PORT = '443';
        expect(await sbIn([...planner, '--in-cluster'])).toEqual({
          code: 2,
          stdout: '',
          stderr: `switchboard: --in-cluster: in-cluster configuration needs the service account's token in ${SERVICE_ACCOUNT_DIR}: ENOENT (not running in a pod?)\n`,
        });
      }
      expect(readdirSync(dir).sort()).toEqual(['empty.yaml', 'no-context.yaml']); // no log, no signing key
    } finally {
      for (const [k, v] of [
        ['KUBERNETES_SERVICE_HOST', podEnv.host],
        ['KUBERNETES_SERVICE_PORT', podEnv.port],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseDuration('soon')).toBeUndefined();
  });
});

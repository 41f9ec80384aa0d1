// Throwaway network namespaces for kernel tests on this host, and a way to run a module's
// exported function inside one. A netlink socket belongs to the netns of the process that
// opened it, so kernel code runs in a child started with `ip netns exec NS`.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { childBundle, childNodeArgs } from '../../../support/child-node-args.ts';

const pexec = promisify(execFile);
const RUNNER = fileURLToPath(new URL('./netns-runner.ts', import.meta.url));
const MARK = '@@netns-result@@';
// Resolve tsx's loader from this repo, whatever the child's cwd.
const TSX = pathToTsx();

function pathToTsx(): string {
  const require = createRequire(import.meta.url);
  return require.resolve('tsx');
}

let counter = 0;

/** Error thrown in the child, rebuilt with its name/code/errno. */
export class NetnsRemoteError extends Error {
  constructor(
    readonly remoteName: string | undefined,
    message: string,
    readonly code?: string,
    readonly errno?: number,
  ) {
    super(message);
    this.name = remoteName ?? 'Error';
  }
}

export class TestNetns {
  private constructor(readonly name: string) {}

  /** Creates `sbnl-<tag>-<pid>-<n>` with loopback up. */
  static async create(tag: string): Promise<TestNetns> {
    const name = `sbnl-${tag}-${process.pid}-${counter++}`;
    await pexec('ip', ['netns', 'add', name]);
    const ns = new TestNetns(name);
    await ns.exec('ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** Runs a command inside the netns; resolves stdout, rejects with stderr in the message. */
  async exec(cmd: string, ...args: string[]): Promise<string> {
    try {
      const { stdout } = await pexec('ip', ['netns', 'exec', this.name, cmd, ...args], { maxBuffer: 64 * 1024 * 1024 });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${cmd} ${args.join(' ')} in ${this.name}: ${(err.stderr ?? '').trim() || err.message}`);
    }
  }

  /**
   * Calls `fnName(...args)` exported by `modulePath` in a child process inside this netns
   * and returns its JSON-serialisable result; a throw in the child rejects here.
   */
  async run<T = unknown>(
    modulePath: string,
    fnName: string,
    args: unknown[] = [],
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    // Generous default: the same scenarios run in the TCG VM, ~30x slower than the host.
    const timeout = opts.timeoutMs ?? 600_000;
    const { stdout } = await pexec(
      'ip',
      [
        'netns',
        'exec',
        this.name,
        process.execPath,
        ...childNodeArgs(RUNNER, TSX),
        childBundle(modulePath),
        fnName,
        JSON.stringify(args),
      ],
      { maxBuffer: 64 * 1024 * 1024, timeout },
    ).catch(
      (e: { stdout?: string; stderr?: string; message: string; killed?: boolean; signal?: string; code?: number }) => {
        // Say how the child ended and what it printed last: a native abort leaves no JS error behind.
        const ended = `exit ${e.code ?? '?'}${e.signal ? `, signal ${e.signal}` : ''}`;
        const why = e.killed
          ? `killed (${e.signal ?? 'signal'}) after the ${timeout} ms limit`
          : `${ended}: ${(e.stderr ?? '').trim().slice(-1500) || e.message}; stdout: ${(e.stdout ?? '').trim().slice(-500)}`;
        throw new Error(`runInNetns ${fnName}: child failed: ${why}`);
      },
    );
    const line = stdout
      .split('\n')
      .reverse()
      .find((l) => l.startsWith(MARK));
    if (!line) throw new Error(`runInNetns ${fnName}: no result from child; stdout: ${stdout.slice(-2000)}`);
    const res = JSON.parse(line.slice(MARK.length)) as
      | { ok: true; value: T }
      | { ok: false; error: { name?: string; message: string; code?: string; errno?: number } };
    if (res.ok) return res.value;
    throw new NetnsRemoteError(res.error.name, res.error.message, res.error.code, res.error.errno);
  }

  /** Deletes the namespace (and with it every set, link and address in it). */
  async destroy(): Promise<void> {
    await pexec('ip', ['netns', 'del', this.name]).catch(() => undefined);
  }
}

/** One-shot: run a function inside an existing netns. */
export const runInNetns = <T = unknown>(
  ns: TestNetns,
  modulePath: string,
  fnName: string,
  args: unknown[] = [],
): Promise<T> => ns.run<T>(modulePath, fnName, args);

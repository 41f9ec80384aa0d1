// Process helpers for in-VM tests: run a command in the root namespace or inside a
// named network namespace (via `ip netns exec`), failing loudly with its stderr.
import { execFile } from 'node:child_process';

export interface ExecOptions {
  /** Kill the command after this long (default 60 s; TCG is slow). */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Written to the command's stdin (which is otherwise closed at once). */
  input?: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal (for example the timeout). */
  code: number | null;
}

export class ExecError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: ExecResult,
  ) {
    super(`${argv.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

/** Runs argv (no shell) and returns its output; throws ExecError unless allowFailure. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const raw = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
        if (raw && typeof raw.code === 'string') return reject(raw); // ENOENT etc: not an exit code
        const code = raw ? (typeof raw.code === 'number' ? raw.code : null) : 0;
        const result = { stdout, stderr, code };
        if (code !== 0 && !opts.allowFailure) return reject(new ExecError(argv, result));
        resolve(result);
      },
    );
    // A command that exits before it reads its stdin (its answer is its exit code) makes this write
    // fail with EPIPE: that is no error of the test's, and the exit code and stderr say what ran
    // (an unhandled EPIPE here failed a VM run whose tests had all passed, CI).
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs argv inside network namespace `ns`; returns stdout. */
export async function execIn(ns: string, argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  return (await run(['ip', 'netns', 'exec', ns, ...argv], opts)).stdout;
}

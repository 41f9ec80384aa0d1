// TypeScript entry to the test VM, for benches and scripts that drive it from the host:
//
//   const { exitCode, output } = await runInVm({ command: ['ipvsadm', '-Ln'] });
//
// Wraps run-in-vm.sh (which builds the cached image if needed, boots, runs the command
// as root with cwd = the repo, and powers off). `output` is what the command wrote
// (stdout and stderr interleaved); the harness's own "[vm]" lines are in `log`.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./run-in-vm.sh', import.meta.url));

export interface RunInVmOptions {
  /** argv to run inside the VM (no shell; use ['bash', '-c', '...'] for one). */
  command: readonly string[];
  /** Kill the VM after this long; the result then has exitCode 124. Default 30 min. */
  timeoutMs?: number;
  /** Guest memory in MB (default 3072). */
  memMb?: number;
  /** Extra environment for the command inside the VM. */
  env?: Readonly<Record<string, string>>;
  /** Also copy the command's output to this process's stdout as it arrives. */
  echo?: boolean;
}

export interface RunInVmResult {
  /** The command's exit code; 124 = VM timeout, 125 = VM failed before reporting one. */
  exitCode: number;
  output: string;
  /** Harness messages (image build, timings, module failures, console tail on failure). */
  log: string;
}

export function runInVm(opts: RunInVmOptions): Promise<RunInVmResult> {
  const args: string[] = [];
  if (opts.timeoutMs !== undefined) args.push('--timeout', String(Math.max(1, Math.ceil(opts.timeoutMs / 1000))));
  if (opts.memMb !== undefined) args.push('--mem', String(opts.memMb));
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push('--env', `${k}=${v}`);
  args.push('--', ...opts.command);
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let log = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (opts.echo) process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === null) return reject(new Error(`run-in-vm.sh killed by ${signal}: ${log}`));
      resolve({ exitCode: code, output, log });
    });
  });
}

import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { decodeNotifications, NFNLGRP_NFTABLES, type NftNotification } from '../../netlink/index.ts';

/**
 * nf_tables' notifications (NFNLGRP_NFTABLES) read by a child process, one datagram per line
 * (base64) on its stdout. Why a child: when the kernel drops notifications because the socket's
 * receive queue is full, the next recvmsg fails with ENOBUFS, and the `netlink` package's native
 * code then aborts the whole process (std::terminate, "Error in native callback"; node 20,
 * netlink 0.3.0, reproduced with a 4 KiB receive buffer). The package offers no NETLINK_NO_ENOBUFS
 * either, and without ENOBUFS a loss would go unnoticed. So the listener runs apart: its exit —
 * on ENOBUFS, a truncated datagram, anything — is the loss signal (`onLost`), and the applier
 * lives on. Its stdout is a pipe, written synchronously: a parent that falls behind blocks the
 * child, whose socket then overflows, which again ends in a reported loss, never a silent one.
 */
export interface NftNotificationListenerOptions {
  readonly recvBufferSize: number;
  /** The node binary that runs the child (default process.execPath); tests pass one that fails. */
  readonly execPath?: string;
  /** How long start waits for the child's `ready` before giving up on it (default 10 s). */
  readonly readyTimeoutMs?: number;
}

const READY_TIMEOUT_MS = 10_000;

export class NftNotificationListener {
  /** The running child, with what ends it: stop's `why` becomes its reason (ready rejected, no loss reported). */
  private current: { child: ChildProcess; ready: Promise<void>; end: (why: string) => void } | undefined;

  constructor(
    private readonly onNotification: (n: NftNotification) => void,
    private readonly onLost: (why: string) => void,
    private readonly options: NftNotificationListenerOptions,
  ) {}

  /**
   * Starts the child if it is not running; resolves once it has joined the group. Rejects when it
   * cannot: a failed spawn (EAGAIN under a pids limit, EMFILE, a missing binary), a child that
   * exits or hangs before `ready` (readyTimeoutMs), a stop() meanwhile. Never throws past that:
   * every child event has a listener, so nothing here can become an uncaught exception.
   */
  start(): Promise<void> {
    if (this.current) return this.current.ready;
    const netlink = createRequire(import.meta.url).resolve('netlink');
    const code = [
      `const { RawNetlinkSocket } = require(${JSON.stringify(netlink)});`,
      `const s = new RawNetlinkSocket(12, { messagePeeking: true, recvBufferSize: ${this.options.recvBufferSize}, sendBufferSize: 4096 });`,
      `s.addMembership(${NFNLGRP_NFTABLES});`,
      `s.on('message', (b) => process.stdout.write(b.toString('base64') + '\\n'));`,
      `s.on('truncatedMessage', () => process.exit(4));`,
      `s.on('error', (e) => { process.stderr.write(String(e.code || e.message)); process.exit(3); });`,
      `process.stdin.on('end', () => process.exit(0));`, // the applier is gone
      `process.stdin.resume();`,
      `process.stdout.write('ready\\n');`,
    ].join('\n');
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    ready.catch(() => undefined); // a caller that stopped waiting must not leave it unhandled
    let child: ChildProcess;
    try {
      child = spawn(this.options.execPath ?? process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      // spawn throws synchronously for some failures (bad arguments); most come as 'error'.
      return Promise.reject(new Error(`notification listener could not start (${errorText(e)})`));
    }
    let stderr = '';
    let buffered = '';
    let isReady = false;
    let ended = false;
    /**
     * Ends this child once, for whichever comes first: its exit, a spawn or kill error, the ready
     * timeout, stop(). Reports a loss only while it is still the running child (stop's own end
     * is no loss unless stop was given a reason, which stop reports itself).
     */
    const end = (why: string, lost: boolean, stopped = false) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      const wasCurrent = this.current?.child === child;
      if (wasCurrent) this.current = undefined;
      try {
        if (child.exitCode === null && child.signalCode === null) child.kill();
      } catch {
        // kill fails only for a child already gone or not ours to signal: nothing left to end.
      }
      if (!isReady) rejectReady(stopped ? new ListenerStoppedError(why) : new Error(why));
      if (wasCurrent && lost && isReady) this.onLost(why);
    };
    this.current = { child, ready, end: (why) => end(why, false, true) };
    const timeoutMs = this.options.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const timer = setTimeout(() => end(`notification listener not ready after ${timeoutMs} ms`, true), timeoutMs);
    // A failed spawn, or a failed kill: without this listener, 'error' would be an uncaught exception.
    child.on('error', (e) => end(`notification listener failed (${errorText(e)})`, true));
    for (const s of [child.stdin, child.stdout, child.stderr]) s?.on('error', () => undefined); // 'close' follows
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout!.on('data', (d: Buffer) => {
      // A stopped child's last lines: its commits are no longer ours to record (a late NEWGEN
      // would close the next child's pending commit early).
      if (this.current?.child !== child) return;
      buffered += d.toString('latin1');
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (!isReady) {
          if (line === 'ready') {
            isReady = true;
            clearTimeout(timer);
            resolveReady();
          }
          continue;
        }
        let ns: NftNotification[];
        try {
          ns = decodeNotifications(Buffer.from(line, 'base64'));
        } catch (e) {
          this.stop(`malformed notification (${(e as Error).message})`);
          return;
        }
        for (const n of ns) this.onNotification(n);
      }
    });
    // 'close': after the child exited and its pipes were read to the end (its last words on stderr included).
    child.on('close', (code, signal) => {
      // The native abort prints two lines ("terminate called …", "  what(): …"): keep the last.
      const said = stderr.trim().split('\n').at(-1)?.trim();
      end(`notification listener exited (${[signal ?? `code ${code}`, said].filter(Boolean).join(': ')})`, true);
    });
    // Once it listens, neither the child nor its pipes keep the applier's event loop alive.
    const unref = () => {
      child.unref();
      for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void })?.unref?.();
    };
    ready.then(unref, () => undefined);
    return ready;
  }

  /** The running child's PID (diagnostics; the tests stop it to make its socket overflow for sure). */
  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  /** Ends the child (a pending start rejects); `why` is reported as a loss when given. */
  stop(why?: string): void {
    const c = this.current;
    this.current = undefined;
    c?.end(why ?? 'notification listener stopped');
    if (why) this.onLost(why);
  }
}

/**
 * A start that stop() ended before the child was ready (the runner stops the listener around a
 * large transaction of its own): not a failure of the listener, so it says nothing about whether
 * the next start will work.
 */
export class ListenerStoppedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenerStoppedError';
  }
}

const errorText = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message ?? String(e);
};

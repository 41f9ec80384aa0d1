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
export class NftNotificationListener {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;

  constructor(
    private readonly onNotification: (n: NftNotification) => void,
    private readonly onLost: (why: string) => void,
    private readonly recvBufferSize: number,
  ) {}

  /** Starts the child if it is not running; resolves once it has joined the group. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    const netlink = createRequire(import.meta.url).resolve('netlink');
    const code = [
      `const { RawNetlinkSocket } = require(${JSON.stringify(netlink)});`,
      `const s = new RawNetlinkSocket(12, { messagePeeking: true, recvBufferSize: ${this.recvBufferSize}, sendBufferSize: 4096 });`,
      `s.addMembership(${NFNLGRP_NFTABLES});`,
      `s.on('message', (b) => process.stdout.write(b.toString('base64') + '\\n'));`,
      `s.on('truncatedMessage', () => process.exit(4));`,
      `s.on('error', (e) => { process.stderr.write(String(e.code || e.message)); process.exit(3); });`,
      `process.stdin.on('end', () => process.exit(0));`, // the applier is gone
      `process.stdin.resume();`,
      `process.stdout.write('ready\\n');`,
    ].join('\n');
    const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    let buffered = '';
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    let isReady = false;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready = ready;
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (!isReady) {
          if (line === 'ready') {
            isReady = true;
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
      if (this.child !== child) return; // stopped on purpose
      this.child = undefined;
      this.ready = undefined;
      // The native abort prints two lines ("terminate called …", "  what(): …"): keep the last.
      const said = stderr.trim().split('\n').at(-1)?.trim();
      const why = `notification listener exited (${[signal ?? `code ${code}`, said].filter(Boolean).join(': ')})`;
      if (!isReady) rejectReady(new Error(why));
      this.onLost(why);
    });
    // Once it listens, neither the child nor its pipes keep the applier's event loop alive.
    const unref = () => {
      child.unref();
      for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void })?.unref?.();
    };
    ready.then(unref, () => undefined);
    return ready;
  }

  /** Ends the child; `why` is reported as a loss when given. */
  stop(why?: string): void {
    const child = this.child;
    this.child = undefined;
    this.ready = undefined;
    if (child) child.kill();
    if (why) this.onLost(why);
  }
}

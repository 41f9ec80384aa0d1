import { connect as tcpConnect } from 'node:net';
import type { Authenticator } from '@nats-io/transport-node';

/**
 * What a NATS server says when it refuses a connection, asked on a connection of our own: the
 * client answers a first connect that the server refuses for a limit (`maximum connections
 * exceeded`, `maximum account active connections exceeded`, `maximum control line exceeded`)
 * with a bare "timeout" after CONNECT_TIMEOUT_MS: it sees the server's `-ERR` but only a refused
 * credential ends the attempt, and the words are not in the error it throws. Every process then
 * said "waiting for NATS at URL: timeout" while the server log named the limit (probe19 P19-3).
 *
 * Sends the same CONNECT the client would (the same credential, signed over this server's
 * nonce), then a PING: returns the server's `-ERR` text, or undefined when it answers PONG (it
 * takes a connection now), closes without a word, or does not answer within `timeoutMs`. TLS
 * (tls://, or a server that requires it) and websocket servers are not asked (undefined).
 */
/**
 * How long the check reads, writing nothing, after INFO: a server over its connection limit sends
 * -ERR and closes within this (a FIN, as nothing was written to it: the -ERR is read whole). 150 ms
 * was too short on a loaded CI host (the -ERR came later, the CONNECT written meanwhile drew a RST
 * that dropped it: "timeout" again). Only paid on a first connect that already timed out.
 */
const QUIET_AFTER_INFO_MS = 1000;
/** How long it waits after CONNECT before the PING (an account limit's -ERR comes after CONNECT). */
const STEP_PAUSE_MS = 150;

export async function askServerRefusal(o: {
  readonly url: string;
  readonly name: string;
  readonly user?: string;
  readonly pass?: string;
  readonly authenticator?: Authenticator;
  readonly timeoutMs?: number;
}): Promise<string | undefined> {
  const m = /^nats:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/i.exec(o.url.trim());
  if (!m) return undefined;
  const host = m[3]!.replace(/^\[|\]$/g, '');
  const port = Number(m[4] ?? 4222);
  const urlUser = m[1] ? decodeURIComponent(m[1]) : undefined;
  const urlPass = m[2] ? decodeURIComponent(m[2]) : undefined;
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    let buffered = '';
    let done = false;
    const finish = (v: string | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const t of steps) clearTimeout(t);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(undefined), o.timeoutMs ?? 3000);
    const steps: NodeJS.Timeout[] = [];
    /** Runs `f` after `ms` unless the answer came first. */
    const after = (ms: number, f: () => void) => steps.push(setTimeout(() => done || f(), ms));
    socket.once('error', () => finish(undefined));
    socket.once('close', () => finish(undefined));
    let connected = false;
    socket.on('data', (b: Buffer) => {
      buffered += b.toString('utf8');
      for (;;) {
        const nl = buffered.indexOf('\r\n');
        if (nl < 0) {
          if (buffered.length > 65_536) finish(undefined); // not a NATS server
          return;
        }
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        if (line.startsWith('-ERR'))
          return finish(
            line
              .slice(4)
              .trim()
              .replace(/^'(.*)'$/, '$1'),
          );
        if (line === 'PONG') return finish(undefined);
        if (line.startsWith('INFO ') && !connected) {
          connected = true;
          let info: { nonce?: string; tls_required?: boolean };
          try {
            info = JSON.parse(line.slice(5)) as typeof info;
          } catch {
            return finish(undefined);
          }
          if (info.tls_required) return finish(undefined);
          let auth: Record<string, unknown> = {};
          try {
            auth = {
              ...(o.user !== undefined || urlUser !== undefined
                ? { user: o.user ?? urlUser, pass: o.pass ?? urlPass ?? '' }
                : {}),
              ...((o.authenticator?.(info.nonce) ?? {}) as Record<string, unknown>),
            };
          } catch {
            return finish(undefined);
          }
          const connect = {
            verbose: false,
            pedantic: false,
            protocol: 1,
            lang: 'nats.js',
            version: 'switchboard-refusal-check',
            name: `${o.name} (why refused?)`,
            headers: true,
            no_responders: true,
            ...auth,
          };
          // In steps, each after a pause: a server over its own connection limit sends INFO and
          // then -ERR and closes without reading; bytes we write into that closed socket make its
          // kernel answer RST, and a RST can drop the -ERR still unread here (seen once in CI:
          // "timeout" again). So: CONNECT only once nothing follows INFO for a moment, and the
          // PING only once nothing follows the CONNECT (an account limit's -ERR comes after it).
          const connectLine = `CONNECT ${JSON.stringify(connect)}\r\n`;
          after(QUIET_AFTER_INFO_MS, () => {
            socket.write(connectLine);
            after(STEP_PAUSE_MS, () => socket.write('PING\r\n'));
          });
        }
      }
    });
  });
}

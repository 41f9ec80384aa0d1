import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator } from '@nats-io/transport-node';
import type { BusAuth } from './bus-connection.ts';
import { ackSubject } from './subjects.ts';

/**
 * The authenticator for a BusAuth's files, the one place they are read: a .creds file at every
 * (re)connect (short-lived node credentials are renewed in place: libs/nodecreds), an nkey seed
 * once (given both, the seed is used). Undefined when neither is given.
 *
 * A .creds file that cannot be read or parsed at a reconnect (removed, half-written by hand, a
 * botched secret mount) is not thrown to the client: an authenticator that throws makes it close
 * the connection for good, and the file's repair was never read (probe16 I2). The last file that
 * parsed is used instead (NATS refuses it if it has expired; the next try reads the file again)
 * and `onFileProblem` says what is wrong with the file. Only the first read throws
 * (checkAuthFiles refuses such a file at start).
 */
export function fileAuthenticator(
  a: BusAuth,
  onFileProblem?: (problem: string | undefined) => void,
): Authenticator | undefined {
  if (a.nkeySeedFile) return nkeyAuthenticator(new TextEncoder().encode(readFileSync(a.nkeySeedFile, 'utf8').trim()));
  if (a.credsFile) {
    const file = a.credsFile;
    let lastGood: Uint8Array | undefined;
    return (nonce?: string) => {
      let bytes: Uint8Array | undefined;
      try {
        bytes = readFileSync(file);
        const auth = credsAuthenticator(() => bytes!)(nonce);
        lastGood = bytes;
        onFileProblem?.(undefined);
        return auth;
      } catch (e) {
        if (!lastGood) throw e;
        const err = e as NodeJS.ErrnoException;
        onFileProblem?.(
          `${file}: ${err.code && err.syscall ? err.code : `not a NATS .creds file (${err.message})`}; using the one read before`,
        );
        return credsAuthenticator(() => lastGood!)(nonce);
      }
    };
  }
  return undefined;
}

/**
 * Reads the auth files as a connection does and signs a nonce with them, so a file that is there
 * but malformed is refused before anything starts (bad input: exit 2), in one line naming the file
 * and what is wrong. Before, it failed each connection attempt, and with no server up yet the
 * process waited for ever without saying the file was at fault.
 */
export function checkAuthFiles(a: BusAuth): void {
  const file = a.nkeySeedFile ?? a.credsFile;
  if (!file) return;
  const what = a.nkeySeedFile ? 'an nkey seed (SU...)' : 'a NATS .creds file (JWT and nkey seed)';
  try {
    fileAuthenticator(a)?.('switchboard-start-check');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(`${file}: ${err.code && err.syscall ? err.code : `not ${what} (${err.message})`}`);
  }
}

/**
 * When the credential in a .creds file expires (its JWT's `exp`, seconds since the epoch), or
 * undefined when it never does or the file cannot be read: for the lines that say a refused
 * credential has expired.
 */
export function credsFileExpiry(file: string): number | undefined {
  const exp = credsClaims(file)?.exp;
  return typeof exp === 'number' ? exp : undefined;
}

/**
 * The ACK subjects a .creds file's credential may publish on (`sb.ack.<token>`, wildcards as
 * written), or undefined when it names no publish permissions (may publish anything) or cannot
 * be read. For the applier's start check: a node credential is for one node only.
 */
export function credsAckSubjects(file: string): string[] | undefined {
  const allow = (credsClaims(file)?.nats as { pub?: { allow?: unknown } } | undefined)?.pub?.allow;
  if (!Array.isArray(allow)) return undefined;
  return allow.filter((s): s is string => typeof s === 'string' && (s === '>' || /^sb\.(ack\.|>|\*)/.test(s)));
}

/**
 * Why a .creds file's credential cannot report as `node` (a node credential of another node: it
 * may publish only that node's ACKs), or undefined when it can or says nothing of it (a role
 * credential that may publish anything, a file without permissions).
 */
export function credsNodeMismatch(file: string, node: string): string | undefined {
  const acks = credsAckSubjects(file);
  if (!acks || acks.length === 0) return undefined;
  if (acks.some((s) => s === ackSubject(node) || !s.startsWith('sb.ack.') || s.endsWith('*') || s.endsWith('>')))
    return undefined;
  return `a credential that may report only as ${acks.map((s) => s.slice('sb.ack.'.length).replaceAll('_', '.')).join(', ')}, not as --node ${node}`;
}

function credsClaims(file: string): Record<string, unknown> | undefined {
  try {
    const m = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.-]+)\s*------END NATS USER JWT------/.exec(
      readFileSync(file, 'utf8'),
    );
    const payload = m?.[1]?.split('.')[1];
    if (!payload) return undefined;
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

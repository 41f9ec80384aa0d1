import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator } from '@nats-io/transport-node';
import type { BusAuth } from './bus-connection.ts';

/**
 * The authenticator for a BusAuth's files, the one place they are read: a .creds file at every
 * (re)connect (short-lived node credentials are renewed in place: libs/nodecreds), an nkey seed
 * once (given both, the seed is used). Undefined when neither is given.
 */
export function fileAuthenticator(a: BusAuth): Authenticator | undefined {
  if (a.nkeySeedFile) return nkeyAuthenticator(new TextEncoder().encode(readFileSync(a.nkeySeedFile, 'utf8').trim()));
  if (a.credsFile) {
    const file = a.credsFile;
    return credsAuthenticator(() => readFileSync(file));
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

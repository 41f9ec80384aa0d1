import { existsSync } from 'node:fs';

/**
 * libfaketime (Debian package libfaketime, installed by scripts/install-deps.sh): a child process
 * whose wall clock is shifted while its monotonic clock stays real, which is what a host with a
 * wrong RTC or an unsynced NTP looks like (probe12). Tests that need it skip where it is absent.
 */
export const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/** Why a skewed-clock test cannot run here ('' when it can). */
export const skewedClockMissing = existsSync(FAKETIME_LIB)
  ? ''
  : `${FAKETIME_LIB} is missing (apt-get install libfaketime)`;

/** Environment for a child whose wall clock is off by `offset` (libfaketime syntax: '+1h', '-10m'). */
export function skewedClockEnv(offset: string): Record<string, string> {
  return { LD_PRELOAD: FAKETIME_LIB, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
}

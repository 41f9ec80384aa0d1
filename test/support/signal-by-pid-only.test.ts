import { describe, expect, it } from 'vitest';

describe('test setup: signals go to one process, by PID', () => {
  // Signal 0 only asks whether the target exists: without the setup file, kill(0, 0) succeeds
  // (this group exists) and these expectations fail instead of signalling anything.
  it('refuses 0, negative, 1 and non-integer PIDs', () => {
    for (const pid of [0, -process.pid, 1, Number.NaN, 2.5]) {
      expect(() => process.kill(pid, 0), String(pid)).toThrow(/refused to signal PID/);
    }
  });
  it('still signals a process by its PID', () => {
    expect(process.kill(process.pid, 0)).toBe(true);
  });
});

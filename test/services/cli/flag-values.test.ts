import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../../services/cli/flag-values.ts';
import { sbIn } from './cli-support.ts';

describe('flag values of the long-running commands are checked before they connect', () => {
  it('applier --http notanaddr is a usage error naming the flag (NATS is never tried)', async () => {
    const r = await sbIn(['applier', '--node', 'n1', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run', '--http', 'notanaddr']);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(/^switchboard: --http "notanaddr": not an address \(expected HOST:PORT, e\.g\. 127\.0\.0\.1:9440\)\n$/);
  });

  it('durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseDuration('soon')).toBeUndefined();
  });
});

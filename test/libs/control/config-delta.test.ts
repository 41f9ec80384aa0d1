import { expect, it } from 'vitest';
import { configDelta, formatAssignments, formatFieldChanges, unaskedChanges } from '../../../libs/control/index.ts';

const v1 = { scheduler: 'rr', tcpTimeout: 0, excludeCIDRs: [] as string[] };
const v2 = { ...v1, scheduler: 'wrr' }; // the default now
const v3 = { ...v1, tcpTimeout: 900 }; // made over v1 while v2 rolled out

it('names the fields a revision changes against the default, and those its operator did not ask for (probe11 K1)', () => {
  expect(configDelta(v2, v3)).toEqual([
    { field: 'scheduler', from: 'wrr', to: 'rr' },
    { field: 'tcpTimeout', from: 0, to: 900 },
  ]);
  expect(unaskedChanges(v2, v3, ['tcpTimeout'])).toEqual([{ field: 'scheduler', from: 'wrr', to: 'rr' }]);
  // made over the default in force: nothing unasked
  expect(unaskedChanges(v1, v3, ['tcpTimeout'])).toEqual([]);
  expect(formatFieldChanges(configDelta(v1, { ...v3, excludeCIDRs: ['10.9.0.0/16', '10.8.0.0/16'] }))).toBe(
    'tcpTimeout 0 → 900, excludeCIDRs (none) → 10.9.0.0/16,10.8.0.0/16',
  );
  expect(formatAssignments({ tcpTimeout: 900, excludeCIDRs: ['10.9.0.0/16', '10.8.0.0/16'] })).toBe(
    'tcpTimeout=900 excludeCIDRs=10.9.0.0/16,10.8.0.0/16',
  );
});

import { DEFAULT_WAVE_POLICY } from '../../../../libs/control/index.ts';

/** A rollout to nodes a and b in one wave of 100%, the default policy, no node held back. */
export const oneWaveRollout = {
  waves: [{ kind: 'percent' as const, p: 100 }],
  nodes: ['a', 'b'],
  notCanary: new Map<string, string>(),
  pauseOnError: false,
  policy: DEFAULT_WAVE_POLICY,
};

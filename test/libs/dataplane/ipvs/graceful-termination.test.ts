import { describe, expect, it } from 'vitest';
import { decideRemoval } from '../../../../libs/dataplane/ipvs/graceful-termination.ts';

const rs = (weight: number, active: number, inactive: number) => ({
  address: '10.1.0.1',
  port: 80,
  weight,
  activeConns: active,
  inactiveConns: inactive,
});

describe('decideRemoval', () => {
  it('lowers a TCP real server with connections to weight 0 and starts the clock', () => {
    expect(
      decideRemoval({
        protocol: 'TCP',
        observed: rs(1, 2, 0),
        drainingSince: undefined,
        now: 1000,
        drainTimeoutMs: 500,
      }),
    ).toEqual({ action: 'set-weight-zero', since: 1000 });
  });
  it('waits while connections remain and the deadline has not passed', () => {
    expect(
      decideRemoval({ protocol: 'TCP', observed: rs(0, 0, 3), drainingSince: 1000, now: 1499, drainTimeoutMs: 500 }),
    ).toEqual({ action: 'wait', since: 1000 });
  });
  it('deletes when connections reach 0', () => {
    expect(
      decideRemoval({ protocol: 'TCP', observed: rs(0, 0, 0), drainingSince: 1000, now: 1001, drainTimeoutMs: 500 }),
    ).toEqual({ action: 'delete' });
  });
  it('deletes at the deadline even with connections', () => {
    expect(
      decideRemoval({ protocol: 'TCP', observed: rs(0, 5, 5), drainingSince: 1000, now: 1500, drainTimeoutMs: 500 }),
    ).toEqual({ action: 'delete' });
  });
  it('re-lowers a draining server whose weight was raised behind our back', () => {
    expect(
      decideRemoval({ protocol: 'TCP', observed: rs(3, 1, 0), drainingSince: 1000, now: 1100, drainTimeoutMs: 500 }),
    ).toEqual({ action: 'set-weight-zero', since: 1000 });
  });
  it('counts counters it was not given (countersUnknown, the model of a large service) as connections: drains, and deletes only at the deadline', () => {
    const unknown = { ...rs(1, 0, 0), countersUnknown: true as const };
    const at = (now: number, observed: typeof unknown, drainingSince?: number) =>
      decideRemoval({ protocol: 'TCP', observed, drainingSince, now, drainTimeoutMs: 500 });
    expect(at(1000, unknown)).toEqual({ action: 'set-weight-zero', since: 1000 });
    expect(at(1400, { ...unknown, weight: 0 }, 1000)).toEqual({ action: 'wait', since: 1000 });
    expect(at(1500, { ...unknown, weight: 0 }, 1000)).toEqual({ action: 'delete' });
    expect(
      decideRemoval({ protocol: 'UDP', observed: unknown, drainingSince: undefined, now: 0, drainTimeoutMs: 1e9 }),
    ).toEqual({
      action: 'delete-and-flush-conntrack',
    });
  });
  it('deletes UDP and SCTP at once and flushes conntrack', () => {
    for (const protocol of ['UDP', 'SCTP'] as const) {
      expect(
        decideRemoval({ protocol, observed: rs(1, 4, 4), drainingSince: undefined, now: 0, drainTimeoutMs: 1e9 }),
      ).toEqual({ action: 'delete-and-flush-conntrack' });
    }
  });
});

import type { BusWorld } from './bus-harness.ts';

type Received = BusWorld['received']['all'][number];

export const ackForHelper = (n: string, version: number) => (e: Received) =>
  e.kind === 'ack' && e.v.node === n && e.v.version === version;

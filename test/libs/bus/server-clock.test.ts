import { expect, it } from 'vitest';
import { ServerClock } from '../../../libs/bus/index.ts';

// probe12 L1–L3: the planner's time is the NATS server's where its own clock is off by more than the bound.
it('a planner clock within the bound is used as is; beyond it, the server time measured from a write', () => {
  let wall = 1_000_000_000_000;
  const c = new ServerClock(30_000, () => wall);
  expect(c.offsetMs()).toBeUndefined();
  expect(c.now().getTime()).toBe(wall); // nothing measured yet: its own clock
  c.sample(wall, wall + 10_000 + 5, wall + 10); // server 10 s ahead, round trip 10 ms
  expect(c.offsetMs()).toBe(10_000);
  expect(c.correctionMs()).toBe(0);
  expect(c.describe()).toBeUndefined();
  c.sample(wall, wall - 3_600_000 + 5, wall + 10); // this clock an hour ahead of the server's
  expect(c.now().getTime()).toBe(wall - 3_600_000);
  expect(c.describe()).toMatch(/3600 s ahead of the NATS server's/);
  wall += 60_000; // it keeps the offset as its own clock moves on
  expect(c.now().getTime()).toBe(wall - 3_600_000);
  c.sample(wall, wall + 999_999, wall + 5000); // a 5 s round trip says too little: ignored
  expect(c.offsetMs()).toBe(-3_600_000);
  c.sample(wall, wall + 5, wall + 10); // NTP fixed this clock: its own again
  expect(c.correctionMs()).toBe(0);
  expect(c.now().getTime()).toBe(wall);
});

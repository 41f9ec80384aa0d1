// Child process for the retention crash test: runs the planner's online retention on FILE (keep
// the newest KEEP versions, SLICE rows a transaction, fsync on every commit as the planner does),
// steps back to back, and prints "removed <table> <n>" after each step that removed rows, then
// "done". The parent SIGKILLs it part way, then starts it again on the same file. With STALL_MS,
// it also waits that long (blocking, the step committed) after each step that removed version
// rows, so a kill on such a line lands between two steps of that phase, never after the run.
import { EventLog, OnlineRetention } from '../../../../libs/eventlog/index.ts';

const [file, keep, slice, stallMs] = process.argv.slice(2);
const stall = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const log = await EventLog.open({ file: file!, writer: 'retention crash child' });
const r = new OnlineRetention({
  log,
  policy: { versions: Number(keep) },
  bounds: () => ({ floors: [] }),
  sliceRows: Number(slice),
  onRemoved: (table, n) => {
    process.stdout.write(`removed ${table} ${n}\n`);
    if (table === 'versions' && stallMs) stall(Number(stallMs));
  },
});
await r.runOnce();
const error = r.status().error;
process.stdout.write(error ? `error ${error}\n` : 'done\n');
log.close();

// A lean reader of dumped nf_tables rules for read-back digests: walks the attributes in place
// and keeps only what a digest needs (verdict targets, verdict-map lookups, DNAT destinations),
// without building an object per attribute. A 10k-service table dumps ~200k rules; this is
// where a no-op resync spends its time.

import { bytesToIp } from './ip-address.ts';

export interface RuleDigestParts {
  readonly chain: string;
  /** `->chain` for jump/goto verdicts, `=>addr:port` / `=>[addr6]:port` / `=>@map` for DNAT. */
  readonly tokens: string[];
  /** Anonymous verdict maps the rule looks up (their elements add `->chain` tokens). */
  readonly verdictMaps: string[];
}

const NLA_TYPE_MASK = 0x3fff;

/** Calls `fn(type, start, end)` for each attribute in buf[from, to). */
function eachAttr(buf: Buffer, from: number, to: number, fn: (type: number, start: number, end: number) => void): void {
  let off = from;
  while (off + 4 <= to) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > to) throw new Error(`malformed netlink attribute at offset ${off}`);
    fn(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, off + 4, off + len);
    off += (len + 3) & ~3;
  }
}

const str = (buf: Buffer, s: number, e: number): string => {
  let end = e;
  while (end > s && buf[end - 1] === 0) end--;
  return buf.toString('utf8', s, end);
};

const VERDICT_JUMP = -3;
const VERDICT_GOTO = -4;

/** Scans one NEWRULE dump message (payload after the netlink header). */
export function scanRule(payload: Buffer): RuleDigestParts {
  let chain = '';
  const tokens: string[] = [];
  const verdictMaps: string[] = [];
  eachAttr(payload, 4, payload.length, (type, s, e) => {
    if (type === 2) chain = str(payload, s, e);
    if (type !== 4) return;
    const regs = new Map<number, Buffer>();
    // Registers loaded by a lookup in a named data map (a DNAT through an endpoint map).
    const mapped = new Map<number, string>();
    eachAttr(payload, s, e, (_t, es, ee) => {
      let name = '';
      let ds = -1;
      let de = -1;
      eachAttr(payload, es, ee, (t, a, b) => {
        if (t === 1) name = str(payload, a, b);
        else if (t === 2) {
          ds = a;
          de = b;
        }
      });
      if (ds < 0) return;
      if (name === 'immediate') {
        let dreg = -1;
        eachAttr(payload, ds, de, (t, a, b) => {
          if (t === 1) dreg = payload.readUInt32BE(a);
          else if (t === 2) {
            eachAttr(payload, a, b, (dt, da, db) => {
              if (dt === 1) regs.set(dreg, payload.subarray(da, db));
              else if (dt === 2) {
                let code = 0;
                let target = '';
                eachAttr(payload, da, db, (vt, va, vb) => {
                  if (vt === 1) code = payload.readInt32BE(va);
                  else if (vt === 2) target = str(payload, va, vb);
                });
                if ((code === VERDICT_JUMP || code === VERDICT_GOTO) && target) tokens.push(`->${target}`);
              }
            });
          }
        });
      } else if (name === 'lookup') {
        let set = '';
        let dreg = -1;
        eachAttr(payload, ds, de, (t, a, b) => {
          if (t === 1) set = str(payload, a, b);
          else if (t === 3) dreg = payload.readUInt32BE(a);
        });
        if (dreg === 0 && set.startsWith('__map')) verdictMaps.push(set);
        else if (dreg > 0 && !set.startsWith('__')) mapped.set(dreg, set);
      } else if (name === 'nat') {
        let ra = -1;
        let rp = -1;
        eachAttr(payload, ds, de, (t, a) => {
          if (t === 3) ra = payload.readUInt32BE(a);
          else if (t === 5) rp = payload.readUInt32BE(a);
        });
        const addr = regs.get(ra);
        const port = regs.get(rp);
        const map = mapped.get(ra);
        if (map !== undefined) tokens.push(`=>@${map}`);
        else if (addr && port && (addr.length === 4 || addr.length === 16)) {
          const ip = bytesToIp(addr, addr.length === 4 ? 'inet' : 'inet6');
          tokens.push(`=>${addr.length === 16 ? `[${ip}]` : ip}:${port.readUInt16BE(0)}`);
        }
      }
    });
  });
  return { chain, tokens, verdictMaps };
}

/**
 * Lines said at most once per `everyMs` for each key, so something a client or node may repeat as
 * often as it likes (an invalid report, a refused or denied request) is said without flooding
 * stderr: the first at once, later ones only when `everyMs` passed since the key's last line, each
 * told how many notes went unsaid since that line. Pure: the caller passes the time and says the line.
 */
export class RareLines {
  private readonly said = new Map<string, { at: number; unsaid: number }>();

  constructor(private readonly everyMs = 60_000) {}

  /**
   * The line to say now for `key`, made by `line` from the number of notes of this key not said
   * since its last line; undefined while that line is less than `everyMs` old.
   */
  note(key: string, now: number, line: (unsaid: number) => string): string | undefined {
    const s = this.said.get(key);
    if (s && now - s.at < this.everyMs) {
      s.unsaid++;
      return undefined;
    }
    this.said.set(key, { at: now, unsaid: 0 });
    return line(s?.unsaid ?? 0);
  }

  /** Forgets the keys starting with `prefix` (keys naming things that churn must not pile up). */
  forget(prefix: string): void {
    for (const k of this.said.keys()) if (k.startsWith(prefix)) this.said.delete(k);
  }
}

/**
 * How the demo talks: numbered steps, what each one waits for and for how long, results, and
 * failures that name the log to read. Escape codes only when stdout is a terminal.
 */
export class Narrator {
  private readonly color: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    this.color = !!out.isTTY && process.env.NO_COLOR === undefined;
  }

  private paint(code: string, s: string): string {
    return this.color ? `\x1b[${code}m${s}\x1b[0m` : s;
  }

  step(title: string): void {
    this.out.write(`\n${this.paint('1', `== ${title}`)}\n`);
  }

  say(text: string): void {
    this.out.write(`   ${text}\n`);
  }

  waiting(what: string, seconds: number): void {
    this.out.write(`   ${this.paint('2', `… waiting up to ${seconds} s for ${what}`)}\n`);
  }

  ok(text: string): void {
    this.out.write(`   ${this.paint('32', '✓')} ${text}\n`);
  }

  /** Output of a command the demo ran, indented, prefixed by the command line. */
  command(line: string, output: string): void {
    this.out.write(`   ${this.paint('36', `$ ${line}`)}\n`);
    for (const l of output.replace(/\n$/, '').split('\n')) this.out.write(`     ${l}\n`);
  }

  /** Result lines that checks read (`pod NAME: N requests`): printed bare, never decorated. */
  plain(line: string): void {
    this.out.write(`${line}\n`);
  }

  fail(text: string): void {
    process.stderr.write(`${this.paint('31', 'demo: FAILED:')} ${text}\n`);
  }
}

/** A demo step that did not happen; the message says what was awaited and where to look. */
export class DemoError extends Error {}

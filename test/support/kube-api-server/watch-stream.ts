// One open watch response: queues newline-delimited JSON watch events and writes them in
// order, honouring socket backpressure and an optional per-event delay (slowStream).

import type { ServerResponse } from 'node:http';

export interface WatchStreamOptions {
  res: ServerResponse;
  /** Delay before each write, read on every write so slowStream() applies to open watches. */
  delayMs: () => number;
  onClose: () => void;
}

export class WatchStream {
  private readonly queue: string[] = [];
  private pumping = false;
  private closed = false;
  private endAfterQueue = false;
  private silent = false;

  constructor(private readonly options: WatchStreamOptions) {
    options.res.on('close', () => this.close());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * From now on this stream delivers nothing, neither events nor bookmarks nor its end, but the
   * connection stays open: what a client sees of a half-open connection (a partition, a proxy
   * keeping the client side). Only the client closing it ends it.
   */
  silence(): void {
    this.silent = true;
    this.queue.length = 0;
  }

  send(event: { type: string; object: unknown }): void {
    if (this.closed || this.endAfterQueue || this.silent) return;
    this.queue.push(`${JSON.stringify(event)}\n`);
    void this.pump();
  }

  /** Ends the response cleanly once everything queued so far is written. */
  end(): void {
    if (this.closed || this.silent) return;
    this.endAfterQueue = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const delay = this.options.delayMs();
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        if (this.closed) return;
        const line = this.queue.shift()!;
        if (!this.options.res.write(line)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              this.options.res.off('drain', done);
              this.options.res.off('close', done);
              resolve();
            };
            this.options.res.on('drain', done);
            this.options.res.on('close', done);
          });
        }
      }
      if (!this.closed && this.endAfterQueue) {
        this.options.res.end();
        this.close();
      }
    } finally {
      this.pumping = false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.options.onClose();
  }
}

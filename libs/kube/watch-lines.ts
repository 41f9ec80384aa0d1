// The watch stream's framing: one JSON document per line. Bytes arrive in arbitrary chunks, so
// decoding is streaming (a multi-byte UTF-8 character may be split between two chunks) and
// splitting happens on the decoded text.

/** Yields each non-empty line of `chunks` parsed as JSON; throws on a line that is not JSON or a cut last line. */
export async function* jsonLines(chunks: AsyncIterable<Uint8Array | string>, context: string): AsyncGenerator<unknown> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  // Async iteration pauses the source between reads: that is the backpressure the informer wants.
  for await (const chunk of chunks) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let start = 0;
    let nl: number;
    while ((nl = buffer.indexOf('\n', start)) >= 0) {
      const line = buffer.slice(start, nl).trim();
      start = nl + 1;
      if (line === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        throw new Error(`${context}: watch stream sent a line that is not JSON: ${line.slice(0, 200)}`);
      }
      yield value;
    }
    buffer = buffer.slice(start);
  }
  buffer += decoder.decode();
  if (buffer.trim() !== '') throw new Error(`${context}: watch stream ended inside a line`);
}

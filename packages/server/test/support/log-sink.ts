/** A pino destination that keeps every log line a test's node or gateway writes. */
import { Writable } from 'node:stream';

/** The lines written so far (raw JSON text, one per line) and the stream to give as `logDestination`. */
export function logSink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

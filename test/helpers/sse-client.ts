// A Server-Sent Events reader for tests and the bench: GETs a URL and hands each event (name,
// id, data) to a callback as it arrives, without keeping the stream.
import { request } from 'node:http';

export interface SseEvent { event: string; id: string | undefined; data: string }

export interface SseReader {
  /** resolves when the server ends the stream, with the status it answered */
  done: Promise<number>;
  close(): void;
}

export function readSse(url: string, onEvent: (ev: SseEvent) => void, headers: Record<string, string> = {}): SseReader {
  let close = (): void => {};
  const done = new Promise<number>((resolve, reject) => {
    const req = request(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let end = buf.indexOf('\n\n');
        while (end >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          end = buf.indexOf('\n\n');
          const ev: SseEvent = { event: 'message', id: undefined, data: '' };
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') ev.event = value;
            else if (field === 'id') ev.id = value;
            else if (field === 'data') data.push(value);
          }
          if (data.length === 0 && ev.id === undefined && ev.event === 'message') continue;
          ev.data = data.join('\n');
          onEvent(ev);
        }
      });
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
    close = () => req.destroy();
  });
  return { done: done.catch(() => 0), close: () => close() };
}

// Checks a decoded CBOR value into a typed Message, with the specs of messages.ts. Every rule
// says what was expected and what came, so a peer speaking a different dialect gets a message
// it can act on.
import { quoted } from '../common/log.js';
import { messages, requests, type Message } from './messages.js';
import { ProtocolError, check, fail, isMap } from './schema.js';

export { ProtocolError };

const byType = new Map<string, (v: unknown) => Message>(Object.entries(messages));
const byOp = new Map<string, (v: unknown) => Message>(Object.entries(requests));
const OPS = `one of ${[...byOp.keys()].join('|')}`;

export function parseMessage(value: unknown): Message {
  if (!isMap(value)) return check(() => fail('a map', value), value, 'message');
  const t = value.t;
  if (typeof t !== 'string') return check(() => fail('a string', t), t, 'message.t');
  if (t === 'req') {
    const op = value.op;
    const spec = typeof op === 'string' ? byOp.get(op) : undefined;
    if (!spec) return check(() => fail(OPS, op), op, 'request.op');
    return check(spec, value, `request ${op}`);
  }
  const spec = byType.get(t);
  if (!spec) throw new ProtocolError(`message.t: unknown message type ${quoted(t)}`);
  return check(spec, value, t);
}

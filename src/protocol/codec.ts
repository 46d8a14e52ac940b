// CBOR with plain maps and byte strings only: no record extension, so that any CBOR
// implementation can speak to us, and so that decoded values are plain objects we validate.
import { Encoder } from 'cbor-x';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

export function encodeValue(value: unknown): Buffer {
  return cbor.encode(value) as Buffer;
}

export function decodeValue(bytes: Uint8Array): unknown {
  return cbor.decode(bytes);
}

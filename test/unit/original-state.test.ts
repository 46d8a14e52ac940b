// The original's state file decodes to exactly what the original itself read from it (the JSON
// beside each vector in test/fixtures/original-state/), and bad bytes are refused with where.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TAG, tlv } from '../../src/builder-web/der.js';
import { decodeOriginalState, type OriginalItem, type OriginalJob } from '../../src/server/import-original/state-file.js';
import { repoRoot } from '../helpers/processes.js';

const dir = join(repoRoot, 'test', 'fixtures', 'original-state');

const jobJson = (j: OriginalJob) => (j.kind === 'script'
  ? { kind: 'script', name: j.name, platform: j.platform, script: j.script }
  : { kind: 'orb-build', name: j.name, opam_package: j.opamPackage });

function itemJson(i: OriginalItem): unknown {
  switch (i.kind) {
    case 'dropped': return { dropped_platform: i.platform };
    case 'schedule': return { schedule: { next: i.next.toISOString(), period: i.period, job: jobJson(i.job) } };
    case 'queue': return { queue: { platform: i.platform, jobs: i.jobs.map(jobJson) } };
    case 'ignored': return { ignored: i.what };
  }
}

for (const name of ['basic', 'after-run']) {
  test(`${name}.state decodes to what the original read from it`, () => {
    const items = decodeOriginalState(readFileSync(join(dir, `${name}.state`)));
    assert.equal(items.map(itemJson), JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')));
  });
}

const utf8 = (s: string) => tlv(TAG.UTF8String, Buffer.from(s));
const scriptJob = (name: string) => tlv(TAG.SEQUENCE, utf8(name), utf8('true\n'), tlv(TAG.SEQUENCE), utf8('p'));

test('legacy items: [0] and [2] are ignored as by the original, [1] is a schedule entry read from a UTCTime', () => {
  const old = tlv(TAG.explicit(1), tlv(TAG.SEQUENCE, tlv(TAG.UTCTime, Buffer.from('260102030405Z')),
    tlv(TAG.explicit(1), tlv(TAG.NULL)), scriptJob('old')));
  const state = tlv(TAG.SEQUENCE, tlv(TAG.explicit(0), scriptJob('gone')), old, tlv(TAG.explicit(2), tlv(TAG.explicit(0), scriptJob('gone2'))));
  const items = decodeOriginalState(state).map(itemJson);
  assert.equal(items, [
    { ignored: 'item 0: a legacy script job ([0]), which the original ignores too' },
    { schedule: { next: '2026-01-02T03:04:05.000Z', period: 'daily', job: { kind: 'script', name: 'old', platform: 'p', script: 'true\n' } } },
    { ignored: 'item 2: a legacy job ([2]), which the original ignores too' },
  ]);
});

test('a script job without platform is the original\'s "no-platform"', () => {
  const state = tlv(TAG.SEQUENCE, tlv(TAG.explicit(4), tlv(TAG.SEQUENCE, utf8('q'),
    tlv(TAG.SEQUENCE, tlv(TAG.explicit(0), tlv(TAG.SEQUENCE, utf8('j'), utf8('s'), tlv(TAG.SEQUENCE)))))));
  assert.equal(decodeOriginalState(state).map(itemJson), [{ queue: { platform: 'q', jobs: [{ kind: 'script', name: 'j', platform: 'no-platform', script: 's' }] } }]);
});

test('trailing bytes, an unknown item and a truncated file are refused with the byte offset', () => {
  const good = readFileSync(join(dir, 'basic.state'));
  assert.throws(() => decodeOriginalState(Buffer.concat([good, Buffer.from([0])])), /expected the end of the state file.*at byte 887/);
  assert.throws(() => decodeOriginalState(tlv(TAG.SEQUENCE, tlv(TAG.explicit(6), tlv(TAG.NULL)))), /expected item 0 as \[0\]\.\.\[5\] EXPLICIT, got \[6\] EXPLICIT.*at byte 2/);
  assert.throws(() => decodeOriginalState(good.subarray(0, 100)), /claims \d+ bytes but only 96 remain \(at byte 0\)/);
});

test.run();

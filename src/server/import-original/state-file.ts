// The original builder's `state` file: one DER value, SEQUENCE OF item, holding its schedule,
// its queues and its dropped platforms (layout and vectors: test/fixtures/original-state/README.md).
// Decoded with the strict DER reader of the builder-web format: minimal lengths, nothing left over.
//
//   item ::= [0] script_job (legacy, ignored) | [1] old_schedule | [2] job (legacy, ignored)
//          | [3] schedule | [4] SEQUENCE { platform, SEQUENCE OF job } | [5] dropped platform
//   schedule ::= SEQUENCE { next Time, period [0..3] EXPLICIT NULL, job }
//   job ::= [0] script_job | [1] SEQUENCE { name, opam_package }
//   script_job ::= SEQUENCE { name, script, files SEQUENCE OF {path, data}, platform OPTIONAL }
import { BuilderWebFormatError, DerReader, TAG, tagName } from '../../builder-web/der.js';
import { NO_PLATFORM, parseTime } from '../../builder-web/format.js';
import type { Period } from '../../protocol/messages.js';

export type OriginalJob =
  | { kind: 'script'; name: string; script: string; platform: string }
  | { kind: 'orb-build'; name: string; opamPackage: string };

export type OriginalItem =
  | { kind: 'schedule'; next: Date; period: Period; job: OriginalJob; legacy: boolean }
  | { kind: 'queue'; platform: string; jobs: OriginalJob[] }
  | { kind: 'dropped'; platform: string }
  /** what the original itself drops with a warning on reading */
  | { kind: 'ignored'; what: string };

const PERIOD_TAGS: readonly Period[] = ['hourly', 'daily', 'weekly', 'never'];

/** A UTF8String's text; the original never checks, so invalid UTF-8 is refused here by name. */
function text(r: DerReader, what: string): string {
  const el = r.expect(TAG.UTF8String, what);
  const bytes = r.bytes(el);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BuilderWebFormatError(`expected ${what} as UTF-8 text, got invalid UTF-8`, el.start);
  }
}

function scriptJob(r: DerReader, what: string): OriginalJob & { kind: 'script' } {
  const seq = r.enter(r.expect(TAG.SEQUENCE, `${what} SEQUENCE`));
  const name = text(seq, `${what} name`);
  const script = text(seq, `the script of ${name}`);
  const files = seq.enter(seq.expect(TAG.SEQUENCE, `the files of ${name}`));
  if (!files.atEnd()) throw new BuilderWebFormatError(`expected no files in job ${name} (the original never wrote any), got some`, files.offset);
  const platform = seq.atEnd() ? NO_PLATFORM : text(seq, `the platform of ${name}`);
  seq.expectEnd(`job ${name}`);
  return { kind: 'script', name, script, platform };
}

function job(r: DerReader, what: string): OriginalJob {
  const el = r.next(what);
  const inner = r.enter(el);
  let j: OriginalJob;
  if (el.tag === TAG.explicit(0)) j = scriptJob(inner, what);
  else if (el.tag === TAG.explicit(1)) {
    const seq = inner.enter(inner.expect(TAG.SEQUENCE, `${what} (orb-build) SEQUENCE`));
    const name = text(seq, `${what} name`);
    j = { kind: 'orb-build', name, opamPackage: text(seq, `the opam package of ${name}`) };
    seq.expectEnd(`orb-build job ${name}`);
  } else throw new BuilderWebFormatError(`expected ${what} as [0] (script) or [1] (orb-build), got ${tagName(el.tag)}`, el.at);
  inner.expectEnd(what);
  return j;
}

function time(r: DerReader, what: string): Date {
  const tag = r.peekTag();
  const el = tag === TAG.UTCTime ? r.next(what) : r.expect(TAG.GeneralizedTime, `${what} (GeneralizedTime or UTCTime)`);
  const raw = r.bytes(el).toString('latin1');
  const d = parseTime(raw, el.tag === TAG.UTCTime);
  if (d === undefined) throw new BuilderWebFormatError(`expected ${what} as a valid time, got ${JSON.stringify(raw)}`, el.start);
  return d;
}

function period(r: DerReader, what: string): Period {
  const el = r.next(what);
  const p = (el.tag & 0xe0) === 0xa0 ? PERIOD_TAGS[el.tag & 0x1f] : undefined;
  if (p === undefined) throw new BuilderWebFormatError(`expected ${what} as [0]..[3] EXPLICIT NULL, got ${tagName(el.tag)}`, el.at);
  const inner = r.enter(el);
  const nul = inner.expect(TAG.NULL, `${what} NULL`);
  if (nul.end !== nul.start) throw new BuilderWebFormatError(`expected ${what} NULL to be empty`, nul.at);
  inner.expectEnd(what);
  return p;
}

function schedule(r: DerReader, n: number, legacy: boolean): OriginalItem {
  const seq = r.enter(r.expect(TAG.SEQUENCE, `item ${n}: schedule SEQUENCE`));
  const next = time(seq, `item ${n}: next run`);
  const p = period(seq, `item ${n}: period`);
  const j = legacy ? scriptJob(seq, `item ${n}: job`) : job(seq, `item ${n}: job`);
  seq.expectEnd(`item ${n}: schedule`);
  return { kind: 'schedule', next, period: p, job: j, legacy };
}

/** Decodes a whole state file; throws BuilderWebFormatError (with the byte offset) on bad bytes. */
export function decodeOriginalState(bytes: Uint8Array): OriginalItem[] {
  const top = DerReader.of(bytes);
  const all = top.expect(TAG.SEQUENCE, 'the state SEQUENCE OF item');
  top.expectEnd('the state file');
  const r = top.enter(all);
  const items: OriginalItem[] = [];
  for (let n = 0; !r.atEnd(); n++) {
    const el = r.next(`item ${n}`);
    const inner = r.enter(el);
    switch (el.tag) {
      case TAG.explicit(0):
        items.push({ kind: 'ignored', what: `item ${n}: a legacy script job ([0]), which the original ignores too` });
        break;
      case TAG.explicit(2):
        items.push({ kind: 'ignored', what: `item ${n}: a legacy job ([2]), which the original ignores too` });
        break;
      case TAG.explicit(1):
        items.push(schedule(inner, n, true));
        break;
      case TAG.explicit(3):
        items.push(schedule(inner, n, false));
        break;
      case TAG.explicit(4): {
        const seq = inner.enter(inner.expect(TAG.SEQUENCE, `item ${n}: queue SEQUENCE`));
        const platform = text(seq, `item ${n}: queue platform`);
        const list = seq.enter(seq.expect(TAG.SEQUENCE, `item ${n}: the jobs of queue ${platform}`));
        const jobs: OriginalJob[] = [];
        while (!list.atEnd()) jobs.push(job(list, `item ${n}: entry ${jobs.length} of queue ${platform}`));
        seq.expectEnd(`item ${n}: queue ${platform}`);
        items.push({ kind: 'queue', platform, jobs });
        break;
      }
      case TAG.explicit(5):
        items.push({ kind: 'dropped', platform: text(inner, `item ${n}: dropped platform`) });
        break;
      default:
        throw new BuilderWebFormatError(`expected item ${n} as [0]..[5] EXPLICIT, got ${tagName(el.tag)}`, el.at);
    }
    // legacy items are skipped whole, like the original; the others must have been read exactly
    if (el.tag !== TAG.explicit(0) && el.tag !== TAG.explicit(2)) inner.expectEnd(`item ${n}`);
  }
  return items;
}

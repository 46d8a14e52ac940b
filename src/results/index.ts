// The stored result format, owned here: the server writes it, the uploader and builder-inspect
// read it. A result lives in DIR/results/<job>/<uuid>/:
//   console        one line per output line: milliseconds since the start, a space, the raw bytes
//   script         the script the run executed
//   run.json       RunMeta: times, worker, result, stats, refusals, artifacts with size and sha256
//   artifacts/PATH the artifacts, each checked against its size and sha256 on arrival
//   provenance.json the server's signed statement of how the artifacts were made (a DSSE
//                  envelope around an in-toto Statement with a SLSA Provenance v1 predicate);
//                  absent when the server runs with --no-provenance
//
// The contract: a result directory is either complete or absent. Artifacts stream into
// DIR/incoming/<uuid>/artifacts/ while the run goes on; when the run ends, console, script and
// run.json are written beside them and DIR/incoming/<uuid> is renamed to results/<job>/<uuid>
// in one step (same file system, so rename is atomic). A reader that finds run.json therefore
// finds everything it lists; anything left under incoming/ after a crash is a run that never
// finished and is never read.
export type { ArtifactRow, ConsoleRow, RunMeta } from './types.js';
export { consoleFileLine, incomingDir, PROVENANCE_FILE, resultDir, writeResult, type ResultExtras } from './write.js';
export { parseConsole, readConsole, readMeta } from './read.js';
export { artifactFile, consoleLines } from './stream.js';

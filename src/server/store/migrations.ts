// The schema, as numbered steps. PRAGMA user_version records how far a database has come;
// each step runs in its own transaction, so a crash mid-upgrade leaves the previous version.
// migration 10's pieces, each used by its back-fill and by its triggers
const KIND = "COALESCE(json_extract(result, '$.kind'), 'unknown')";
const SUCCESS = "COALESCE(json_extract(result, '$.kind') = 'exited' AND json_extract(result, '$.code') = 0, 0)";
const le = (ms: string): string => `CASE ${[1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400]
  .map((s) => `WHEN ${ms} <= ${s * 1000} THEN '${s}'`).join(' ')} ELSE '+Inf' END`;
const countFinished = `
    INSERT INTO total_finished (platform, kind, success, n)
      VALUES (NEW.platform, ${KIND.replace(/result/g, 'NEW.result')}, ${SUCCESS.replace(/result/g, 'NEW.result')}, 1)
      ON CONFLICT (platform, kind, success) DO UPDATE SET n = n + 1;
    INSERT INTO total_durations (platform, le, n, ms)
      VALUES (NEW.platform, ${le('MAX(0, NEW.finished - NEW.started)')}, 1, MAX(0, NEW.finished - NEW.started))
      ON CONFLICT (platform, le) DO UPDATE SET n = n + 1, ms = ms + excluded.ms;`;

export const migrations: readonly string[] = [
  // 1: schedule, platforms, queues, runs, console, artifacts
  `
  CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('script', 'orb')),
    platform TEXT,
    script TEXT,
    package TEXT,
    period TEXT,
    cron TEXT,
    tz TEXT,
    timeout_sec INTEGER NOT NULL,
    next_run INTEGER,
    created INTEGER NOT NULL
  );
  CREATE TABLE platforms (
    name TEXT PRIMARY KEY,
    dropped INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE queue (
    platform TEXT NOT NULL,
    job TEXT NOT NULL,
    pos INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    not_before INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (platform, job)
  );
  CREATE INDEX queue_order ON queue (platform, pos);
  CREATE TABLE runs (
    uuid TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    platform TEXT NOT NULL,
    worker TEXT NOT NULL,
    script TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    timeout_sec INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'finished')),
    started INTEGER NOT NULL,
    finished INTEGER,
    result TEXT,
    stats TEXT,
    refusals TEXT,
    dir TEXT
  );
  CREATE INDEX runs_state ON runs (state, started);
  CREATE INDEX runs_job ON runs (job, finished);
  CREATE TABLE console (
    uuid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ms INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (uuid, seq)
  ) WITHOUT ROWID;
  CREATE TABLE artifacts (
    uuid TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (uuid, path)
  );
  `,
  // 2: the upload outbox to builder-web: one row per finished run to send, with its retry state.
  // upload_settings keeps since when uploads are on, so runs finished while the server was down
  // between "result stored" and "row queued" are found again at start.
  `
  CREATE TABLE uploads (
    uuid TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    dir TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'uploaded', 'refused', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER,
    last_error TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
  );
  CREATE INDEX uploads_due ON uploads (state, next_attempt);
  CREATE TABLE upload_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 3: indexes for the scheduler's "what is due" and the dispatcher's "when does a retry wake",
  // which otherwise scan every job and every queue entry on each schedule change
  `
  CREATE INDEX jobs_next_run ON jobs (next_run);
  CREATE INDEX queue_not_before ON queue (not_before);
  `,
  // 4: the outbox row is now written in the transaction that stores the finished run, so there
  // is no crash window to find again at start and no need to remember since when uploads are on
  `
  DROP TABLE upload_settings;
  `,
  // 5: each job's SOURCE_DATE_EPOCH (Unix seconds), stable across its runs; jobs from before it
  // get their creation time, which is what a new job gets by default
  `
  ALTER TABLE jobs ADD COLUMN source_date_epoch INTEGER;
  UPDATE jobs SET source_date_epoch = created / 1000;
  `,
  // 6: reproducibility tracking. comparisons: each successful run against the previous
  // successful run of its job on its platform (artifact sets by sha256), with the path of the
  // diff report once written. job_state: per job and platform, the last outcome and verdict, so
  // a change of state (stops reproducing, starts failing, ...) is noticed with one lookup and
  // info reads every job's latest verdict in one statement. queue.avoid_worker: verify's
  // rebuild prefers another worker than the last run's.
  `
  CREATE TABLE comparisons (
    uuid TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    platform TEXT NOT NULL,
    against_uuid TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('reproduced', 'differs')),
    changed TEXT NOT NULL,
    added TEXT NOT NULL,
    removed TEXT NOT NULL,
    report TEXT,
    created INTEGER NOT NULL
  );
  CREATE INDEX comparisons_latest ON comparisons (job, platform, created);
  CREATE TABLE job_state (
    job TEXT NOT NULL,
    platform TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failing')),
    verdict TEXT CHECK (verdict IN ('reproduced', 'differs')),
    uuid TEXT NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (job, platform)
  );
  ALTER TABLE queue ADD COLUMN avoid_worker TEXT;
  `,
  // 7: the per-run secret handed to the worker with the job: a worker re-attaches a run only
  // with its name and this secret, so no other worker can take a run over by its uuid (which
  // info shows to every client). Runs from before it have none and go by the name alone.
  `
  ALTER TABLE runs ADD COLUMN secret TEXT;
  `,
  // 8: named credentials, one row per worker or reader token: its kind and the verifier the
  // hello checks (stored_key = SHA256(clientKey), server_key; see src/protocol/auth.ts), never
  // the token itself
  `
  CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('worker', 'reader')),
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    created INTEGER NOT NULL
  );
  `,
  // 9: history without a job name (the newest finished runs of all jobs) walks this index
  // backwards instead of sorting every finished run (runs_state orders by start, not finish).
  // Not (state, finished): without ANALYZE statistics SQLite then prefers it to runs_job for a
  // job's own runs and scans the whole history for them (EXPLAIN in bench/scale.ts's notes)
  `
  CREATE INDEX runs_finished ON runs (finished);
  `,
  // 10: the totals /metrics reports, kept by triggers in the transaction that writes the run,
  // its artifacts or its comparison, so the web view starts without reading the whole history
  // (3.3 s at a million runs) and a scrape reads a few rows. Counters only grow: retention
  // deleting old runs does not take them back. The duration buckets (seconds, the label "le";
  // a run is counted in the first bucket it fits, "+Inf" past the last) are src/web/metrics.ts's
  // DURATION_BUCKETS, written out here because a migration is fixed once shipped: other bounds
  // take a new migration. Artifacts are counted before the insert, so a replaced row
  // (INSERT OR REPLACE of the same path) counts its new size instead of both.
  `
  CREATE TABLE total_finished (
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    success INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (platform, kind, success)
  ) WITHOUT ROWID;
  CREATE TABLE total_durations (
    platform TEXT NOT NULL,
    le TEXT NOT NULL,
    n INTEGER NOT NULL,
    ms INTEGER NOT NULL,
    PRIMARY KEY (platform, le)
  ) WITHOUT ROWID;
  CREATE TABLE total_verdicts (
    platform TEXT NOT NULL,
    verdict TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (platform, verdict)
  ) WITHOUT ROWID;
  CREATE TABLE total_artifact_bytes (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    bytes INTEGER NOT NULL
  );

  INSERT INTO total_finished (platform, kind, success, n)
    SELECT platform, ${KIND}, ${SUCCESS}, COUNT(*) FROM runs WHERE state = 'finished' GROUP BY 1, 2, 3;
  INSERT INTO total_durations (platform, le, n, ms)
    SELECT platform, le, COUNT(*), SUM(ms) FROM (SELECT platform, ${le('MAX(0, finished - started)')} AS le, MAX(0, finished - started) AS ms
      FROM runs WHERE state = 'finished') GROUP BY 1, 2;
  INSERT INTO total_verdicts (platform, verdict, n) SELECT platform, verdict, COUNT(*) FROM comparisons GROUP BY 1, 2;
  INSERT INTO total_artifact_bytes (one, bytes) SELECT 1, COALESCE(SUM(size), 0) FROM artifacts;

  CREATE TRIGGER total_run_finished AFTER UPDATE OF state ON runs
  WHEN OLD.state = 'running' AND NEW.state = 'finished'
  BEGIN ${countFinished} END;
  CREATE TRIGGER total_run_inserted_finished AFTER INSERT ON runs
  WHEN NEW.state = 'finished'
  BEGIN ${countFinished} END;
  CREATE TRIGGER total_verdict AFTER INSERT ON comparisons
  BEGIN
    INSERT INTO total_verdicts (platform, verdict, n) VALUES (NEW.platform, NEW.verdict, 1)
      ON CONFLICT (platform, verdict) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER total_artifact BEFORE INSERT ON artifacts
  BEGIN
    UPDATE total_artifact_bytes SET bytes = bytes + NEW.size
      - COALESCE((SELECT size FROM artifacts WHERE uuid = NEW.uuid AND path = NEW.path), 0);
  END;
  `,
  // 11: info's summary counts jobs per platform and kind from this index instead of reading every
  // job's row, scripts and all (10,000 jobs: 1.8 ms of the request's 2.7 on the test machine)
  `
  CREATE INDEX jobs_platform_kind ON jobs (platform, kind);
  `,
];

// The V8 options the server runs with, in one place for everything that starts it: the
// installed launcher (scripts/stage.ts), the bundle's #! line (scripts/bundle.ts) and the tests'
// and benches' harness (test/helpers/processes.ts). They must be on node's command line: V8 sizes
// its heap when it starts, and v8.setFlagsFromString() comes too late for these.
//
// --max-semi-space-size=1 (MiB; V8's default lets it grow to 16): a burst of work (hostile
// connections, 1,500 unread requests, thousands of workers joining at once) grew the young
// generation to its largest, and V8 kept it committed long after, so the server stayed some
// 45 MB above its start once the burst was over (bench attack: 77 MB before, 122-126 MB 15 s
// after, peak 124-137 MB; with this flag 72 MB before, 97-100 MB after, peak 99-102 MB). The young
// generation is collected more often for it, which costs little: a server's short-lived objects
// die young (server CPU per run in the throughput bench is the same either way).
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

// Imported first by the server's main module, before anything touches libuv's thread pool,
// which reads UV_THREADPOOL_SIZE once, when it starts. The server's pool does little but wait
// on the disk: every stored result is four file fsyncs and two directory fsyncs, and with the
// default four threads eight workers finishing together queue 48 of them behind each other.
// More threads keep more fsyncs in flight, which the file system's journal commits together.
// Only the bundle (what the installed programs run) gets this in time: under the ESM loader
// (node dist/src/server/main.js) the pool has already started while the modules were read.
// An operator's own UV_THREADPOOL_SIZE wins.
export const SERVER_THREADPOOL_SIZE = 16;

process.env.UV_THREADPOOL_SIZE ??= String(SERVER_THREADPOOL_SIZE);

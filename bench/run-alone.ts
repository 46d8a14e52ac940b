// A bench part run as its own program (`node dist/bench/core.js ...`): prints its JSON and exits
// 0, or prints the error and exits 1, so each part can be run and timed alone.
export function runAlone(metaUrl: string, part: () => Promise<unknown>): void {
  if (metaUrl !== `file://${process.argv[1]}`) return;
  part().then(
    (r) => {
      console.log(JSON.stringify(r, null, 2));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

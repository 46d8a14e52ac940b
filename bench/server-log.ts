// What a bench reads from a server's own log (its stderr, as the harness keeps it).

/** One of the server's full collections after a burst (src/server/memory-settle.ts). */
export interface MemoryGivenBack { at: string; rssMb: number; nowMb: number; pauseMs: number }

export function memoryGivenBack(stderr: string): MemoryGivenBack[] {
  return [...stderr.matchAll(/^(\S+) builder-server info: memory given back after a burst rssMb=(\d+) nowMb=(\d+) pauseMs=(\d+)/gm)]
    .map((m) => ({ at: m[1]!, rssMb: Number(m[2]), nowMb: Number(m[3]), pauseMs: Number(m[4]) }));
}

// Cuts a byte stream into lines on '\n' (the newline itself is not part of the line). A line
// longer than maxLine is cut there, so one endless line cannot exhaust memory.
export class LineSplitter {
  private partial: Buffer[] = [];
  private partialLength = 0;

  constructor(private readonly emit: (line: Buffer) => void, private readonly maxLine = 64 * 1024) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      let piece = chunk.subarray(start, end);
      while (this.partialLength + piece.length > this.maxLine) {
        const room = this.maxLine - this.partialLength;
        this.partial.push(piece.subarray(0, room));
        this.partialLength += room;
        this.flushPartial();
        piece = piece.subarray(room);
      }
      if (nl < 0) {
        if (piece.length > 0) {
          // copy: the chunk's memory may be reused by the stream
          this.partial.push(Buffer.from(piece));
          this.partialLength += piece.length;
        }
        return;
      }
      this.partial.push(piece);
      this.partialLength += piece.length;
      this.flushPartial();
      start = nl + 1;
    }
  }

  /** Emits what is left without a final newline. */
  end(): void {
    if (this.partialLength > 0) this.flushPartial();
  }

  private flushPartial(): void {
    const line = this.partial.length === 1 ? Buffer.from(this.partial[0]!) : Buffer.concat(this.partial, this.partialLength);
    this.partial = [];
    this.partialLength = 0;
    this.emit(line);
  }
}

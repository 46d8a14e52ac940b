// The shape of a sub-command: its usage text beside its code, its flags, and a run that returns
// the exit status.
import type { FlagSpec, ParsedArgs } from '../common/args.js';
import type { ClientSession } from './session.js';

export interface ClientContext {
  connect(): Promise<ClientSession>;
  out(text: string): void;
  write(bytes: Buffer | string): void;
  err(text: string): void;
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  flags: FlagSpec;
  /** how many positionals: [min, max] */
  positionals: [number, number];
  run(args: ParsedArgs, ctx: ClientContext): Promise<number>;
}

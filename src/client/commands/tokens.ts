// token: named credentials. A worker token belongs to one worker name; a reader token may only
// read (info, history, observe, ...). Only the admin token may make, list or revoke them.
import { UsageError } from '../../common/errors.js';
import type { Command } from '../command.js';
import { table } from '../format.js';

export const token: Command = {
  name: 'token',
  summary: 'make, list and revoke worker and read-only tokens (admin token only)',
  usage: `builder-client token add-worker NAME | add-reader NAME | list [--json] | revoke NAME

  add-worker NAME  print a new token for the worker named NAME (builder-worker --name NAME, or
                   no --name: a worker token gives its name); it can do nothing else
  add-reader NAME  print a new read-only token: info, history, observe, workers, uploads,
                   templates, render, compare, repro-record
  list             the named tokens, their kind and live connections (never the secrets)
  revoke NAME      forget the token; its connections are closed at once and its next hello refused

The token is printed once, on stdout, and only its verifier is kept by the server, e.g.
  builder-client token add-worker build-2 > build-2.token && chmod 600 build-2.token`,
  flags: { booleans: ['json'] },
  positionals: [1, 2],
  async run(args, ctx) {
    const [action, name] = args.positionals;
    const needName = (): string => name ?? (() => { throw new UsageError(`token ${action}: missing NAME`); })();
    switch (action) {
      case 'add-worker':
      case 'add-reader': {
        const n = needName();
        const session = await ctx.connect();
        const { data } = await session.request({ op: 'token-add', kind: action === 'add-worker' ? 'worker' : 'reader', name: n });
        ctx.out(data.token);
        ctx.err(`token for ${data.kind} ${data.name} made; it is shown only now: keep it in a file of mode 0600 (--token-file)`);
        return 0;
      }
      case 'list': {
        if (name !== undefined) throw new UsageError(`token list: unexpected argument "${name}"`);
        const session = await ctx.connect();
        const { data } = await session.request({ op: 'token-list' });
        if (args.booleans.has('json')) ctx.out(JSON.stringify(data, null, 2));
        else if (data.length === 0) ctx.out('(no named tokens; the admin token is the server\'s token file)');
        else ctx.out(table(['NAME', 'KIND', 'CREATED', 'CONNECTIONS'], data.map((t) => [t.name, t.kind, t.created, t.connections])));
        return 0;
      }
      case 'revoke': {
        const n = needName();
        const session = await ctx.connect();
        const { data } = await session.request({ op: 'token-revoke', name: n });
        ctx.out(`revoked ${data.name}; ${data.closed} connection(s) closed`);
        return 0;
      }
      default:
        throw new UsageError(`token: unknown action "${action}" (add-worker, add-reader, list, revoke)`);
    }
  },
};

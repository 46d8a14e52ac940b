// templates, render: which platforms have an orb-build template, and the script a job would
// run now, without running it.
import type { RenderedScript } from '../../protocol/replies.js';
import type { Command } from '../command.js';
import { table } from '../format.js';

export const templates: Command = {
  name: 'templates',
  summary: 'the platforms with an orb-build template, and where each comes from',
  usage: `builder-client templates [--json]

The server looks for orb-build.template.PLATFORM in its --config-dir first, then in the templates
shipped with builder. orb-build jobs run on every platform that has one.`,
  flags: { booleans: ['json'] },
  positionals: [0, 0],
  async run(args, ctx) {
    const session = await ctx.connect();
    const { data } = await session.request({ op: 'templates' });
    if (args.booleans.has('json')) {
      ctx.out(JSON.stringify(data, null, 2));
      return 0;
    }
    ctx.out(table(['PLATFORM', 'FROM', 'PATH'], data.templates.map((t) => [t.platform, t.source === 'config' ? 'config dir' : 'shipped', t.path])));
    if (data.without.length > 0) ctx.out(`\nknown platforms without a template (orb-build jobs do not run there): ${data.without.join(', ')}`);
    return 0;
  },
};

/** In JSON a script is text when it is valid UTF-8, else its bytes in base64 (scriptBase64). */
function jsonScript(s: RenderedScript): object {
  if (s.script === undefined || typeof s.script === 'string') return s;
  const bytes = Buffer.from(s.script);
  const { script: _, ...rest } = s;
  try {
    return { ...rest, script: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    return { ...rest, scriptBase64: bytes.toString('base64') };
  }
}

export const render: Command = {
  name: 'render',
  summary: 'print the script a job would run now, without running it',
  usage: `builder-client render NAME [--platform P] [--json]

For an orb-build job: its template rendered as a run starting now would render it, per platform
with a template (or only P); {{uuid}} shows as a placeholder, as a run's uuid is made when it
starts. For a script job: its script. With one platform the script alone goes to stdout; exits 1
when a template cannot be rendered, with the template's FILE:LINE.

example: builder-client render solo5 --platform debian-12 > script.sh`,
  flags: { values: ['platform'], booleans: ['json'] },
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    const platform = args.values.platform;
    const { data } = await session.request({ op: 'render', name: args.positionals[0]!, ...(platform !== undefined ? { platform } : {}) });
    if (args.booleans.has('json')) {
      ctx.out(JSON.stringify({ ...data, scripts: data.scripts.map(jsonScript) }, null, 2));
      return data.scripts.some((s) => s.error !== undefined) ? 1 : 0;
    }
    if (data.scripts.length === 0) {
      ctx.err(`job ${data.name} has no platform to run on: no platform has an orb-build template`);
      return 1;
    }
    const alone = data.scripts.length === 1;
    let failed = false;
    for (const s of data.scripts) {
      if (s.error !== undefined) {
        failed = true;
        ctx.err(`${s.platform}: ${s.error}`);
        continue;
      }
      // a header per platform when there are several, like tail(1); one script is printed bare so it can be piped
      if (!alone) ctx.out(`==> ${s.platform}${s.template ? ` (${s.template.path})` : ''} <==`);
      // raw: a binary script is printed byte for byte
      ctx.write(typeof s.script === 'string' || s.script === undefined ? s.script ?? '' : Buffer.from(s.script));
      if (!alone) ctx.out('');
    }
    return failed ? 1 : 0;
  },
};

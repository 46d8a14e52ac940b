// orb-build jobs become scripts through orb-build.template.PLATFORM in the config directory,
// a Handlebars template that sees {{package}} and {{platform}}. Read at dispatch time, so an
// edited template applies to the next run without a restart.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { BuilderError } from '../common/errors.js';

export const templatePath = (configDir: string, platform: string): string =>
  join(configDir, `orb-build.template.${platform}`);

export const hasTemplate = (configDir: string, platform: string): boolean => existsSync(templatePath(configDir, platform));

export function renderOrbScript(configDir: string, platform: string, pkg: string): string {
  const file = templatePath(configDir, platform);
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BuilderError('NO_TEMPLATE', `no template for platform ${platform}: cannot read ${file}`, { cause: err });
  }
  try {
    // noEscape: this is a shell script, not HTML; strict: a misspelt variable is an error, not ""
    return Handlebars.compile(source, { noEscape: true, strict: true })({ package: pkg, platform });
  } catch (err) {
    throw new BuilderError('BAD_TEMPLATE', `template ${file}: ${(err as Error).message}`, { cause: err });
  }
}

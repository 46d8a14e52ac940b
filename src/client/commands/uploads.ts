// uploads, upload-retry: the state of results sent to builder-web.
import type { Command } from '../command.js';

export const uploadCommands: Command[] = [];

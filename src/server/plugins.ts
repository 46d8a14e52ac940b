// Parts of the server that hook into finished runs and add client requests (uploads).
import type { Logger } from '../common/log.js';
import type { ServerConfig } from './config.js';
import type { RunningServer } from './server.js';

export async function attachPlugins(_server: RunningServer, _config: ServerConfig, _log: Logger): Promise<void> {
  // uploads to builder-web attach here
}

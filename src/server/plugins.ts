// Parts of the server that hook into finished runs and add client requests (uploads).
import type { Logger } from '../common/log.js';
import type { ServerConfig } from './config.js';
import type { RunningServer } from './server.js';
import { attachUploads } from './upload/plugin.js';

export async function attachPlugins(server: RunningServer, config: ServerConfig, log: Logger): Promise<void> {
  attachUploads(server, config, log);
}

// Drives GitHub's official @actions/artifact and @actions/cache clients for tests/test_interop.py.
// Usage: node official_clients.mjs <command> [args...]; the packages live in $INTEROP_MODULES (node_modules),
// the service endpoints and the runtime token come from the environment, as in a job step.
// The result is printed as one line `RESULT <json>` (the clients log their own lines around it).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.INTEROP_MODULES;
const load = (relative) => import(pathToFileURL(path.join(modules, relative)).href);

const commands = {
  async 'artifact-upload'(name, root, ...files) {
    const { DefaultArtifactClient } = await load('@actions/artifact/lib/artifact.js');
    return new DefaultArtifactClient().uploadArtifact(name, files.map((f) => path.join(root, f)), root);
  },
  async 'artifact-list'() {
    const { DefaultArtifactClient } = await load('@actions/artifact/lib/artifact.js');
    return new DefaultArtifactClient().listArtifacts();
  },
  async 'artifact-download'(id, into, expectedHash) {
    // expectedHash as download-artifact passes it: the digest the listing reported.
    const { DefaultArtifactClient } = await load('@actions/artifact/lib/artifact.js');
    return new DefaultArtifactClient().downloadArtifact(Number(id), { path: into, expectedHash });
  },
  async 'cache-version'(cachePath) {
    // The version @actions/cache files an entry of these paths under (internal/cacheUtils.js getCacheVersion).
    const utils = await load('@actions/cache/lib/internal/cacheUtils.js');
    const compression = await utils.getCompressionMethod();
    return { version: utils.getCacheVersion([cachePath], compression), compression };
  },
  async 'cache-save'(key, cachePath) {
    const cache = await load('@actions/cache/lib/cache.js');
    return { cacheId: await cache.saveCache([cachePath], key) };
  },
  async 'cache-restore'(key, cachePath) {
    const cache = await load('@actions/cache/lib/cache.js');
    return { matchedKey: (await cache.restoreCache([cachePath], key)) ?? null };
  },
};

const [command, ...args] = process.argv.slice(2);
try {
  const result = await commands[command](...args);
  process.stdout.write(`RESULT ${JSON.stringify(result, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
} catch (error) {
  process.stderr.write(`${command} failed: ${error?.stack ?? error}\n`);
  process.exit(1);
}

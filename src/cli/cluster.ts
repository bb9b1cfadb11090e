/**
 * `postern cluster status [--json]` (SPEC §12): with a node's `--data-dir`, the cluster's nodes
 * as their heartbeats in Redis tell them — last heartbeat, configuration version, queue size —
 * and the cluster's configuration version.
 */
import { Command } from 'commander';
import { withClusterRedis } from '../cluster/cli-session.js';
import { CONFIG_KEY } from '../cluster/config-sync.js';
import { NODES_KEY, redact, type NodeHeartbeat } from '../cluster/node.js';
import { dataDirOption, out, outJson } from './common.js';
import { formatTable } from './format.js';

const CERTIFICATES_TEXT: Record<string, string> = {
  shared: "the cluster's, sealed in Redis with the cluster secret file",
  'per node': 'per node (no --cluster-secret-file)',
  'other secret file': "per node: the nodes' secret file is not the one the cluster's certificates were sealed with",
  mixed: 'not the same on every node (see the Certificates column; give every node the same --cluster-secret-file)',
};

export function addClusterCommand(program: Command): void {
  const c = program.command('cluster').description('the cluster this data directory belongs to (start --cluster)');
  c.command('status')
    .description('nodes, last heartbeat, configuration version, queue size')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action(async (o: { json?: boolean; dataDir: string }) => {
      await withClusterRedis(o.dataDir, async (redis, m) => {
        const [nodes, version] = await Promise.all([redis.hgetall(NODES_KEY), redis.hget(CONFIG_KEY, 'version')]);
        const now = Date.now();
        const rows = Object.values(nodes)
          .map((v) => JSON.parse(v) as NodeHeartbeat)
          .sort((a, b) => a.node.localeCompare(b.node))
          .map((n) => ({ ...n, secondsAgo: Math.round((now - n.heartbeat) / 100) / 10, alive: now - n.heartbeat < m.leaseTtlSeconds * 1000 }));
        // Shared only when every node alive shares them; otherwise each node says where its own come from.
        const states = new Set(rows.filter((n) => n.alive).map((n) => n.certificates));
        const certificates = states.size === 1 ? [...states][0]! : states.size === 0 ? 'per node' : 'mixed';
        if (o.json) return outJson({ node: m.node, configVersion: version === null ? null : Number(version), certificates, nodes: rows });
        out(`Cluster at ${redact(m.url)}; this data directory is node ${m.node}.\n`);
        out(`Configuration version: ${version ?? 'none yet'}\n`);
        out(`Certificates and keys: ${CERTIFICATES_TEXT[certificates] ?? certificates}\n\n`);
        out(formatTable(['Node', 'State', 'Last heartbeat', 'Config version', 'Queue', 'Certificates'], rows.map((n) => [n.node, n.alive ? 'alive' : 'gone', `${n.secondsAgo} s ago`, String(n.version), String(n.queue), n.certificates])) + '\n');
      });
    });
}

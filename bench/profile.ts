/**
 * Summary of a V8 CPU profile (`node --cpu-prof`): where the time went, by function (self time)
 * and by origin (Postern's own modules, each dependency, Node internals, native code,
 * garbage collection, idle). Pure: reads the .cpuprofile JSON, returns text.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function origin(url: string, fn: string): string {
  if (url === '') {
    if (fn === '(idle)') return '(idle)';
    if (fn === '(garbage collector)') return '(garbage collector)';
    if (fn === '(program)') return '(program: native, incl. SQLite and OpenSSL)';
    return `(native) ${fn}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `dep ${nm[1]}`;
  const src = /\/dist\/(src\/[^?#]+)/.exec(url);
  if (src) return `postern ${src[1]}`;
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/')[0]}`;
  return url;
}

export function summariseProfile(file: string, top = 20): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  if (p.samples && p.timeDeltas) {
    for (let i = 0; i < p.samples.length; i++) {
      const id = p.samples[i]!;
      self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0));
    }
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const fnTime = new Map<string, number>();
  const originTime = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const short = url.replace(/^.*\/(dist|node_modules)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim();
    fnTime.set(key, (fnTime.get(key) ?? 0) + us);
    const o = origin(url, functionName);
    originTime.set(o, (originTime.get(o) ?? 0) + us);
  }
  const busy = total - (originTime.get('(idle)') ?? 0);
  const pct = (us: number, of: number): string => `${((100 * us) / of).toFixed(1).padStart(5)}%`;
  const lines: string[] = [];
  lines.push(`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (not idle)`);
  lines.push('by origin (share of busy time):');
  for (const [o, us] of [...originTime].filter(([o]) => o !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    lines.push(`  ${pct(us, busy)}  ${(us / 1e6).toFixed(2).padStart(7)} s  ${o}`);
  }
  lines.push(`top ${top} functions by self time (share of busy time):`);
  for (const [f, us] of [...fnTime].filter(([f]) => !f.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(us, busy)}  ${(us / 1e6).toFixed(2).padStart(7)} s  ${f}`);
  }
  return lines.join('\n');
}

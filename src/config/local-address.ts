/**
 * Can this machine bind HOST:PORT? Answered by binding a socket and letting it go: the kernel
 * knows (EADDRINUSE, EACCES, EADDRNOTAVAIL), including every 127.x address of the loopback
 * network, which the interface list does not show one by one.
 *
 * bindProblem(host, port): null when the bind works, else the error (with its code).
 * isLocalAddress(address): the address is one this machine can send from (port 0).
 */
import net from 'node:net';

export function bindProblem(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    s.listen(port, host, () => s.close(() => resolve(null)));
  });
}

export async function isLocalAddress(address: string): Promise<boolean> {
  return (await bindProblem(address, 0)) === null;
}

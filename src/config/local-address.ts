/**
 * Is an address one this machine can send from? Answered by binding a socket to it (port 0)
 * and letting it go: the kernel knows (EADDRNOTAVAIL), including every 127.x address of the
 * loopback network, which the interface list does not show one by one.
 */
import net from 'node:net';

export function isLocalAddress(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, address, () => s.close(() => resolve(true)));
  });
}

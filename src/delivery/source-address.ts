/**
 * The local address this machine would send from to reach `address`, for TLS reports of hosts
 * the policy ruled out before any connection (RFC 8460 asks for the sending MTA's address in
 * every failure detail). A connected UDP socket asks the kernel's routing without sending a
 * packet. Empty when it cannot tell.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export function sourceAddressFor(address: string): Promise<string> {
  const family = net.isIP(address);
  if (family === 0) return Promise.resolve('');
  return new Promise((resolve) => {
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    const done = (value: string) => {
      socket.close();
      resolve(value);
    };
    socket.once('error', () => done(''));
    // The port does not matter: nothing is sent.
    socket.connect(9, address, () => {
      try {
        done(socket.address().address);
      } catch {
        done('');
      }
    });
  });
}

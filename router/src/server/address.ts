/** Turning a bound socket address into a URL a client on this machine can use. */
import type { AddressInfo } from 'node:net';

/** A wildcard bind (0.0.0.0, ::) becomes loopback; IPv6 literals get brackets. */
export function connectableHost(address: AddressInfo): string {
  if (address.address === '0.0.0.0') return '127.0.0.1';
  if (address.address === '::') return '[::1]';
  return address.family === 'IPv6' ? `[${address.address}]` : address.address;
}

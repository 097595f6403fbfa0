// A TCP proxy in front of the server, for the client library's tests and the browser's
// (tests/browser/transport.test.mjs): no dependencies but Node's own.

import net from 'node:net';

/**
 * A TCP proxy in front of the server. Switches:
 *  blockUpgrades: a WebSocket upgrade is answered 403 (what a proxy that does not pass
 *                 WebSocket does); plain HTTP (the page, /sse, /send) passes through.
 *  hold:          new connections are closed at once (the server is "unreachable").
 *  mute:          what the server sends is swallowed (acknowledgements lost on the way).
 *  deaf:          what clients send is swallowed (messages lost on the way).
 * cutAll() ends every open connection. `upgrades` and `refused` count upgrade requests.
 */
export async function startProxy(targetPort) {
  const proxy = { blockUpgrades: false, hold: false, mute: false, deaf: false, upgrades: 0, refused: 0, sse: 0, conns: new Set() };
  const server = net.createServer((client) => {
    if (proxy.hold) {
      client.destroy();
      return;
    }
    const pair = { client, upstream: null };
    proxy.conns.add(pair);
    client.on('close', () => { proxy.conns.delete(pair); pair.upstream?.destroy(); });
    client.on('error', () => {});
    let head = Buffer.alloc(0);
    const onHead = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < 16384) return;
      client.off('data', onHead);
      const text = head.subarray(0, end < 0 ? head.length : end).toString('latin1');
      const upgrade = /^upgrade:\s*websocket/im.test(text);
      if (/^GET \/sse/.test(text)) proxy.sse += 1;
      if (upgrade) {
        proxy.upgrades += 1;
        if (proxy.blockUpgrades) {
          proxy.refused += 1;
          client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
      }
      const upstream = net.connect(targetPort, '127.0.0.1');
      pair.upstream = upstream;
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => client.destroy());
      upstream.on('data', (d) => { if (!proxy.mute) client.write(d); });
      client.on('data', (d) => { if (!proxy.deaf) upstream.write(d); });
      upstream.write(head);
    };
    client.on('data', onHead);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = server.address().port;
  proxy.url = `http://127.0.0.1:${proxy.port}/`;
  proxy.target = targetPort;
  proxy.cutAll = () => {
    for (const { client, upstream } of proxy.conns) {
      client.destroy();
      upstream?.destroy();
    }
    proxy.conns.clear();
  };
  proxy.close = () => new Promise((resolve) => {
    proxy.cutAll();
    server.close(() => resolve());
  });
  return proxy;
}

'use strict';
// perf/peers/ws/server.js: the chat broadcast that ringcast is measured
// against, written the way a Node developer would with the `ws` package:
// every text message goes to every open client, the sender included (its
// acknowledgement, as in ringcast). Only what perf/loadgen needs: no rooms,
// no history, no flood control.
//
//   HOST (127.0.0.1), PORT (8080)
//   ENVELOPE  json (default): {"type":"message","text":...,"ts":ms}, the
//             shape of a chat app's event; raw: the text forwarded as is
const { WebSocketServer, WebSocket } = require('ws');

const host = process.env.HOST || '127.0.0.1';
const port = Number.parseInt(process.env.PORT || '8080', 10);
const envelope = process.env.ENVELOPE || 'json';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`ws peer: PORT must be 0..65535, not ${process.env.PORT}`);
  process.exit(2);
}
if (envelope !== 'json' && envelope !== 'raw') {
  console.error(`ws peer: ENVELOPE is json or raw, not ${envelope}`);
  process.exit(2);
}

const wss = new WebSocketServer({
  host,
  port,
  // The load generator opens thousands of connections at once.
  backlog: 65535,
  // Compression would measure zlib, not the broadcast.
  perMessageDeflate: false,
  maxPayload: 64 * 1024,
});

function frameFor(data, isBinary) {
  if (isBinary || envelope === 'raw') return data;
  return JSON.stringify({ type: 'message', text: data.toString('utf8'), ts: Date.now() });
}

wss.on('connection', (socket) => {
  // A client that vanishes mid-send is not the benchmark's concern.
  socket.on('error', () => {});
  socket.on('message', (data, isBinary) => {
    const frame = frameFor(data, isBinary);
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(frame, { binary: isBinary });
    }
  });
});

wss.on('listening', () => {
  const { version } = require('ws/package.json');
  console.log(`ws peer listening on ${host}:${wss.address().port} (ws ${version}, envelope ${envelope})`);
});

wss.on('error', (err) => {
  console.error(`ws peer: ${err.message}`);
  process.exit(1);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}

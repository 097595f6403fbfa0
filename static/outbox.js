// Messages sent and not yet echoed, so that the ones the server refused can be kept for
// sending again. The server's `rate_limited` (or `not_saved`, `unavailable`, `bad_text`)
// error does not say which message it refused, and a message's echo (its acknowledgement)
// may come after the errors of later messages (it waits for the store). So refusals are
// counted, and once every other pending message has been echoed, the ones left are the
// refused ones.
// Trade-off: a refused command (join, rooms) counts too and may mark a message still
// waiting for its echo as refused; the echo, when it comes, takes it off the list again.

export function createOutbox() {
  return {
    socket: null,   // the connection the pending messages went out on
    pending: [],    // { room, text }, in sending order
    failures: 0,    // refusals not yet matched to a pending message
    refused: [],    // { room, text } kept for sending again, oldest first
  };
}

// A new connection: what went out on the old one has no answer coming.
function sameSocket(box, socket) {
  if (box.socket === socket) return;
  box.socket = socket;
  box.pending = [];
  box.failures = 0;
}

export function outboxSent(box, socket, room, text) {
  sameSocket(box, socket);
  box.pending.push({ room, text });
}

// Our own message came back: it was taken. Returns true when the refused list changed.
export function outboxEchoed(box, socket, room, text) {
  sameSocket(box, socket);
  const at = box.pending.findIndex((p) => p.room === room && p.text === text);
  if (at >= 0) {
    box.pending.splice(at, 1);
    return settle(box);
  }
  const kept = box.refused.findIndex((p) => p.room === room && p.text === text);
  if (kept < 0) return false;
  box.refused.splice(kept, 1);
  return true;
}

// The server refused something we sent. Returns true when the refused list changed.
export function outboxRefusal(box, socket) {
  sameSocket(box, socket);
  box.failures += 1;
  return settle(box);
}

function settle(box) {
  if (box.failures === 0 || box.failures < box.pending.length) return false;
  const moved = box.pending.length > 0;
  box.refused.push(...box.pending);
  box.pending = [];
  box.failures = 0;
  return moved;
}

// Hands back the refused messages that `take` accepts (all without it), keeping the rest.
export function outboxTakeRefused(box, take = () => true) {
  const taken = box.refused.filter(take);
  box.refused = box.refused.filter((m) => !taken.includes(m));
  return taken;
}

// Bytes of a frame as the server counts them against --max-message.
export function frameBytes(frame) {
  return new TextEncoder().encode(frame).length;
}

export function formatBytes(n) {
  if (n < 10 * 1024) return `${n.toLocaleString('en')} bytes`;
  return `${(n / 1024).toLocaleString('en', { maximumFractionDigits: 1 })} KiB`;
}

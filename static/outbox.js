// Messages the server refused (`rate_limited`, `not_saved`, `unavailable`, `bad_text`),
// kept for sending again. Which message a refusal answers is exact: ringcast.js gives each
// message a cid, and the server's error carries it back, rejecting that send's promise.

export function createOutbox() {
  return {
    refused: [],    // { room, text } kept for sending again, oldest first
  };
}

export function outboxKeep(box, room, text) {
  box.refused.push({ room, text });
}

// Hands back the refused messages that `take` accepts (all without it), keeping the rest.
export function outboxTakeRefused(box, take = () => true) {
  const taken = box.refused.filter(take);
  box.refused = box.refused.filter((m) => !taken.includes(m));
  return taken;
}

export function formatBytes(n) {
  if (n < 10 * 1024) return `${n.toLocaleString('en')} bytes`;
  return `${(n / 1024).toLocaleString('en', { maximumFractionDigits: 1 })} KiB`;
}

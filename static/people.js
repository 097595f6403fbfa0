// Who is in the room, and which rooms exist: the sidebar's two lists that show what the
// server says (presence/join/leave/nick, and the `rooms` command). Pure rendering: app.js
// owns the state and passes in what each list shows.

// Replace a list's items without losing keyboard focus: a list re-rendered under the
// focused button would drop focus to <body>, so the button for the same room (or person)
// is focused again, else the list's current item.
export function replaceKeepingFocus(list, items) {
  const focused = document.activeElement;
  const key = focused && list.contains(focused) ? focused.closest('[data-key]')?.dataset.key : null;
  list.replaceChildren(...items);
  if (key == null) return;
  const again = [...list.querySelectorAll('[data-key]')].find((el) => el.dataset.key === key)
    || list.querySelector('[aria-current="true"]') || list.querySelector('button');
  if (again) again.focus({ preventScroll: true });
}

// The room's members: you first, then by name. `count` is exact; the server lists at
// most 100 members, so a bigger room says how many more there are.
export function renderPeople({ list, title, room, myId }) {
  if (!room) {
    title.textContent = 'People';
    list.replaceChildren();
    return;
  }
  const people = [...room.members].map(([id, name]) => ({ id, name, me: id === myId }));
  people.sort((a, b) => (b.me - a.me) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  const count = Number.isInteger(room.count) ? Math.max(room.count, people.length) : people.length;
  title.textContent = `People in #${room.name} · ${count}`;
  const items = people.map((p) => personItem(p));
  if (count > people.length) {
    const li = document.createElement('li');
    li.className = 'person more';
    li.textContent = `and ${count - people.length} more`;
    items.push(li);
  }
  replaceKeepingFocus(list, items);
}

function personItem({ id, name, me }) {
  const li = document.createElement('li');
  li.className = me ? 'person self' : 'person';
  li.dataset.id = id;
  const who = document.createElement('span');
  who.className = 'person-name';
  who.textContent = name;
  li.append(who);
  if (me) {
    const you = document.createElement('span');
    you.className = 'person-you';
    you.textContent = '(you)';
    li.append(' ', you);
  }
  return li;
}

// Every room we know of: those the last `rooms` answer listed, and ours (whose counts
// join/leave events keep live). Sorted by name, so items stay where the keyboard left them.
export function renderDirectory({ list, listed, joined, current }) {
  const counts = new Map(listed);
  for (const [name, room] of joined) {
    if (Number.isInteger(room.count)) counts.set(name, room.count);
    else if (!counts.has(name)) counts.set(name, null);
  }
  const names = [...counts.keys()].sort((a, b) => a.localeCompare(b));
  replaceKeepingFocus(list, names.map((name) => directoryItem(name, counts.get(name), joined.has(name),
    name === current)));
}

function directoryItem(name, count, isJoined, isCurrent) {
  const li = document.createElement('li');
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = isJoined ? 'room-item dir-item joined' : 'room-item dir-item';
  btn.dataset.room = name;
  btn.dataset.key = name;
  if (isCurrent) btn.setAttribute('aria-current', 'true');
  btn.title = isJoined ? `Go to #${name}` : `Join #${name}`;
  const hash = document.createElement('span');
  hash.className = 'room-hash';
  hash.setAttribute('aria-hidden', 'true');
  hash.textContent = '#';
  const label = document.createElement('span');
  label.className = 'room-name';
  label.textContent = name;
  btn.append(hash, label);
  if (count != null) {
    const n = document.createElement('span');
    n.className = 'room-count';
    n.setAttribute('aria-hidden', 'true');
    n.textContent = String(count);
    const sr = document.createElement('span');
    sr.className = 'visually-hidden';
    sr.textContent = ` (${count} ${count === 1 ? 'person' : 'people'}${isJoined ? ', joined' : ''})`;
    btn.append(n, sr);
  } else if (isJoined) {
    const sr = document.createElement('span');
    sr.className = 'visually-hidden';
    sr.textContent = ' (joined)';
    btn.append(sr);
  }
  li.append(btn);
  return li;
}

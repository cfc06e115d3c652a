// Drawing: DOM built with textContent only (never HTML from a message).

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('aria-') || k === 'role') node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

// Local time: today as 14:05, this week as Mon 14:05, else a date.
export function when(ms, now = new Date()) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  const days = (now - d) / 86400000;
  if (days < 6) return `${d.toLocaleDateString([], { weekday: 'short' })} ${time}`;
  return d.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
}

export function label(conv) {
  return conv.kind === 'group' ? `#${conv.name}` : conv.name;
}

export function body(m) {
  if (m.deleted) return 'This message was deleted';
  if (m.kind === 'file') return `📎 ${m.file_name || 'file'}${m.text ? ` — ${m.text}` : ''}`;
  if (m.kind === 'poll') return `📊 ${m.text || ''}`;
  return m.text || '';
}

// What a message's text line shows under its file (the caption only).
function textOf(m) {
  return m.kind === 'file' && !m.deleted ? m.text || '' : body(m);
}

export function preview(m) {
  if (!m) return 'No messages yet';
  return `${m.outgoing ? 'You: ' : ''}${body(m)}`;
}

const STATUS = {
  pending: 'Sending…',
  sent: '✓ Sent',
  delivered: '✓✓ Delivered',
  read: '✓✓ Read',
};

export function statusText(m) {
  const base = STATUS[m.status] || m.status;
  const r = m.receipts;
  if (m.group && r && r.recipients) {
    return `${base} (read by ${r.read_by.length} of ${r.recipients})`;
  }
  return base;
}

// `avatar`: the conversation's avatar (avatars.js).
export function conversationItem(c, current, avatar) {
  const mentioned = c.unread_mentions > 0 ? '@ ' : '';
  const badge = c.unread > 0
    ? el('span', {
      class: mentioned ? 'unread mentioned' : 'unread',
      'aria-label': `${c.unread} unread${mentioned ? ', mentioning you' : ''}`,
    }, `${mentioned}${c.unread}`)
    : el('span');
  const last = c.last_message;
  const button = el('button', {
    type: 'button',
    class: 'conv',
    dataset: { id: String(c.id), name: c.name, kind: c.kind },
  },
  avatar,
  el('span', { class: 'conv-name' }, label(c),
    c.muted_until && c.muted_until > Date.now() ? el('span', { class: 'muted', title: 'Muted' }, ' (muted)') : ''),
  el('span', { class: 'conv-time' }, last ? when(last.sent_at) : ''),
  el('span', { class: 'conv-last' }, preview(last)),
  badge);
  if (current) button.setAttribute('aria-current', 'true');
  return el('li', {}, button);
}

// An outgoing message's status; in a group, a button for who read it.
function status(m) {
  if (!m.group) return el('span', { class: 'status', dataset: { status: m.status } }, statusText(m));
  return el('button', {
    type: 'button', class: 'status act', dataset: { status: m.status, act: 'info' },
    'aria-label': `${statusText(m)}: who received and read it`,
  }, statusText(m));
}

// Who wrote it, as the list shows them.
function author(m) {
  return m.outgoing ? 'You' : m.from;
}

// The reactions offered on every message (any emoji works through the API).
export const QUICK_REACTIONS = ['👍', '❤️', '😂'];

// The members' reactions under a message: `👍 bob, carol`.
function reactions(m) {
  if (m.deleted || !m.reactions?.length) return null;
  const by = new Map();
  for (const r of m.reactions) by.set(r.emoji, [...(by.get(r.emoji) || []), r.from]);
  return el('div', { class: 'reactions' },
    [...by].map(([e, who]) => `${e} ${who.join(', ')}`).join('  '));
}

// A poll's options: each a button that votes for it (or takes the vote
// back), with who chose it.
function pollOptions(m) {
  if (m.deleted || !m.poll) return null;
  return el('ol', { class: 'poll' }, ...m.poll.options.map((o, i) => el('li', {},
    el('button', {
      type: 'button', class: 'act vote', dataset: { act: 'vote', option: String(i) },
      'aria-label': `Vote ${o.text}`,
    }, o.text),
    el('span', { class: 'voters' }, ` ${o.voters.length}${o.voters.length ? `: ${o.voters.join(', ')}` : ''}`))));
}

// The buttons of one message (visible on hover and on keyboard focus).
function actions(m) {
  if (m.deleted) return null;
  const act = (name, text, label) => el('button', {
    type: 'button', class: 'act', dataset: { act: name }, 'aria-label': label,
  }, text);
  return el('div', { class: 'actions' },
    ...QUICK_REACTIONS.map((e) => el('button', {
      type: 'button', class: 'act', dataset: { act: 'react', emoji: e }, 'aria-label': `React ${e}`,
    }, e)),
    act('reply', 'Reply', `Reply to ${author(m)}: ${body(m).slice(0, 40)}`),
    m.kind === 'text' || m.kind === 'file'
      ? act('forward', 'Forward', `Forward ${body(m).slice(0, 40)}`) : null,
    m.pinned ? act('unpin', 'Unpin', 'Unpin for everyone') : act('pin', 'Pin', 'Pin for everyone'),
    m.outgoing && m.kind === 'text' ? act('edit', 'Edit', 'Edit your message') : null,
    m.outgoing ? act('delete', 'Delete', 'Delete your message for everyone') : null);
}

// `quoted` is the message this one answers, if it is loaded; `media` what
// its file shows (files.js).
export function messageItem(m, quoted, media) {
  const cls = ['msg', m.outgoing ? 'out' : 'in'];
  if (m.deleted) cls.push('deleted');
  if (m.mentions_me) cls.push('mention');
  const quote = m.reply_to
    ? el('div', { class: 'quote', dataset: { id: m.reply_to } },
      quoted ? `${author(quoted)}: ${body(quoted)}` : 'An earlier message')
    : null;
  const meta = el('div', { class: 'meta' },
    el('time', { dateTime: new Date(m.sent_at).toISOString() }, when(m.sent_at)),
    m.edited && !m.deleted ? el('span', { class: 'edited' }, ' · edited') : null,
    m.pinned && !m.deleted ? el('span', { class: 'pinned' }, ' · pinned') : null,
    m.expires_at ? el('span', { class: 'expires', title: 'Disappears' },
      ` · disappears ${when(m.expires_at)}`) : null,
    m.outgoing ? status(m) : null);
  return el('li', { class: cls.join(' '), dataset: { id: m.id } },
    m.group && !m.outgoing ? el('div', { class: 'from' }, m.from) : null,
    m.forwarded ? el('div', { class: 'forwarded' }, 'Forwarded') : null,
    quote,
    media,
    textOf(m) ? el('div', { class: 'text' }, textOf(m)) : null,
    pollOptions(m),
    reactions(m),
    meta,
    actions(m));
}

// A timer's name: 30 seconds, 5 minutes, 1 hour, 1 day, 1 week.
export function timerName(secs) {
  if (!secs) return 'Off';
  const units = [[604800, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  const [n, unit] = units.find(([u]) => secs % u === 0);
  const k = secs / n;
  return `${k} ${unit}${k === 1 ? '' : 's'}`;
}

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

function body(m) {
  if (m.deleted) return 'This message was deleted';
  if (m.kind === 'file') return `📎 ${m.file_name || 'file'}${m.text ? ` — ${m.text}` : ''}`;
  return m.text || '';
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

export function conversationItem(c, current) {
  const badge = c.unread > 0
    ? el('span', { class: 'unread', 'aria-label': `${c.unread} unread` }, String(c.unread))
    : el('span');
  const last = c.last_message;
  const button = el('button', {
    type: 'button',
    class: 'conv',
    dataset: { id: String(c.id), name: c.name, kind: c.kind },
  },
  el('span', { class: 'conv-name' }, label(c)),
  el('span', { class: 'conv-time' }, last ? when(last.sent_at) : ''),
  el('span', { class: 'conv-last' }, preview(last)),
  badge);
  if (current) button.setAttribute('aria-current', 'true');
  return el('li', {}, button);
}

export function messageItem(m) {
  const cls = ['msg', m.outgoing ? 'out' : 'in'];
  if (m.deleted) cls.push('deleted');
  const meta = el('div', { class: 'meta' },
    el('time', { dateTime: new Date(m.sent_at).toISOString() }, when(m.sent_at)),
    m.edited ? ' · edited' : null,
    m.outgoing ? el('span', { class: 'status', dataset: { status: m.status } }, statusText(m)) : null);
  return el('li', { class: cls.join(' '), dataset: { id: m.id } },
    m.group && !m.outgoing ? el('div', { class: 'from' }, m.from) : null,
    el('div', { class: 'text' }, body(m)),
    meta);
}

// The local API (openapi.json in the source tree documents it). Same origin,
// the session cookie goes along by itself.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (!r.ok) throw await failure(r);
  return r.status === 204 ? null : r.json();
}

// The error a failed response stands for: its JSON `error`, else its
// status text.
export async function failure(r) {
  let message = r.statusText;
  try {
    message = (await r.json()).error || message;
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(r.status, message);
}

export const api = {
  me: () => call('GET', '/api/me'),
  conversations: () => call('GET', '/api/conversations'),
  history: (id, before, limit = 50) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set('before', before);
    return call('GET', `/api/conversations/${id}/messages?${q}`);
  },
  markRead: (id) => call('POST', `/api/conversations/${id}/read`),
  typing: (id, started) => call('POST', `/api/conversations/${id}/typing`, { started }),
  send: (to, text, replyTo) =>
    call('POST', '/api/messages', replyTo ? { ...to, text, reply_to: replyTo } : { ...to, text }),
  edit: (id, text) => call('PUT', `/api/messages/${encodeURIComponent(id)}`, { text }),
  remove: (id) => call('DELETE', `/api/messages/${encodeURIComponent(id)}`),
  createPoll: (conversation, question, options, multiple) =>
    call('POST', '/api/polls', { conversation, question, options, multiple }),
  forward: (id, conversation) =>
    call('POST', `/api/messages/${encodeURIComponent(id)}/forward`, { conversation }),
  vote: (id, options) => call('PUT', `/api/messages/${encodeURIComponent(id)}/vote`, { options }),
  pin: (id, pinned) => call(pinned ? 'PUT' : 'DELETE', `/api/messages/${encodeURIComponent(id)}/pin`),
  react: (id, emoji) => emoji
    ? call('PUT', `/api/messages/${encodeURIComponent(id)}/reaction`, { emoji })
    : call('DELETE', `/api/messages/${encodeURIComponent(id)}/reaction`),
  setTimer: (id, seconds) => call('PUT', `/api/conversations/${id}/disappearing`, { seconds }),
  mute: (id, untilMs) => call('PUT', `/api/conversations/${id}/mute`, { until_ms: untilMs }),
  createGroup: (name, members) => call('POST', '/api/groups', { name, members }),
  addMember: (id, username) => call('POST', `/api/conversations/${id}/members`, { username }),
  removeMember: (id, username) =>
    call('DELETE', `/api/conversations/${id}/members/${encodeURIComponent(username)}`),
  renameGroup: (id, name) => call('PUT', `/api/conversations/${id}/name`, { name }),
  leaveGroup: (id) => call('POST', `/api/conversations/${id}/leave`),
  channels: () => call('GET', '/api/channels'),
  createChannel: (name) => call('POST', '/api/channels', { name }),
  joinChannel: (link) => call('POST', '/api/channels/join', { link }),
  join: (link) => call('POST', '/api/join', { link }),
  channelLink: (name) => call('GET', `/api/channels/${encodeURIComponent(name)}/link`),
  channelPosts: (name) => call('GET', `/api/channels/${encodeURIComponent(name)}/posts`),
  postToChannel: (name, text) =>
    call('POST', `/api/channels/${encodeURIComponent(name)}/posts`, { text }),
  leaveChannel: (name) => call('DELETE', `/api/channels/${encodeURIComponent(name)}`),
  contacts: () => call('GET', '/api/contacts'),
  search: (q, conversation) => {
    const p = new URLSearchParams({ q });
    if (conversation !== undefined) p.set('conversation', String(conversation));
    return call('GET', `/api/search?${p}`);
  },
  settings: () => call('GET', '/api/settings'),
  setSettings: (change) => call('PUT', '/api/settings', change),
  devices: () => call('GET', '/api/devices'),
  profile: () => call('GET', '/api/profile'),
  removeAvatar: () => call('DELETE', '/api/profile/avatar'),
  safetyNumber: (user) => call('GET', `/api/contacts/${encodeURIComponent(user)}/safety-number`),
  verify: (user, digits) =>
    call('POST', `/api/contacts/${encodeURIComponent(user)}/verify`, { digits }),
};

const EVENTS = [
  'message', 'receipt', 'typing', 'presence', 'edited', 'reaction', 'pinned', 'voted', 'deleted', 'joined', 'members',
  'removed', 'renamed', 'disappearing', 'key_changed', 'profile', 'key_transparency_alarm',
  'security_alarm', 'channel_post', 'connection', 'lagged', 'progress',
];

// Calls onEvent(name, data) for each event; onOpen() on every (re)connection.
export function subscribe(onEvent, onOpen) {
  const source = new EventSource('/api/events');
  for (const name of EVENTS) {
    source.addEventListener(name, (e) => {
      let data = null;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      onEvent(name, data);
    });
  }
  source.addEventListener('open', () => onOpen());
  return source;
}

// Search (in the open conversation or across all), the account's settings
// (presence, profile name and avatar), its linked devices, and opt-in
// browser notifications. `ctx` is the app: { state, openConv, openAt, fail }.
import { api } from './api.js';
import {
  avatarNode, checkAvatar, forgetAvatar, onAvatar, uploadAvatar,
} from './avatars.js';
import { body, el, label, when } from './view.js';

const $ = (id) => document.getElementById(id);
const NOTIFY_KEY = 'hush-notify';

// ---- search ----

function resultItem(ctx, m) {
  const conv = ctx.state.conversations.find((c) => c.id === m.conversation);
  const where = conv ? label(conv) : m.group ? `#${m.group}` : m.from;
  const b = el('button', { type: 'button', class: 'result', dataset: { id: m.id, conv: String(m.conversation) } },
    el('span', { class: 'conv-name' }, where),
    el('span', { class: 'conv-time' }, when(m.sent_at)),
    el('span', { class: 'conv-last' }, `${m.outgoing ? 'You' : m.from}: ${body(m)}`));
  return el('li', {}, b);
}

async function search(ctx, scope) {
  const q = $('search-query').value.trim();
  if (!q) return;
  const conv = scope === 'here' ? ctx.openConv() : null;
  $('search-state').textContent = 'Searching…';
  try {
    const found = await api.search(q, conv?.id);
    $('search-results').replaceChildren(...found.map((m) => resultItem(ctx, m)));
    $('search-state').textContent = found.length === 0 ? 'Nothing found.'
      : `${found.length} found${conv ? ` in ${label(conv)}` : ''}.`;
  } catch (e) {
    $('search-state').textContent = e.message;
  }
}

export function showSearch(ctx, scope) {
  $('search-dialog').dataset.scope = scope;
  const conv = scope === 'here' ? ctx.openConv() : null;
  $('search-title').textContent = conv ? `Search in ${label(conv)}` : 'Search all conversations';
  $('search-results').replaceChildren();
  $('search-state').textContent = '';
  $('search-dialog').showModal();
  $('search-query').focus();
}

// ---- settings and devices ----

// This account's avatar in Settings (initials without one).
function drawOwnAvatar(ctx, hasOne) {
  const me = ctx.state.me.username;
  const node = avatarNode(me, 'direct', true);
  $('avatar-preview').replaceChildren(...node.childNodes);
  if (hasOne !== undefined) $('avatar-remove').hidden = !hasOne;
}

// The profile changed (here, in another tab or by a bot).
export function ownAvatarChanged(ctx) {
  forgetAvatar(ctx.state.me.username);
  if (!$('settings-dialog').open) return;
  api.profile().then((p) => drawOwnAvatar(ctx, p.avatar_bytes !== null)).catch(() => {});
}

async function loadSettings(ctx) {
  $('settings-state').textContent = '';
  try {
    const [s, devices, profile] = await Promise.all([api.settings(), api.devices(), api.profile()]);
    $('presence').value = s.presence;
    if (profile.display_name && !$('display-name').value) {
      $('display-name').value = profile.display_name;
    }
    drawOwnAvatar(ctx, profile.avatar_bytes !== null);
    $('devices').replaceChildren(...devices.map((d) => el('li', { dataset: { id: String(d.id) } },
      `${d.name || `Device ${d.id}`}${d.this ? ' (this one)' : ''}`,
      el('span', { class: 'muted' }, d.last_seen_ms ? ` · seen ${when(d.last_seen_ms)}` : ''))));
  } catch (e) {
    $('settings-state').textContent = e.message;
  }
  $('notify').checked = notifyOn();
}

async function setAvatar(ctx, file) {
  const wrong = checkAvatar(file);
  if (wrong) {
    $('settings-state').textContent = wrong;
    return;
  }
  $('settings-state').textContent = 'Sharing your avatar…';
  try {
    await uploadAvatar(file);
    ownAvatarChanged(ctx);
    $('settings-state').textContent = 'Avatar shared with your contacts.';
  } catch (e) {
    $('settings-state').textContent = e.message;
  }
}

async function removeAvatar(ctx) {
  try {
    await api.removeAvatar();
    ownAvatarChanged(ctx);
    $('settings-state').textContent = 'Avatar removed.';
  } catch (e) {
    $('settings-state').textContent = e.message;
  }
}

async function save(change, done) {
  $('settings-state').textContent = 'Saving…';
  try {
    await api.setSettings(change);
    $('settings-state').textContent = done;
  } catch (e) {
    $('settings-state').textContent = e.message;
  }
}

// ---- notifications ----

function notifyOn() {
  return localStorage.getItem(NOTIFY_KEY) === 'on' && 'Notification' in window
    && Notification.permission === 'granted';
}

async function setNotify(on) {
  if (!on) {
    localStorage.removeItem(NOTIFY_KEY);
    return;
  }
  if (!('Notification' in window)) {
    $('settings-state').textContent = 'This browser cannot show notifications.';
    $('notify').checked = false;
    return;
  }
  const p = await Notification.requestPermission();
  if (p === 'granted') {
    localStorage.setItem(NOTIFY_KEY, 'on');
    $('settings-state').textContent = 'Notifications on while this tab is in the background.';
  } else {
    $('notify').checked = false;
    $('settings-state').textContent = 'The browser did not allow notifications.';
  }
}

// A conversation muted on this device (`muted_until` still ahead).
const FOREVER = 9223372036854775807;
const isMuted = (conv) => Boolean(conv && conv.muted_until && conv.muted_until > Date.now());

// The header's mute button for the open conversation.
export function drawMute(conv) {
  $('mute').hidden = !conv;
  if (!conv) return;
  const muted = isMuted(conv);
  $('mute').textContent = muted ? 'Unmute' : 'Mute';
  $('mute').setAttribute('aria-pressed', String(muted));
}

async function toggleMute(ctx) {
  const conv = ctx.openConv();
  if (!conv) return;
  const until = isMuted(conv) ? null : FOREVER;
  await api.mute(conv.id, until);
  conv.muted_until = until;
  drawMute(conv);
  ctx.reload();
}

// A new message while the tab is in the background, if the user opted in;
// none from a muted conversation unless it mentions this account.
export function notify(ctx, m) {
  if (m.outgoing || document.visibilityState === 'visible' || !notifyOn()) return;
  const conv = ctx.state.conversations.find((c) => c.id === m.conversation);
  if (isMuted(conv) && !m.mentions_me) return;
  const n = new Notification(m.group ? `${m.from} in #${m.group}` : m.from, {
    body: body(m), tag: m.id,
  });
  n.onclick = () => {
    window.focus();
    ctx.openAt(m.conversation);
    n.close();
  };
}

export function wireSettings(ctx) {
  $('search-all').addEventListener('click', () => showSearch(ctx, 'all'));
  $('search-here').addEventListener('click', () => showSearch(ctx, 'here'));
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    search(ctx, $('search-dialog').dataset.scope);
  });
  $('search-results').addEventListener('click', (e) => {
    const b = e.target.closest('button.result');
    if (!b) return;
    $('search-dialog').close();
    ctx.openAt(Number(b.dataset.conv), b.dataset.id);
  });
  $('settings').addEventListener('click', () => {
    $('settings-dialog').showModal();
    loadSettings(ctx);
  });
  onAvatar(() => {
    if ($('settings-dialog').open) drawOwnAvatar(ctx);
  });
  $('avatar-choose').addEventListener('click', () => $('avatar-file').click());
  $('avatar-file').addEventListener('change', () => {
    const [file] = $('avatar-file').files;
    $('avatar-file').value = '';
    if (file) setAvatar(ctx, file);
  });
  $('avatar-remove').addEventListener('click', () => removeAvatar(ctx));
  $('presence').addEventListener('change', () => save({ presence: $('presence').value }, 'Saved.'));
  $('profile-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('display-name').value.trim();
    if (name) save({ display_name: name }, 'Profile name shared with your contacts.');
  });
  $('notify').addEventListener('change', () => setNotify($('notify').checked));
  $('mute').addEventListener('click', () => toggleMute(ctx).catch(ctx.fail));
}

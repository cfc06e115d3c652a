// Avatars: contacts' pictures (from the profiles they shared, decrypted by
// the hush process) in the conversation list and a conversation's header,
// with initials while there is none; and this account's own, chosen in
// Settings. Each picture is fetched once and kept as a blob: URL until a
// `profile` event says it changed.
import { failure } from './api.js';
import { el } from './view.js';

// The largest avatar and the types hush takes (the same checks run there).
export const MAX_AVATAR = 512 * 1024;
export const AVATAR_TYPES = ['image/png', 'image/jpeg', 'image/webp'];

const urls = new Map(); // username -> blob: URL, or null for none
const pending = new Set();
const listeners = [];

// `f` redraws what shows avatars (called when one arrives).
export function onAvatar(f) {
  listeners.push(f);
}

function avatarPath(user, own) {
  return own ? '/api/profile/avatar' : `/api/contacts/${encodeURIComponent(user)}/avatar`;
}

async function fetchAvatar(user, own) {
  pending.add(user);
  try {
    const r = await fetch(avatarPath(user, own), { credentials: 'same-origin' });
    const blob = r.ok ? await r.blob() : null;
    urls.set(user, blob ? URL.createObjectURL(blob) : null);
  } catch {
    urls.set(user, null);
  } finally {
    pending.delete(user);
  }
  for (const f of listeners) f();
}

// Forgets `user`'s picture (it changed): the next drawing fetches it again.
export function forgetAvatar(user) {
  const url = urls.get(user);
  if (url) URL.revokeObjectURL(url);
  urls.delete(user);
}

// The picture's URL if it is here; starts fetching it if it is not.
export function avatarUrl(user, own = false) {
  if (urls.has(user)) return urls.get(user);
  if (!pending.has(user)) fetchAvatar(user, own);
  return null;
}

export function initials(name) {
  const words = name.replace(/^#/, '').split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[1]] : [words[0] || '?'];
  return letters.map((w) => [...w][0]).join('').toUpperCase().slice(0, 2);
}

// A round avatar for a conversation: a contact's picture, else initials
// (groups have initials only). Decorative: the name is next to it.
export function avatarNode(name, kind, own = false) {
  const url = kind === 'direct' ? avatarUrl(name, own) : null;
  const node = el('span', { class: 'avatar', 'aria-hidden': 'true', dataset: { user: name } });
  if (url) node.append(el('img', { src: url, alt: '' }));
  else node.append(initials(name));
  return node;
}

// Checks a picked avatar here first, for a clear message without a
// round trip (hush checks again, by the file's first bytes).
export function checkAvatar(file) {
  if (!AVATAR_TYPES.includes(file.type)) return 'An avatar is a PNG, JPEG or WebP picture.';
  if (file.size > MAX_AVATAR) {
    return `An avatar is at most ${MAX_AVATAR / 1024} KB (this one is ${Math.ceil(file.size / 1024)} KB).`;
  }
  return null;
}

// Sends the picture as this account's avatar.
export async function uploadAvatar(file) {
  const r = await fetch('/api/profile/avatar', {
    method: 'PUT', credentials: 'same-origin', body: file,
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
  });
  if (!r.ok) throw await failure(r);
}

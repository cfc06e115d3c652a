// The app: state, what events and the user do to it, and drawing it.
import { api, subscribe } from './api.js';
import { avatarNode, forgetAvatar, onAvatar } from './avatars.js';
import { channelIsOpen, channelPost, closeChannel, reloadChannels, wireChannels } from './channels.js';
import { fileNode, showPicture, upload, wireDrop } from './files.js';
import { groupChanged, showInfo, wireGroups } from './groups.js';
import { showForward, wirePolls } from './polls.js';
import { drawMute, notify, ownAvatarChanged, wireSettings } from './settings.js';
import { body, conversationItem, label, messageItem, timerName } from './view.js';

const $ = (id) => document.getElementById(id);

const TYPING_REFRESH = 3000; // resend "typing" this often while typing
const TYPING_IDLE = 5000; // "stopped" after this long without a key
const TYPING_SHOWN = 6000; // show someone typing this long

const state = {
  me: null,
  conversations: [],
  open: null, // { id } or { draftUser }
  messages: [], // oldest first
  more: false,
  typingSentAt: 0,
  typingTimer: null,
  typers: new Map(), // name -> until
  alarms: [],
  offline: null,
  replyTo: null, // the message the composer answers
  editing: null, // the message the composer edits
};

function openConv() {
  return state.open && state.open.id !== undefined
    ? state.conversations.find((c) => c.id === state.open.id)
    : null;
}

// ---- drawing ----

function drawList() {
  const list = $('conversations');
  const current = state.open?.id;
  list.replaceChildren(...state.conversations.map((c) => conversationItem(c, c.id === current,
    avatarNode(c.name, c.kind))));
  $('no-conversations').hidden = state.conversations.length > 0;
  const unread = state.conversations.reduce((n, c) => n + c.unread, 0);
  document.title = unread > 0 ? `(${unread}) Hush` : 'Hush';
}

function drawPane() {
  const conv = openConv();
  const draft = state.open?.draftUser;
  const on = Boolean(conv || draft);
  document.body.classList.toggle('open', on || channelIsOpen());
  $('title').textContent = conv ? label(conv) : draft || 'Choose a conversation';
  drawHeaderAvatar(conv, draft);
  $('subtitle').textContent = conv && conv.kind === 'group' ? conv.members.join(', ') : '';
  $('verify').hidden = !(conv && conv.kind === 'direct');
  $('members').hidden = !(conv && conv.kind === 'group');
  $('search-here').hidden = !conv;
  drawTimer(conv);
  drawMute(conv);
  $('composer').disabled = !on;
  $('send').disabled = !on;
  $('attach').disabled = !conv;
  $('poll').hidden = !(conv && conv.kind === 'group');
  $('older').hidden = !state.more;
}

// The open conversation's avatar in its header (initials without one).
function drawHeaderAvatar(conv, draft) {
  const name = conv?.name || draft;
  $('avatar').hidden = !name;
  if (!name) return;
  const node = avatarNode(name, conv ? conv.kind : 'direct');
  $('avatar').replaceChildren(...node.childNodes);
  $('avatar').dataset.user = name;
}

function drawMessages(stick) {
  const scroller = $('scroller');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const byId = new Map(state.messages.map((m) => [m.id, m]));
  $('messages').replaceChildren(...state.messages.map((m) => messageItem(m, byId.get(m.reply_to),
    fileNode(m))));
  $('older').hidden = !state.more;
  if (stick || atBottom) scroller.scrollTop = scroller.scrollHeight;
  scheduleExpiry();
}

const TIMERS = [30, 300, 3600, 86400, 604800];

function drawTimer(conv) {
  const select = $('timer');
  select.hidden = !conv;
  if (!conv) return;
  const secs = conv.disappear_secs || 0;
  const values = [0, ...TIMERS];
  if (!values.includes(secs)) values.push(secs);
  select.replaceChildren(...values.map((v) => {
    const o = document.createElement('option');
    o.value = String(v);
    o.textContent = v === 0 ? 'Disappearing: off' : `Disappearing: ${timerName(v)}`;
    return o;
  }));
  select.value = String(secs);
}

// Drops messages whose timer ran out (the hush process deletes them too).
let expiryTimer = null;
function scheduleExpiry() {
  clearTimeout(expiryTimer);
  const next = Math.min(...state.messages.map((m) => m.expires_at || Infinity));
  if (next === Infinity) return;
  const wait = Math.min(Math.max(0, next - Date.now()) + 50, 2 ** 30);
  expiryTimer = setTimeout(() => {
    const now = Date.now();
    const kept = state.messages.filter((m) => !m.expires_at || m.expires_at > now);
    if (kept.length === state.messages.length) {
      scheduleExpiry();
      return;
    }
    state.messages = kept;
    drawMessages(false);
    reloadListSoon();
  }, wait);
}

function drawContext() {
  const m = state.editing || state.replyTo;
  $('context').hidden = !m;
  if (!m) return;
  const who = m.outgoing ? 'yourself' : m.from;
  $('context-text').textContent = state.editing ? `Editing: ${body(m)}`
    : `Replying to ${who}: ${body(m)}`;
}

function clearContext() {
  const wasEditing = Boolean(state.editing);
  state.replyTo = null;
  state.editing = null;
  if (wasEditing) {
    $('composer').value = '';
    autosize();
  }
  drawContext();
}

function drawTyping() {
  const now = Date.now();
  const who = [...state.typers].filter(([, until]) => until > now).map(([n]) => n).sort();
  $('typing').textContent = who.length === 0 ? ''
    : who.length === 1 ? `${who[0]} is typing…` : `${who.join(', ')} are typing…`;
}

function drawBanner() {
  const b = $('banner');
  const text = state.alarms.length > 0 ? state.alarms.join('\n')
    : state.offline ? `Offline: ${state.offline}. Retrying…` : '';
  b.textContent = text;
  b.hidden = text === '';
  b.classList.toggle('offline', state.alarms.length === 0);
}

function fail(e) {
  state.alarms = [...state.alarms.filter((a) => !a.startsWith('Error:')), `Error: ${e.message}`];
  drawBanner();
  setTimeout(() => {
    state.alarms = state.alarms.filter((a) => a !== `Error: ${e.message}`);
    drawBanner();
  }, 8000);
}

// ---- loading ----

async function loadList() {
  state.conversations = await api.conversations();
  if (state.open?.id !== undefined && !openConv()) closeConv();
  drawList();
  drawPane();
}

let listTimer = null;
function reloadListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(() => loadList().catch(fail), 150);
}

async function loadOpen(stick) {
  const id = state.open?.id;
  if (id === undefined) return;
  const limit = Math.max(50, state.messages.length);
  const page = await api.history(id, null, Math.min(limit, 500));
  if (state.open?.id !== id) return;
  state.messages = page.messages;
  state.more = page.more;
  drawMessages(stick);
  await markReadIfSeen();
}

async function loadOlder() {
  const id = state.open?.id;
  if (id === undefined || state.messages.length === 0) return;
  const scroller = $('scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const page = await api.history(id, state.messages[0].id);
  if (state.open?.id !== id) return;
  state.messages = [...page.messages, ...state.messages];
  state.more = page.more;
  drawMessages(false);
  scroller.scrollTop = scroller.scrollHeight - fromBottom;
}

async function markReadIfSeen() {
  const conv = openConv();
  if (!conv || document.visibilityState !== 'visible') return;
  if (!state.messages.some((m) => m.status === 'received')) return;
  await api.markRead(conv.id);
  state.messages = state.messages.map((m) => (m.status === 'received' ? { ...m, status: 'read' } : m));
  conv.unread = 0;
  conv.unread_mentions = 0;
  drawList();
}

async function open(target) {
  closeChannel();
  stopTyping();
  state.open = target;
  state.replyTo = null;
  state.editing = null;
  drawContext();
  state.messages = [];
  state.more = false;
  state.typers.clear();
  drawTyping();
  drawList();
  drawPane();
  drawMessages(true);
  $('composer').focus();
  if (target.id !== undefined) await loadOpen(true);
}

function openUser(user) {
  const conv = state.conversations.find((c) => c.kind === 'direct' && c.name === user);
  return open(conv ? { id: conv.id } : { draftUser: user });
}

// ---- sending and typing ----

async function send() {
  const box = $('composer');
  const text = box.value.trim();
  if (!text || !state.open) return;
  if (state.editing) {
    await saveEdit(state.editing, text);
    return;
  }
  const to = state.open.id !== undefined ? { conversation: state.open.id }
    : { user: state.open.draftUser };
  const replyTo = state.replyTo?.id;
  box.value = '';
  autosize();
  stopTyping();
  clearContext();
  try {
    const m = await api.send(to, text, replyTo);
    if (state.open.draftUser) state.open = { id: m.conversation };
    addMessage(m);
    reloadListSoon();
  } catch (e) {
    box.value = text;
    autosize();
    fail(e);
  }
}

async function saveEdit(m, text) {
  try {
    await api.edit(m.id, text);
    changeMessage(m.id, { text, edited: true });
    clearContext();
    reloadListSoon();
  } catch (e) {
    fail(e);
  }
}

function changeMessage(id, change) {
  const i = state.messages.findIndex((x) => x.id === id);
  if (i < 0) return;
  state.messages[i] = { ...state.messages[i], ...change };
  drawMessages(false);
}

// Reply, Edit and Delete on a message.
function onMessageAction(e) {
  const button = e.target.closest('button[data-act]');
  if (!button) return;
  const id = button.closest('li.msg')?.dataset.id;
  const m = state.messages.find((x) => x.id === id);
  if (!m) return;
  const box = $('composer');
  if (button.dataset.act === 'reply') {
    state.editing = null;
    state.replyTo = m;
  } else if (button.dataset.act === 'edit') {
    state.replyTo = null;
    state.editing = m;
    box.value = m.text || '';
    autosize();
  } else if (button.dataset.act === 'delete') {
    askDelete(m);
    return;
  } else if (button.dataset.act === 'pin' || button.dataset.act === 'unpin') {
    const pinned = button.dataset.act === 'pin';
    api.pin(m.id, pinned).then(() => changeMessage(m.id, { pinned })).catch(fail);
    return;
  } else if (button.dataset.act === 'vote') {
    vote(m, Number(button.dataset.option));
    return;
  } else if (button.dataset.act === 'react') {
    react(m, button.dataset.emoji);
    return;
  } else if (button.dataset.act === 'forward') {
    showForward(ctx, m);
    return;
  } else if (button.dataset.act === 'info') {
    showInfo(ctx, m);
    return;
  } else if (button.dataset.act === 'picture') {
    showPicture(m);
    return;
  }
  drawContext();
  box.focus();
}

// Sets this account's reaction, or takes it back when it is the same.
async function react(m, emoji) {
  const mine = (m.reactions || []).find((r) => r.from === state.me.username);
  const next = mine?.emoji === emoji ? null : emoji;
  try {
    await api.react(m.id, next);
    reactionChanged({ id: m.id, from: state.me.username, emoji: next });
  } catch (e) {
    fail(e);
  }
}

// Votes for an option (alone, or added to the others where several are
// allowed); choosing a chosen option takes it away.
async function vote(m, option) {
  const me = state.me.username;
  const mine = m.poll.options.flatMap((o, i) => (o.voters.includes(me) ? [i] : []));
  let next;
  if (mine.includes(option)) next = mine.filter((i) => i !== option);
  else next = m.poll.multiple ? [...mine, option] : [option];
  try {
    await api.vote(m.id, next);
    voted({ id: m.id, from: me, options: next });
  } catch (e) {
    fail(e);
  }
}

function voted(ev) {
  const m = state.messages.find((x) => x.id === ev.id);
  if (!m || !m.poll) return;
  const options = m.poll.options.map((o, i) => {
    const voters = o.voters.filter((v) => v !== ev.from);
    if (ev.options.includes(i)) voters.push(ev.from);
    return { ...o, voters: voters.sort() };
  });
  changeMessage(ev.id, { poll: { ...m.poll, options } });
}

function reactionChanged(ev) {
  const m = state.messages.find((x) => x.id === ev.id);
  if (!m) return;
  const others = (m.reactions || []).filter((r) => r.from !== ev.from);
  const reactions = ev.emoji ? [...others, { from: ev.from, emoji: ev.emoji }] : others;
  reactions.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  changeMessage(ev.id, { reactions });
}

function askDelete(m) {
  const dialog = $('delete-dialog');
  $('delete-text').textContent = body(m);
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'delete') return;
    try {
      await api.remove(m.id);
      changeMessage(m.id, { deleted: true, text: null });
      reloadListSoon();
    } catch (e) {
      fail(e);
    }
  };
  dialog.showModal();
}

// ---- files ----

let uploadToken = null;

function drawProgress(name, fraction) {
  $('upload').hidden = name === null;
  if (name === null) return;
  $('upload-label').textContent = `Sending ${name}…`;
  $('upload-bar').value = fraction;
}

async function sendFiles(files) {
  const conv = openConv();
  if (!conv) return;
  for (const file of files) {
    uploadToken = crypto.randomUUID();
    drawProgress(file.name, 0);
    try {
      const m = await upload(conv.id, file, uploadToken, (f) => drawProgress(file.name, f));
      addMessage(m);
      reloadListSoon();
    } catch (e) {
      fail(e);
    }
  }
  uploadToken = null;
  drawProgress(null);
}

async function setTimer() {
  const conv = openConv();
  if (!conv) return;
  const secs = Number($('timer').value) || null;
  try {
    await api.setTimer(conv.id, secs);
    conv.disappear_secs = secs;
  } catch (e) {
    fail(e);
  }
  drawTimer(conv);
}

function addMessage(m) {
  if (state.open?.id !== m.conversation) return false;
  const i = state.messages.findIndex((x) => x.id === m.id);
  if (i >= 0) state.messages[i] = m;
  else state.messages.push(m);
  drawMessages(m.outgoing);
  return true;
}

function typed() {
  autosize();
  const id = state.open?.id;
  if (id === undefined) return;
  const now = Date.now();
  if ($('composer').value === '') {
    stopTyping();
    return;
  }
  if (now - state.typingSentAt > TYPING_REFRESH) {
    state.typingSentAt = now;
    api.typing(id, true).catch(() => {});
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  const id = state.open?.id;
  if (state.typingSentAt && id !== undefined) api.typing(id, false).catch(() => {});
  state.typingSentAt = 0;
}

function autosize() {
  const box = $('composer');
  box.style.height = 'auto';
  box.style.height = `${box.scrollHeight + 2}px`;
}

// ---- events ----

function onEvent(name, ev) {
  switch (name) {
    case 'message':
      if (addMessage(ev) && !ev.outgoing) markReadIfSeen().catch(fail);
      notify(ctx, ev);
      state.typers.delete(ev.from);
      drawTyping();
      reloadListSoon();
      break;
    case 'receipt':
      if (state.messages.some((m) => ev.ids.includes(m.id))) loadOpen(false).catch(fail);
      break;
    case 'typing':
      if (ev.conversation === state.open?.id && ev.from !== state.me.username) {
        if (ev.started) state.typers.set(ev.from, Date.now() + TYPING_SHOWN);
        else state.typers.delete(ev.from);
        drawTyping();
        setTimeout(drawTyping, TYPING_SHOWN + 50);
      }
      break;
    case 'key_changed':
      state.alarms.push(`SECURITY: the identity key of ${ev.username} has changed. `
        + 'Verify their safety number before trusting new messages.');
      drawBanner();
      reloadListSoon();
      break;
    case 'key_transparency_alarm':
    case 'security_alarm':
      state.alarms.push(ev.message);
      drawBanner();
      break;
    case 'connection':
      state.offline = ev.online ? null : ev.error || 'the server cannot be reached';
      drawBanner();
      break;
    case 'presence':
      break;
    case 'profile':
      forgetAvatar(ev.username);
      if (ev.username === state.me.username) ownAvatarChanged(ctx);
      else {
        drawList();
        drawPane();
      }
      break;
    case 'progress':
      if (ev.upload === uploadToken && ev.total > 0) {
        $('upload-bar').value = 0.5 + 0.5 * (ev.done / ev.total);
      }
      break;
    case 'edited':
      changeMessage(ev.id, { text: ev.text, edited: true });
      reloadListSoon();
      break;
    case 'reaction':
      reactionChanged(ev);
      break;
    case 'voted':
      voted(ev);
      break;
    case 'pinned':
      changeMessage(ev.id, { pinned: ev.pinned });
      break;
    case 'deleted':
      changeMessage(ev.id, { deleted: true, text: null });
      reloadListSoon();
      break;
    case 'disappearing': {
      const conv = state.conversations.find((c) => c.id === ev.conversation);
      if (conv) conv.disappear_secs = ev.seconds;
      drawPane();
      break;
    }
    case 'channel_post':
      channelPost(ctx, ev);
      break;
    case 'members':
    case 'renamed':
    case 'removed':
      loadList().then(() => groupChanged(ctx)).catch(fail);
      break;
    default: // joined, read_elsewhere, synced, lagged
      reloadListSoon();
      loadOpen(false).catch(fail);
  }
}

// ---- verification ----

async function showVerify() {
  const conv = openConv();
  if (!conv || conv.kind !== 'direct') return;
  const dialog = $('verify-dialog');
  $('verify-user').textContent = conv.name;
  $('verify-digits').textContent = '…';
  $('verify-state').textContent = '';
  $('verify-qr').hidden = true;
  dialog.showModal();
  try {
    const [n, contacts] = await Promise.all([api.safetyNumber(conv.name), api.contacts()]);
    $('verify-digits').textContent = n.groups.join(' ');
    $('verify-digits').dataset.digits = n.digits;
    showQr(n.qr_svg);
    const c = contacts.find((x) => x.username === conv.name);
    $('verify-state').textContent = c?.verified ? 'Verified.'
      : c?.key_changed ? 'Their key changed since you first talked: compare again.' : 'Not verified yet.';
  } catch (e) {
    $('verify-state').textContent = e.message;
  }
}

// The safety number's QR code (an SVG the hush process drew), shown from a
// blob: URL so that no markup of it enters the page.
function showQr(svg) {
  const img = $('verify-qr');
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  img.hidden = false;
}

async function markVerified() {
  const conv = openConv();
  if (!conv) return;
  try {
    await api.verify(conv.name, $('verify-digits').dataset.digits || '');
    $('verify-state').textContent = 'Verified.';
  } catch (e) {
    $('verify-state').textContent = e.message;
  }
}

function closeConv() {
  stopTyping();
  state.open = null;
  state.messages = [];
  drawMessages(false);
  drawList();
  drawPane();
}

// Opens conversation `id` and, if given, shows message `messageId` (older
// pages are loaded until it is there).
async function openAt(id, messageId) {
  if (state.open?.id !== id) await open({ id });
  for (let i = 0; messageId && i < 200; i++) {
    if (state.messages.some((m) => m.id === messageId) || !state.more) break;
    await loadOlder();
  }
  const li = messageId && [...$('messages').children].find((x) => x.dataset.id === messageId);
  if (!li) return;
  li.classList.add('found');
  li.scrollIntoView({ block: 'center' });
  li.tabIndex = -1;
  li.focus();
  setTimeout(() => li.classList.remove('found'), 3000);
}

// What the feature modules reach of the app.
const ctx = {
  state,
  fail,
  openConv,
  reload: () => loadList().catch(fail),
  addMessage: (m) => addMessage(m),
  close: () => closeConv(),
  openAt: (id, messageId) => openAt(id, messageId).catch(fail),
};

// ---- wiring ----

function wire() {
  $('conversations').addEventListener('click', (e) => {
    const b = e.target.closest('button.conv');
    if (b) open({ id: Number(b.dataset.id) }).catch(fail);
  });
  $('new-chat').addEventListener('submit', (e) => {
    e.preventDefault();
    const user = $('new-chat-user').value.trim();
    if (!user) return;
    $('new-chat-user').value = '';
    openUser(user).catch(fail);
  });
  $('new-group-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('new-group-name').value.trim();
    const members = $('new-group-members').value.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      const conv = await api.createGroup(name, members);
      $('new-group-form').reset();
      $('new-group').open = false;
      await loadList();
      await open({ id: conv.id });
    } catch (err) {
      fail(err);
    }
  });
  const box = $('composer');
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === 'Escape' && (state.replyTo || state.editing)) {
      e.preventDefault();
      clearContext();
    }
  });
  box.addEventListener('input', typed);
  $('composer-form').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('older').addEventListener('click', () => loadOlder().catch(fail));
  $('messages').addEventListener('click', onMessageAction);
  $('context-cancel').addEventListener('click', () => {
    clearContext();
    $('composer').focus();
  });
  $('timer').addEventListener('change', () => setTimer());
  $('attach').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', () => {
    const files = [...$('file').files];
    $('file').value = '';
    sendFiles(files);
  });
  $('back').addEventListener('click', () => {
    stopTyping();
    state.open = null;
    drawList();
    drawPane();
    $('new-chat-user').focus();
  });
  wireDrop($('pane'), $('drop'), () => Boolean(openConv()), (files) => sendFiles(files));
  onAvatar(() => {
    drawList();
    drawHeaderAvatar(openConv(), state.open?.draftUser);
  });
  wireGroups(ctx);
  wirePolls(ctx);
  wireSettings(ctx);
  wireChannels(ctx);
  $('verify').addEventListener('click', () => showVerify());
  $('verify-mark').addEventListener('click', () => markVerified());
  document.addEventListener('visibilitychange', () => markReadIfSeen().catch(fail));
}

async function start() {
  wire();
  state.me = await api.me();
  $('me').textContent = state.me.username;
  document.body.dataset.ready = 'true';
  subscribe(onEvent, () => {
    loadList().then(() => loadOpen(false)).catch(fail);
    reloadChannels(ctx);
  });
  await loadList();
}

start().catch(fail);

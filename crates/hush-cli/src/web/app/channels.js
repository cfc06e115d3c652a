// Channels (decision 0038): the list under the conversations, a channel's
// posts (newest at the bottom; files and pictures shown as in
// conversations), posting text and files on the owner's device, its link,
// joining by a pasted link (a group's invite link too), leaving. New posts
// arrive as `channel_post` events. `ctx` is the app: { state, fail, close }.
import { api } from './api.js';
import { fileNode, showPicture, uploadTo } from './files.js';
import { el, when } from './view.js';

const $ = (id) => document.getElementById(id);

const cs = {
  list: [], // { name, owner, epoch, posts }
  open: null, // the open channel's name
  posts: [], // the open channel's, oldest first
  more: false,
  unread: new Map(), // name -> posts arrived while it was not open
};

function openChannel() {
  return cs.open === null ? null : cs.list.find((c) => c.name === cs.open) || null;
}

// ---- drawing ----

function channelItem(c) {
  const unread = cs.unread.get(c.name) || 0;
  const role = c.owner ? 'Yours' : 'Following';
  return el('li', {},
    el('button', {
      type: 'button', class: 'chan', dataset: { name: c.name },
      'aria-current': String(c.name === cs.open),
    },
    el('span', { class: 'conv-name' }, `~${c.name}`),
    unread > 0 ? el('span', { class: 'unread', 'aria-label': `${unread} new` }, String(unread))
      : el('span'),
    el('span', { class: 'conv-last' }, `${role} · ${c.posts} post${c.posts === 1 ? '' : 's'}`)));
}

function drawList() {
  $('channels').replaceChildren(...cs.list.map(channelItem));
  $('no-channels').hidden = cs.list.length > 0;
}

// Where a post's file is served.
function postFileUrl(channel) {
  const base = `/api/channels/${encodeURIComponent(channel)}/posts`;
  return (id, download = false) =>
    `${base}/${encodeURIComponent(id)}/file${download ? '?download=true' : ''}`;
}

// A file post as a file message, for files.js.
function asMessage(p) {
  return { kind: 'file', deleted: false, id: p.id, file_name: p.file, size: p.size, media_type: p.media_type };
}

function postItem(p, owner) {
  const file = p.file ? fileNode(asMessage(p), postFileUrl(p.channel)) : null;
  return el('li', { class: owner ? 'msg out' : 'msg in', dataset: { id: p.id } },
    file,
    p.text ? el('div', { class: 'text' }, p.text) : null,
    el('div', { class: 'meta' }, when(p.sent_at)));
}

function drawPosts(stick) {
  const scroller = $('channel-scroller');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const owner = Boolean(openChannel()?.owner);
  $('channel-posts').replaceChildren(...cs.posts.map((p) => postItem(p, owner)));
  $('channel-more').hidden = !cs.more;
  $('channel-empty').hidden = cs.posts.length > 0;
  if (stick || atBottom) scroller.scrollTop = scroller.scrollHeight;
}

function drawPane() {
  const c = openChannel();
  $('channel-pane').hidden = !c;
  if (!c) return;
  $('pane').hidden = true;
  document.body.classList.add('open');
  $('channel-title').textContent = `~${c.name}`;
  $('channel-role').textContent = c.owner
    ? 'Your channel: you post, whoever holds its link reads'
    : 'Following: only its owner posts';
  $('channel-copy').hidden = !c.owner;
  $('channel-composer-form').hidden = !c.owner;
}

// ---- loading ----

async function loadList() {
  cs.list = await api.channels();
  for (const name of [...cs.unread.keys()]) {
    if (!cs.list.some((c) => c.name === name)) cs.unread.delete(name);
  }
  if (cs.open !== null && !openChannel()) closeChannel();
  drawList();
  drawPane();
}

async function loadPosts(stick) {
  const name = cs.open;
  if (name === null) return;
  const page = await api.channelPosts(name);
  if (cs.open !== name) return;
  cs.posts = page.posts;
  cs.more = page.more;
  drawPosts(stick);
}

async function show(name, ctx) {
  ctx.close();
  cs.open = name;
  cs.posts = [];
  cs.more = false;
  cs.unread.delete(name);
  drawList();
  drawPane();
  drawPosts(true);
  await loadPosts(true);
  if (openChannel()?.owner) $('channel-composer').focus();
}

export function channelIsOpen() {
  return cs.open !== null;
}

// Closes the channel pane (a conversation is opened, or the channel is gone).
export function closeChannel() {
  if (cs.open === null) return;
  cs.open = null;
  cs.posts = [];
  $('channel-pane').hidden = true;
  $('pane').hidden = false;
  drawList();
}

// ---- what the user and the events do ----

function addPost(p) {
  if (cs.posts.some((x) => x.id === p.id)) return;
  cs.posts.push(p);
  cs.posts.sort((a, b) => a.number - b.number);
  drawPosts(false);
}

// A `channel_post` event: shown if the channel is open, else counted.
export function channelPost(ctx, p) {
  const c = cs.list.find((x) => x.name === p.channel);
  if (p.channel === cs.open) {
    const fresh = !cs.posts.some((x) => x.id === p.id);
    addPost(p);
    if (c && fresh) c.posts += 1;
  } else if (c) {
    cs.unread.set(p.channel, (cs.unread.get(p.channel) || 0) + 1);
    c.posts += 1;
  }
  if (!c) loadList().catch(ctx.fail);
  drawList();
}

async function post(ctx) {
  const box = $('channel-composer');
  const text = box.value.trim();
  const name = cs.open;
  if (!text || name === null) return;
  box.value = '';
  try {
    channelPost(ctx, await api.postToChannel(name, text));
    drawPosts(true);
  } catch (e) {
    box.value = text;
    ctx.fail(e);
  }
}

// Posts the picked file, with the composer's text as its caption.
async function postFile(ctx, file) {
  const name = cs.open;
  if (!file || name === null) return;
  const box = $('channel-composer');
  const caption = box.value.trim();
  const state = $('channel-upload');
  state.hidden = false;
  state.textContent = `Posting ${file.name}…`;
  const params = { upload: crypto.randomUUID() };
  if (caption) params.caption = caption;
  try {
    const path = `/api/channels/${encodeURIComponent(name)}/files`;
    channelPost(ctx, await uploadTo(path, file, params, () => {}));
    box.value = '';
    drawPosts(true);
  } catch (e) {
    ctx.fail(e);
  }
  state.hidden = true;
}

async function showLink(name, fresh) {
  $('channel-link').value = '';
  $('channel-link-state').textContent = fresh ? 'Channel created. Share this link with its readers.' : '';
  $('channel-link-dialog').showModal();
  try {
    const { link } = await api.channelLink(name);
    $('channel-link').value = link;
    $('channel-link').select();
    await navigator.clipboard.writeText(link);
    $('channel-link-state').textContent = fresh ? 'Channel created; its link is copied.' : 'Copied.';
  } catch (e) {
    if (!$('channel-link').value) $('channel-link-state').textContent = e.message;
    // Else the clipboard refused: the link is selected, to copy by hand.
  }
}

async function create(ctx) {
  const name = $('channel-new-name').value.trim();
  if (!name) return;
  $('channel-new-state').textContent = 'Creating…';
  try {
    await api.createChannel(name);
  } catch (e) {
    $('channel-new-state').textContent = e.message;
    return;
  }
  $('channel-new-form').reset();
  $('channel-new-dialog').close();
  await loadList();
  await show(name, ctx);
  await showLink(name, true);
}

// Joins by a channel's link or a group's invite link.
async function join(ctx) {
  const link = $('channel-join-link').value.trim();
  if (!link) return;
  $('channel-join-state').textContent = 'Joining…';
  let joined;
  try {
    joined = await api.join(link);
  } catch (e) {
    $('channel-join-state').textContent = e.message;
    return;
  }
  $('channel-join-form').reset();
  if (joined.kind === 'group') {
    const members = `${joined.size} member${joined.size === 1 ? '' : 's'}`;
    $('channel-join-state').textContent = joined.needs_approval
      ? `Asked to join “${joined.group}” (${members}): an admin approves the request, then it appears with your conversations.`
      : `Asked to join “${joined.group}” (${members}): it appears with your conversations once an admin's device is online.`;
    return;
  }
  $('channel-join-dialog').close();
  await loadList();
  await show(joined.channel, ctx);
}

function askLeave(ctx) {
  const c = openChannel();
  if (!c) return;
  const dialog = $('channel-leave-dialog');
  $('channel-leave-text').textContent = c.owner
    ? `~${c.name} is yours: leaving forgets its owner key, and nobody can post to it any more.`
    : `Its posts are forgotten on this device; you can join again with its link.`;
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'leave') return;
    try {
      await api.leaveChannel(c.name);
      cs.unread.delete(c.name);
      closeChannel();
      document.body.classList.remove('open');
      await loadList();
    } catch (e) {
      ctx.fail(e);
    }
  };
  dialog.showModal();
}

// Reloads the list and the open channel (after the event stream reconnects).
export function reloadChannels(ctx) {
  loadList().then(() => loadPosts(false)).catch(ctx.fail);
}

export function wireChannels(ctx) {
  $('channels').addEventListener('click', (e) => {
    const b = e.target.closest('button.chan');
    if (b) show(b.dataset.name, ctx).catch(ctx.fail);
  });
  $('channel-new').addEventListener('click', () => {
    $('channel-new-state').textContent = '';
    $('channel-new-dialog').showModal();
  });
  $('channel-join').addEventListener('click', () => {
    $('channel-join-state').textContent = '';
    $('channel-join-dialog').showModal();
  });
  $('channel-new-form').addEventListener('submit', (e) => {
    e.preventDefault();
    create(ctx).catch(ctx.fail);
  });
  $('channel-join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join(ctx).catch(ctx.fail);
  });
  $('channel-composer').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      post(ctx);
    }
  });
  $('channel-composer-form').addEventListener('submit', (e) => {
    e.preventDefault();
    post(ctx);
  });
  $('channel-attach').addEventListener('click', () => $('channel-file').click());
  $('channel-file').addEventListener('change', () => {
    const [file] = $('channel-file').files;
    $('channel-file').value = '';
    postFile(ctx, file);
  });
  $('channel-posts').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-act="picture"]');
    const p = b && cs.posts.find((x) => x.id === b.closest('li').dataset.id);
    if (p) showPicture(asMessage(p), postFileUrl(p.channel));
  });
  $('channel-copy').addEventListener('click', () => {
    if (cs.open !== null) showLink(cs.open, false);
  });
  // The link was selected in the dialog: the caret goes back to the
  // composer (Chromium leaves typing in the closed dialog's field otherwise).
  $('channel-link-dialog').addEventListener('close', () => {
    $('channel-link').setSelectionRange(0, 0);
    if ($('channel-composer-form').hidden) return;
    $('channel-composer').blur();
    $('channel-composer').focus();
  });
  $('channel-leave').addEventListener('click', () => askLeave(ctx));
  $('channel-back').addEventListener('click', () => {
    closeChannel();
    document.body.classList.remove('open');
  });
  loadList().catch(ctx.fail);
}

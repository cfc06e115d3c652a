// Group management (members, name, leaving) and who received and read a
// message, per member. `ctx` is the app: { state, openConv, reload, close,
// fail }.
import { api } from './api.js';
import { el } from './view.js';

const $ = (id) => document.getElementById(id);

function drawMembers(ctx) {
  const conv = ctx.openConv();
  if (!conv || conv.kind !== 'group') return;
  $('group-title').textContent = `#${conv.name}`;
  $('group-rename').value = conv.name;
  const me = ctx.state.me.username;
  $('group-members').replaceChildren(...conv.members.map((u) => el('li', {},
    el('span', {}, u === me ? `${u} (you)` : u),
    u === me ? null : el('button', {
      type: 'button', class: 'act', dataset: { remove: u }, 'aria-label': `Remove ${u}`,
    }, 'Remove'))));
}

async function run(ctx, f) {
  $('group-state').textContent = 'Working…';
  try {
    await f();
    $('group-state').textContent = '';
  } catch (e) {
    $('group-state').textContent = e.message;
    return;
  }
  await ctx.reload();
  drawMembers(ctx);
}

export function showGroup(ctx) {
  $('group-state').textContent = '';
  drawMembers(ctx);
  $('group-dialog').showModal();
}

// Who of the group has the message and who read it.
export function showInfo(ctx, m) {
  const conv = ctx.openConv();
  const me = ctx.state.me.username;
  const others = (conv?.members || []).filter((u) => u !== me);
  const r = m.receipts || { delivered_to: [], read_by: [] };
  const who = [...new Set([...others, ...r.delivered_to])].sort();
  $('info-text').textContent = m.text || m.file_name || '';
  $('info-members').replaceChildren(...who.map((u) => {
    const state = r.read_by.includes(u) ? 'read' : r.delivered_to.includes(u) ? 'delivered' : 'not yet';
    return el('li', { dataset: { member: u, state } }, `${u}: ${state}`);
  }));
  $('info-dialog').showModal();
}

export function wireGroups(ctx) {
  $('members').addEventListener('click', () => showGroup(ctx));
  $('group-rename-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const conv = ctx.openConv();
    const name = $('group-rename').value.trim();
    if (conv && name && name !== conv.name) run(ctx, () => api.renameGroup(conv.id, name));
  });
  $('group-add-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const conv = ctx.openConv();
    const user = $('group-add').value.trim();
    if (!conv || !user) return;
    $('group-add').value = '';
    run(ctx, () => api.addMember(conv.id, user));
  });
  $('group-members').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-remove]');
    const conv = ctx.openConv();
    if (b && conv) run(ctx, () => api.removeMember(conv.id, b.dataset.remove));
  });
  $('group-leave').addEventListener('click', async () => {
    const conv = ctx.openConv();
    if (!conv) return;
    try {
      await api.leaveGroup(conv.id);
      $('group-dialog').close();
      ctx.close();
      await ctx.reload();
    } catch (e) {
      $('group-state').textContent = e.message;
    }
  });
}

// Redraws an open members dialog after a change from elsewhere.
export function groupChanged(ctx) {
  if ($('group-dialog').open) drawMembers(ctx);
}

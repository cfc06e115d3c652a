// Polls (asking a group: question, 2 to 12 options, one answer or
// several) and forwarding a message to another conversation. Voting is
// on the poll itself (app.js). `ctx` is the app: { state, openConv,
// reload, addMessage }.
import { api } from './api.js';
import { body, el, label } from './view.js';

const $ = (id) => document.getElementById(id);
const MIN_OPTIONS = 2;
const MAX_OPTIONS = 12;

// ---- polls ----

function optionInput(n) {
  return el('input', {
    class: 'poll-option', autocomplete: 'off', maxLength: 255,
    placeholder: `Option ${n}`, 'aria-label': `Option ${n}`,
  });
}

function options() {
  return [...document.querySelectorAll('#poll-options input')];
}

export function showPollForm() {
  $('poll-form').reset();
  $('poll-options').replaceChildren(...[1, 2, 3].map(optionInput));
  $('poll-more').hidden = false;
  $('poll-state').textContent = '';
  $('poll-dialog').showModal();
  $('poll-question').focus();
}

function addOption() {
  const n = options().length;
  if (n >= MAX_OPTIONS) return;
  const input = optionInput(n + 1);
  $('poll-options').append(input);
  $('poll-more').hidden = n + 1 >= MAX_OPTIONS;
  input.focus();
}

async function sendPoll(ctx) {
  const conv = ctx.openConv();
  if (!conv) return;
  const question = $('poll-question').value.trim();
  const answers = options().map((i) => i.value.trim()).filter(Boolean);
  if (answers.length < MIN_OPTIONS) {
    $('poll-state').textContent = `A poll needs at least ${MIN_OPTIONS} options.`;
    return;
  }
  $('poll-state').textContent = 'Sending…';
  try {
    const m = await api.createPoll(conv.id, question, answers, $('poll-multiple').checked);
    $('poll-dialog').close();
    ctx.addMessage(m);
    ctx.reload();
  } catch (e) {
    $('poll-state').textContent = e.message;
  }
}

// ---- forwarding ----

let forwarding = null; // the message being forwarded

export function showForward(ctx, m) {
  forwarding = m;
  $('forward-text').textContent = body(m);
  $('forward-state').textContent = '';
  $('forward-targets').replaceChildren(...ctx.state.conversations.map((c) => el('li', {},
    el('button', {
      type: 'button', class: 'target', dataset: { conv: String(c.id), name: c.name },
      'aria-label': `Forward to ${label(c)}`,
    }, label(c)))));
  $('forward-dialog').showModal();
}

async function forwardTo(ctx, button) {
  const m = forwarding;
  if (!m) return;
  const id = Number(button.dataset.conv);
  $('forward-state').textContent = 'Forwarding…';
  try {
    const sent = await api.forward(m.id, id);
    ctx.addMessage(sent);
    ctx.reload();
    $('forward-state').textContent = `Forwarded to ${button.textContent}.`;
  } catch (e) {
    $('forward-state').textContent = e.message;
  }
}

export function wirePolls(ctx) {
  $('poll').addEventListener('click', () => showPollForm());
  $('poll-more').addEventListener('click', () => addOption());
  $('poll-cancel').addEventListener('click', () => $('poll-dialog').close());
  $('poll-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sendPoll(ctx);
  });
  $('forward-targets').addEventListener('click', (e) => {
    const b = e.target.closest('button.target');
    if (b) forwardTo(ctx, b);
  });
}

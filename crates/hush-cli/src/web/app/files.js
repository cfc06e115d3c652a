// Files: sending with a progress bar, pictures shown as thumbnails made
// here (the hush process decrypts, the browser decodes and scales), and
// downloads. Every request goes to this app's own API, under its session.

const PICTURES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const THUMB_W = 320;
const THUMB_H = 240;
// Thumbnails, kept across redraws (each picture is fetched once a page).
const thumbs = new Map();

export function fileUrl(id, download = false) {
  return `/api/messages/${encodeURIComponent(id)}/file${download ? '?download=true' : ''}`;
}

export function isPicture(m) {
  return m.kind === 'file' && !m.deleted && PICTURES.includes(m.media_type);
}

export function sizeText(n) {
  if (n == null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function drawThumb(url, canvas) {
  const r = await fetch(url, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${r.status}`);
  const full = await createImageBitmap(await r.blob());
  const scale = Math.min(1, THUMB_W / full.width, THUMB_H / full.height);
  canvas.width = Math.max(1, Math.round(full.width * scale));
  canvas.height = Math.max(1, Math.round(full.height * scale));
  canvas.getContext('2d').drawImage(full, 0, 0, canvas.width, canvas.height);
  full.close();
  canvas.dataset.ready = 'true';
}

// The thumbnail of a picture: a canvas, filled when fetched (kept per URL).
function thumbnail(url) {
  let canvas = thumbs.get(url);
  if (!canvas) {
    canvas = document.createElement('canvas');
    canvas.className = 'thumb';
    canvas.width = 1;
    canvas.height = 1;
    thumbs.set(url, canvas);
    drawThumb(url, canvas).catch(() => {
      canvas.dataset.failed = 'true';
    });
  }
  return canvas;
}

// What a file message shows: a picture's thumbnail (a button that opens
// it whole) or a download link. `urlOf(id, download)` is where its file
// is served (a channel post's elsewhere than a message's).
export function fileNode(m, urlOf = fileUrl) {
  if (m.kind !== 'file' || m.deleted) return null;
  const name = m.file_name || 'file';
  if (isPicture(m)) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'picture';
    b.dataset.act = 'picture';
    b.setAttribute('aria-label', `Open picture ${name}`);
    b.append(thumbnail(urlOf(m.id)));
    return b;
  }
  const a = document.createElement('a');
  a.className = 'file';
  a.href = urlOf(m.id, true);
  a.download = name;
  a.textContent = `📎 ${name} (${sizeText(m.size)})`;
  a.setAttribute('aria-label', `Download ${name}, ${sizeText(m.size)}`);
  return a;
}

// Opens a picture whole in the picture dialog.
export function showPicture(m, urlOf = fileUrl) {
  const $ = (id) => document.getElementById(id);
  $('picture-title').textContent = m.file_name || 'Picture';
  $('picture-full').src = urlOf(m.id);
  $('picture-full').alt = m.file_name || 'Picture';
  $('picture-download').href = urlOf(m.id, true);
  $('picture-download').download = m.file_name || 'picture';
  $('picture-dialog').showModal();
}

export function forget(id) {
  thumbs.delete(fileUrl(id));
}

// Uploads `file` to conversation `conv`; `onProgress(fraction)` as it goes:
// the first half is the browser handing it to hush, the second hush
// encrypting and uploading it (reported on the event stream as `progress`
// with this upload's token, see watchProgress).
export function upload(conv, file, token, onProgress) {
  return uploadTo(`/api/conversations/${conv}/files`, file, { upload: token }, onProgress);
}

// Uploads `file` to the API's `path` with the query `params` besides its name.
export function uploadTo(path, file, params, onProgress) {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams({ ...params, name: file.name });
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${path}?${q}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(0.5 * (e.loaded / e.total));
    };
    xhr.onload = () => {
      let v = null;
      try {
        v = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status === 200) resolve(v);
      else reject(new Error((v && v.error) || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error('the upload failed'));
    xhr.send(file);
  });
}

// Files dragged from the desktop onto `zone` go to `onFiles` (the same
// path as the Attach button) while `enabled()`; `overlay` shows meanwhile.
// A file dropped anywhere else is ignored rather than opened by the
// browser in place of the app.
export function wireDrop(zone, overlay, enabled, onFiles) {
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  const hide = () => {
    depth = 0;
    overlay.hidden = true;
  };
  zone.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || !enabled()) return;
    e.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  zone.addEventListener('dragover', (e) => {
    if (!hasFiles(e) || !enabled()) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  zone.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  zone.addEventListener('drop', (e) => {
    hide();
    if (!hasFiles(e) || !enabled()) return;
    e.preventDefault();
    e.stopPropagation();
    onFiles([...e.dataTransfer.files]);
  });
  for (const name of ['dragover', 'drop']) {
    window.addEventListener(name, (e) => {
      if (hasFiles(e)) e.preventDefault();
    });
  }
  window.addEventListener('dragend', hide);
}

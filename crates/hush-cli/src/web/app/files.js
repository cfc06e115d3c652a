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

async function drawThumb(m, canvas) {
  const r = await fetch(fileUrl(m.id), { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${r.status}`);
  const full = await createImageBitmap(await r.blob());
  const scale = Math.min(1, THUMB_W / full.width, THUMB_H / full.height);
  canvas.width = Math.max(1, Math.round(full.width * scale));
  canvas.height = Math.max(1, Math.round(full.height * scale));
  canvas.getContext('2d').drawImage(full, 0, 0, canvas.width, canvas.height);
  full.close();
  canvas.dataset.ready = 'true';
}

// The thumbnail of a picture message: a canvas, filled when fetched.
function thumbnail(m) {
  let canvas = thumbs.get(m.id);
  if (!canvas) {
    canvas = document.createElement('canvas');
    canvas.className = 'thumb';
    canvas.width = 1;
    canvas.height = 1;
    thumbs.set(m.id, canvas);
    drawThumb(m, canvas).catch(() => {
      canvas.dataset.failed = 'true';
    });
  }
  return canvas;
}

// What a file message shows: a picture's thumbnail (a button that opens
// it whole) or a download link.
export function fileNode(m) {
  if (m.kind !== 'file' || m.deleted) return null;
  const name = m.file_name || 'file';
  if (isPicture(m)) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'picture';
    b.dataset.act = 'picture';
    b.setAttribute('aria-label', `Open picture ${name}`);
    b.append(thumbnail(m));
    return b;
  }
  const a = document.createElement('a');
  a.className = 'file';
  a.href = fileUrl(m.id, true);
  a.download = name;
  a.textContent = `📎 ${name} (${sizeText(m.size)})`;
  a.setAttribute('aria-label', `Download ${name}, ${sizeText(m.size)}`);
  return a;
}

export function forget(id) {
  thumbs.delete(id);
}

// Uploads `file` to conversation `conv`; `onProgress(fraction)` as it goes:
// the first half is the browser handing it to hush, the second hush
// encrypting and uploading it (reported on the event stream as `progress`
// with this upload's token, see watchProgress).
export function upload(conv, file, token, onProgress) {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams({ name: file.name, upload: token });
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/conversations/${conv}/files?${q}`);
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

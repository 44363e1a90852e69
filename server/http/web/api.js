// The web console's calls to trainerd's JSON API (docs/web-console.md): each with the
// signed-in user's token as "Authorization: Bearer"; a 401 signs the page out (app.js).
// Follows are server-sent events read with fetch(), since EventSource cannot send the
// Authorization header.
'use strict';

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.status;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token()}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: 'no-store' }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (response.status === 401) signOut(error.message);
    throw error;
  }
  return body;
}

// Reads server-sent events from `path` until the stream ends or `signal` aborts;
// onEvent(name, data, id) for each. Resolves when the stream ends.
async function followEvents(path, signal, onEvent) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` }, signal, cache: 'no-store' });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (response.status === 401) signOut(body && body.message);
    throw new ApiError(response.status, body);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message', data = '', id = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
        else if (line.startsWith('id: ')) id = line.slice(4);
      }
      if (data) onEvent(name, JSON.parse(data), id);
    }
  }
}

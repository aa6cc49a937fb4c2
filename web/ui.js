// ngx_chat web client: building and updating the DOM (no logic of the
// chat itself).  Every element a test drives carries the data-test hook of
// docs/WEB.md.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) {
            continue;
        }
        if (k === 'test') {
            e.dataset.test = v;
        } else if (k === 'class') {
            e.className = v;
        } else if (k.startsWith('on')) {
            e.addEventListener(k.slice(2), v);
        } else {
            e.setAttribute(k, v);
        }
    }
    for (const c of children) {
        if (c !== null && c !== undefined) {
            e.append(c);
        }
    }
    return e;
}


// --- the error banner -------------------------------------------------------

let bannerTimer = null;

export function showError(text) {
    $('banner-text').textContent = text;
    $('banner').hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(() => { $('banner').hidden = true; }, 8000);
    console.warn('ngx_chat:', text);
}

export function hideError() {
    $('banner').hidden = true;
}


// --- times and presence -----------------------------------------------------

export function clock(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
}

export function lastSeen(p) {
    if (p && p.online) {
        return 'online';
    }
    if (!p || !p.last_seen) {
        return 'last seen: never';
    }
    const d = new Date(p.last_seen);
    const today = new Date().toDateString() === d.toDateString();
    return 'last seen ' + (today ? 'today at ' + clock(p.last_seen)
                                 : d.toLocaleString());
}

export function presenceDot(p) {
    return el('span', {class: 'dot ' + (p && p.online ? 'on' : 'off')});
}


// --- the side lists ---------------------------------------------------------

export function renderFriends(friends, presence, onAccept) {
    const reqs = $('friend-requests');
    const list = $('friends');
    reqs.replaceChildren();
    list.replaceChildren();

    for (const f of friends) {
        if (f.state === 'pending') {
            reqs.append(el('div', {test: 'friend-request', class: 'item',
                                   'data-user': f.username},
                           f.username + ' wants to be friends ',
                           el('button', {test: 'friend-accept',
                                         type: 'button',
                                         onclick: () => onAccept(f)},
                              'Accept')));
        } else if (f.state === 'friends') {
            const p = presence.get(String(f.user_id)) || f;
            list.append(el('div', {test: 'friend', class: 'item',
                                   'data-user': f.username,
                                   'data-online': p.online ? 'true'
                                                           : 'false'},
                           presenceDot(p), f.username + ' · ',
                           el('small', {}, lastSeen(p))));
        } else {
            list.append(el('div', {class: 'item muted'},
                           f.username + ' (request sent)'));
        }
    }
}

export function renderConversations(convs, openKey, onOpen) {
    const list = $('conversations');
    list.replaceChildren();
    const sorted = [...convs.values()].sort((a, b) => b.last - a.last);

    for (const c of sorted) {
        list.append(el('div', {test: 'conversation',
                               class: 'item conv' + (c.key === openKey
                                                     ? ' open' : ''),
                               'data-kind': c.kind, 'data-name': c.name,
                               onclick: () => onOpen(c)},
                       c.kind === 'group' ? el('span', {class: 'tag'},
                                               'group') : null,
                       c.name,
                       c.unread ? el('span', {class: 'badge'},
                                     String(c.unread)) : null));
    }
}


// --- messages ---------------------------------------------------------------

const TICKS = {sent: '✓', delivered: '✓✓', read: '✓✓'};

// one message element (m: {id, from, fromName, text, status, mine, ts,
// url, error})
export function messageEl(m) {
    const e = el('div', {test: 'message',
                         class: 'msg' + (m.mine ? ' mine' : ''),
                         'data-from': m.fromName});
    updateMessageEl(e, m);
    return e;
}

export function updateMessageEl(e, m) {
    if (m.id) {
        e.dataset.id = m.id;
    }
    if (m.mine) {
        e.dataset.status = m.status || 'pending';
    }
    const parts = [];
    if (m.group) {
        parts.push(el('div', {class: 'from'}, m.fromName));
    }
    if (m.url) {
        parts.push(el('img', {test: 'image', src: m.url, alt: 'image',
                              class: 'image'}));
    }
    parts.push(el('span', {class: 'body' + (m.error ? ' error' : '')},
                  m.text));
    const meta = el('span', {class: 'meta'}, m.ts ? clock(m.ts) : '');
    if (m.mine) {
        meta.append(' ', el('span', {class: 'ticks ' + (m.status || '')},
                           m.status ? TICKS[m.status] : '…'));
    }
    parts.push(meta);
    e.replaceChildren(...parts);
}

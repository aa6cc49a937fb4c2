// ngx_chat web client: start-up, sign-in, the side panels (friends,
// conversations, groups, search) and the wiring of the page's controls to
// the chat (chat.js), the keys (keys.js) and the WebSocket (ws.js).

import {api, session, saveSession, clearSession} from './api.js';
import {Connection} from './ws.js';
import {Keys} from './keys.js';
import {Chat, convKey} from './chat.js';
import * as e2e from './e2e.js';
import {$, el, showError, hideError, renderFriends, renderConversations,
        lastSeen} from './ui.js';

const POLL = 4000;

let app = null;


// --- sign-in ----------------------------------------------------------------

function showSignin() {
    $('main').hidden = true;
    $('signin').hidden = false;
    $('username').focus();
}

async function signin(register) {
    const username = $('username').value.trim();
    const password = $('password').value;
    hideError();
    try {
        if (register) {
            await api.register(username, password);
        }
        const s = await api.login(username, password);
        saveSession(s.token, {user_id: s.user_id, username});
        $('password').value = '';
        await start();
    } catch (err) {
        showError((register ? 'register: ' : 'sign in: ') + err.message);
    }
}

async function logout() {
    try {
        await api.logout();
    } catch (err) {
        showError('log out: ' + err.message);
    }
    stop();
}

function stop() {
    if (app) {
        app.conn.close();
        clearInterval(app.poller);
    }
    app = null;
    clearSession();
    $('message-list').replaceChildren();
    $('conversations').replaceChildren();
    $('key-warnings').replaceChildren();
    showSignin();
}


// --- the signed-in session -------------------------------------------------

async function start() {
    const s = session();
    if (!s) {
        showSignin();
        return;
    }
    const me = s.user;
    app = {
        me,
        users: new Map([[String(me.user_id), me.username]]),
        presence: new Map(),
        friends: [],
        nameOf: (id) => app.users.get(String(id)) || ('user ' + id),
        learnName,
        groupInfo,
        onConvs: () => scheduleConvs(),
        onOpenChanged,
    };
    app.keys = new Keys(me);
    app.keys.names = app.users;
    app.chat = new Chat(app);

    $('signin').hidden = true;
    $('main').hidden = false;
    $('me').textContent = me.username;

    try {
        await app.keys.init();
    } catch (err) {
        if (failed('keys', err)) {
            return;
        }
    }

    restoreConvs();
    app.conn = new Connection(s.token, {
        onFrame,
        onState: (state) => {
            const c = $('conn-status');
            c.dataset.state = state;
            c.textContent = state;
        },
        onOpen: () => app.chat.flush(),
        onFatal: (reason) => {
            stop();
            showError('signed out: ' + reason);
        },
        onError: showError,
        onRefused: checkSession,
    });
    app.conn.start();
    await poll();
    app.poller = setInterval(poll, POLL);
}

// a WebSocket refused before the upgrade: a 401 (expired, logged out)
// ends the session, anything else is retried
async function checkSession() {
    try {
        await api.me();
    } catch (err) {
        if (err.status === 401) {
            failed('session', err);
        }
    }
}

// an error of the API shown; a refused token ends the session (true)
function failed(what, err) {
    if (err.status === 401 && app) {
        stop();
        showError('session ended: ' + err.message);
        return true;
    }
    showError(what + ': ' + err.message);
    return false;
}

// friends and groups (no frame announces a friend request or a new group)
async function poll() {
    if (!app) {
        return;
    }
    const mine = app;
    try {
        const [f, me] = await Promise.all([api.friends(), api.me()]);
        if (mine !== app) {
            return;
        }
        app.friends = f.friends;
        for (const x of f.friends) {
            app.users.set(String(x.user_id), x.username);
            if (x.state === 'friends') {
                app.presence.set(String(x.user_id),
                                 {online: x.online, last_seen: x.last_seen});
            }
        }
        for (const g of me.groups) {
            app.chat.conv('group', g.group_id, g.name);
        }
        renderFriends(app.friends, app.presence, accept);
        showPresence();
    } catch (err) {
        failed('refresh', err);
    }
}

function onFrame(f) {
    const chat = app.chat;
    switch (f.type) {
    case 'message':
        chat.ingest(f, false).catch((e) => showError('message: ' +
                                                     e.message));
        break;
    case 'ack':
        chat.gotAck(f);
        break;
    case 'receipt':
        chat.gotReceipt(f);
        break;
    case 'typing':
        chat.gotTyping(f);
        break;
    case 'presence':
        app.presence.set(String(f.user_id), {online: f.online,
                                             last_seen: f.last_seen});
        renderFriends(app.friends, app.presence, accept);
        showPresence();
        break;
    case 'error':
        chat.gotError(f);
        break;
    default:
        break;
    }
}

// a name a message claims for its sender: kept once the server agrees
async function learnName(id, name) {
    id = String(id);
    if (app.users.has(id) || !/^[a-z0-9_]{3,32}$/.test(name)) {
        return;
    }
    try {
        const u = await api.lookup(name);
        if (String(u.user_id) === id) {
            app.users.set(id, name);
            const c = app.chat.convs.get(convKey('direct', id));
            if (c) {
                c.name = name;
                saveConvs();
                scheduleConvs();
            }
        }
    } catch (err) {
        console.warn('ngx_chat: lookup', name, err.message);
    }
}

// a group's members (for names and for the ticks)
async function groupInfo(c) {
    if (c.members) {
        return c;
    }
    try {
        const g = await api.group(c.id);
        c.name = g.name;
        c.members = g.members.map((m) => String(m.user_id));
        c.admin = g.members.some((m) => m.role === 'admin' &&
                                 String(m.user_id) === String(app.me.user_id));
        for (const m of g.members) {
            app.users.set(String(m.user_id), m.username);
        }
        scheduleConvs();
    } catch (err) {
        showError('group: ' + err.message);
    }
    return c;
}


// --- conversations ----------------------------------------------------------

let convsTimer = null;

function scheduleConvs() {
    if (convsTimer) {
        return;
    }
    convsTimer = setTimeout(() => {
        convsTimer = null;
        if (app) {
            renderConversations(app.chat.convs, app.chat.open &&
                                app.chat.open.key, openConv);
            saveConvs();
        }
    }, 0);
}

function saveConvs() {
    const list = [...app.chat.convs.values()]
        .filter((c) => c.kind === 'direct')
        .map((c) => ({id: c.id, name: c.name}));
    localStorage.setItem('ngx_chat_convs:' + app.me.user_id,
                         JSON.stringify(list));
    localStorage.setItem('ngx_chat_seq:' + app.me.user_id,
                         JSON.stringify(Object.fromEntries(
                             app.chat.knownSeq)));
}

function restoreConvs() {
    let list = [];
    try {
        list = JSON.parse(localStorage.getItem('ngx_chat_convs:' +
                                               app.me.user_id) || '[]');
    } catch (e) {
        list = [];
    }
    try {
        const seq = JSON.parse(localStorage.getItem('ngx_chat_seq:' +
                                                    app.me.user_id) || '{}');
        for (const [key, n] of Object.entries(seq)) {
            if (Number.isInteger(n)) {
                app.chat.knownSeq.set(key, n);
            }
        }
    } catch (e) {
        // none kept
    }
    for (const c of list) {
        if (!/^user /.test(c.name)) {
            app.users.set(String(c.id), c.name);
        }
        app.chat.conv('direct', c.id, c.name);
    }
}

async function openConv(c) {
    if (c.kind === 'group') {
        await groupInfo(c);
    } else {
        // notice a changed key now rather than at the next send
        app.keys.directKey(c.id, true).catch((err) => {
            showError(err.status === 404 ? c.name + ' has not published ' +
                      'a key yet (never signed in to the web client)'
                                         : 'keys: ' + err.message);
        });
    }
    await app.chat.openConv(c);
}

function onOpenChanged(c) {
    $('chat-title').textContent = c.name;
    $('typing-slot').replaceChildren();
    $('group-admin').hidden = !(c.kind === 'group' && c.admin);
    scheduleConvs();
    showPresence();
    $('compose').focus();
}

async function showPresence() {
    const c = app && app.chat.open;
    const sub = $('chat-sub');
    if (!c || c.kind !== 'direct') {
        sub.replaceChildren(c && c.members ?
                            c.members.map(app.nameOf).join(', ') : '');
        return;
    }
    let p = app.presence.get(c.id);
    if (!p) {
        try {
            const r = await api.presence(c.id);
            p = {online: r.online, last_seen: r.last_seen};
        } catch (err) {
            // presence is for friends only (403)
            p = {online: false, last_seen: null, hidden: true};
        }
        app.presence.set(c.id, p);
    }
    if (app.chat.open !== c) {
        return;
    }
    sub.replaceChildren(el('span', {test: 'presence',
                                    'data-online': p.online ? 'true'
                                                            : 'false'},
                           p.hidden ? 'last seen: not shared (not friends)'
                                    : lastSeen(p)));
}

// the user named in the input (emptied once found), or null (said why)
async function userOf(input, what) {
    const name = $(input).value.trim().toLowerCase();
    if (!name) {
        return null;
    }
    try {
        const u = await api.lookup(name);
        app.users.set(String(u.user_id), u.username);
        $(input).value = '';
        return u;
    } catch (err) {
        if (err.status === 404) {
            showError('no user named ' + name);
        } else {
            failed(what, err);
        }
        return null;
    }
}

async function openChat() {
    const u = await userOf('new-chat', 'open chat');
    if (u) {
        await openConv(app.chat.conv('direct', u.user_id, u.username));
    }
}


// --- friends -----------------------------------------------------------------

async function addFriend() {
    const u = await userOf('friend-username', 'friend request');
    if (!u) {
        return;
    }
    try {
        await api.befriend(u.user_id);
        await poll();
    } catch (err) {
        failed('friend request', err);
    }
}

async function accept(f) {
    try {
        await api.befriend(f.user_id);
        await poll();
    } catch (err) {
        showError('accept: ' + err.message);
    }
}


// --- groups ------------------------------------------------------------------

async function createGroup() {
    const name = $('group-name').value.trim();
    const names = $('group-members').value.split(',')
        .map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (!name) {
        showError('a group needs a name');
        return;
    }
    try {
        const ids = [];
        for (const n of names) {
            const u = await api.lookup(n);
            app.users.set(String(u.user_id), u.username);
            ids.push(u.user_id);
        }
        const g = await api.createGroup(name, ids);
        const key = await e2e.newGroupKey();
        await app.keys.storeGroupKey(g.group_id, 1, key);
        const c = app.chat.conv('group', g.group_id, g.name);
        c.members = g.members.map((m) => String(m.user_id));
        c.admin = true;
        await handOutAll(c, 1, key);
        $('group-name').value = '';
        $('group-members').value = '';
        await openConv(c);
    } catch (err) {
        showError('create group: ' + err.message);
    }
}

// the group key to every other member; says who could not get it
async function handOutAll(c, version, key) {
    const failed = [];
    for (const m of c.members) {
        if (m === String(app.me.user_id)) {
            continue;
        }
        try {
            await app.chat.handOut(c.id, c.name, version, key, m);
        } catch (err) {
            failed.push(app.nameOf(m) + ' (' + err.message + ')');
        }
    }
    if (failed.length) {
        showError('the group key could not be given to ' +
                  failed.join(', ') + ': they cannot read this group');
    }
}

// an admin adds a member: a new key version, handed to every member
async function addMember() {
    const c = app.chat.open;
    if (!c || c.kind !== 'group') {
        return;
    }
    const u = await userOf('group-add-name', 'add member');
    if (!u) {
        return;
    }
    try {
        await api.addMember(c.id, u.user_id);
        c.members = null;
        await groupInfo(c);
        const version = (app.keys.latestGroupVersion(c.id) || 0) + 1;
        const key = await e2e.newGroupKey();
        await app.keys.storeGroupKey(c.id, version, key);
        await handOutAll(c, version, key);
        showPresence();
    } catch (err) {
        showError('add member: ' + err.message);
    }
}


// --- images and search --------------------------------------------------------

async function attach() {
    const file = $('attach').files[0];
    const c = app.chat.open;
    $('attach').value = '';
    if (!file || !c) {
        if (file) {
            showError('open a conversation first');
        }
        return;
    }
    try {
        const media = await api.upload(file);
        app.chat.send(c, $('compose').value.trim(), media);
        $('compose').value = '';
    } catch (err) {
        showError('image: ' + err.message);
    }
}

async function search() {
    const q = $('search-input').value;
    const box = $('search-results');
    box.replaceChildren();
    if (!e2e.words(q).length) {
        return;
    }
    const peers = [...app.chat.convs.values()]
        .filter((c) => c.kind === 'direct').map((c) => c.id);
    const seen = new Set();
    try {
        for (const {key} of await app.keys.all(peers)) {
            const tokens = (await e2e.tokens(key, q)).slice(0, 16);
            const res = await api.search(tokens);
            for (const r of res.results) {
                if (seen.has(r.id)) {
                    continue;
                }
                seen.add(r.id);
                const m = await app.chat.ingest(r, true);
                if (!m) {
                    continue;
                }
                box.append(el('div', {test: 'search-result', class: 'item',
                                      'data-id': r.id,
                                      onclick: () => openConv(m.c)},
                              m.c.name + ': ' + m.text));
            }
        }
        if (!seen.size) {
            box.append(el('div', {class: 'muted'}, 'nothing found'));
        }
    } catch (err) {
        showError('search: ' + err.message);
    }
}


// --- the page's controls --------------------------------------------------------

function wire() {
    $('signin-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        signin(false);
    });
    $('register').addEventListener('click', () => signin(true));
    $('logout').addEventListener('click', logout);
    $('banner-close').addEventListener('click', hideError);
    $('open-chat').addEventListener('click', openChat);
    $('new-chat').addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') {
            openChat();
        }
    });
    $('friend-add').addEventListener('click', addFriend);
    $('create-group').addEventListener('click', createGroup);
    $('group-add').addEventListener('click', addMember);
    $('search-go').addEventListener('click', search);
    $('attach').addEventListener('change', attach);
    $('compose-bar').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const text = $('compose').value;
        const c = app && app.chat.open;
        if (!c) {
            showError('open a conversation first');
            return;
        }
        if (!text.trim()) {
            return;
        }
        $('compose').value = '';
        app.chat.send(c, text);
    });
    $('compose').addEventListener('input', () => {
        if (app && app.chat.open) {
            app.chat.typed(app.chat.open);
        }
    });
    $('load-older').addEventListener('click', () => {
        if (app && app.chat.open) {
            app.chat.loadOlder(app.chat.open, false);
        }
    });
    // the user scrolled to the top (not our own scrolling after a render)
    $('messages').addEventListener('scroll', () => {
        const c = app && app.chat.open;
        const box = $('messages');
        if (c && c.nextBefore && box.scrollTop === 0 &&
            box.scrollHeight > box.clientHeight &&
            Date.now() - app.chat.renderedAt > 1000)
        {
            app.chat.loadOlder(c, false);
        }
    });
    document.addEventListener('visibilitychange', () => {
        if (app && app.chat.open && !document.hidden) {
            app.chat.markRead(app.chat.open);
        }
    });
    window.addEventListener('unhandledrejection', (ev) => {
        showError(String(ev.reason && ev.reason.message || ev.reason));
    });
}

wire();
start();

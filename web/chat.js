// ngx_chat web client: conversations and their messages — encrypting and
// sending (in order, through one promise chain), receiving and decrypting,
// acks and receipts (ticks), history pages, typing.

import * as e2e from './e2e.js';
import {api} from './api.js';
import {$, el, showError, messageEl, updateMessageEl} from './ui.js';

const RANK = {sent: 1, delivered: 2, read: 3};
const TYPING_SEND_EVERY = 3000;
const TYPING_SHOW = 5000;
const PAGE = 30;
const CATCH_UP_FIRST = 500;    // ms: the newest page again, while behind,
const CATCH_UP_MAX = 4000;     // ... each wait twice the last, up to this,
const CATCH_UP_TRIES = 8;      // ... this many times (about 24 s in all)

function higher(a, b) {
    return (RANK[b] || 0) > (RANK[a] || 0) ? b : a;
}

export function convKey(kind, id) {
    return (kind === 'group' ? 'g:' : 'd:') + id;
}

export class Chat {
    // app: {me, keys, conn, users, onConvs(), onOpenChanged(),
    //       nameOf(id), learnName(id, name), groupInfo(gid)}
    constructor(app) {
        this.app = app;
        this.convs = new Map();
        this.open = null;
        this.byId = new Map();         // message id -> m
        this.byClient = new Map();     // client_id -> m (own, unacked)
        this.chain = Promise.resolve();
        this.queue = {delivered: new Set(), read: new Set()};
        this.reported = {delivered: new Set(), read: new Set()};
        this.flushTimer = null;
        this.waitingKey = [];          // group messages without their key
        this.knownSeq = new Map();     // conv key -> the highest seq this
                                       // browser has seen (kept by app.js
                                       // across reloads)
        this.lastTyping = 0;
        this.typingTimer = null;
    }

    // --- conversations ------------------------------------------------------

    conv(kind, id, name) {
        const key = convKey(kind, id);
        let c = this.convs.get(key);
        if (!c) {
            c = {key, kind, id: String(id), name: name || String(id),
                 msgs: [], nextBefore: undefined, last: 0, unread: 0,
                 members: null};
            this.convs.set(key, c);
            this.app.onConvs();
        } else if (name && c.name !== name) {
            c.name = name;
            this.app.onConvs();
        }
        return c;
    }

    async openConv(c) {
        this.open = c;
        c.unread = 0;
        this.app.onOpenChanged(c);
        this.renderMessages(true);
        if (c.nextBefore === undefined) {
            await this.loadOlder(c, true);
        }
        this.markRead(c);
    }

    // --- decoding -----------------------------------------------------------

    // the conversation of a message object (HTTP or WebSocket)
    convOf(raw) {
        if (raw.group !== undefined && raw.group !== null) {
            return this.conv('group', raw.group);
        }
        const me = String(this.app.me.user_id);
        const peer = String(raw.from) === me ? String(raw.to)
                                             : String(raw.from);
        return this.conv('direct', peer, this.app.nameOf(peer));
    }

    // fills m.text (and handles key handouts); false: not to be shown
    async decode(c, m, raw) {
        if (!raw.e2e) {
            m.text = raw.body;
            return true;
        }
        let payload;
        try {
            if (c.kind === 'group') {
                const g = e2e.parseGroupBody(raw.body);
                const key = g && this.app.keys.groupKey(c.id, g.version);
                const latest = this.app.keys.latestGroupVersion(c.id);
                if (!key && g && latest !== null && g.version < latest) {
                    // an older key, never handed to this device
                    m.text = '[encrypted] sent before this device got ' +
                        'the group\'s key';
                    m.error = true;
                    m.stale = true;     // most likely before we joined
                    return true;
                }
                if (!key) {
                    m.text = '[encrypted] waiting for the group key';
                    m.error = true;
                    m.raw = raw;
                    this.waitingKey.push({c, m});
                    return true;
                }
                payload = await e2e.open(key, g.sealed);
            } else {
                payload = await this.openDirect(c.id, raw.body);
            }
        } catch (err) {
            m.text = '[encrypted] this message cannot be decrypted here (' +
                (err.code === 'not_found' ? 'no key published'
                 : 'sent to another key: another device or browser') + ')';
            m.error = true;
            return true;
        }
        m.error = false;
        if (payload.n && !m.mine) {
            await this.app.learnName(raw.from, payload.n);
        }
        if (payload.t === 'group_key') {
            await this.gotGroupKey(raw, payload);
            return false;
        }
        m.text = payload.body || '';
        return true;
    }

    async openDirect(peer, body) {
        try {
            return await e2e.open(await this.app.keys.directKey(peer), body);
        } catch (err) {
            if (err.name !== 'OperationError') {
                throw err;
            }
            // the peer may have a new key since we derived ours
            return e2e.open(await this.app.keys.directKey(peer, true), body);
        }
    }

    async gotGroupKey(raw, p) {
        if (String(raw.from) === String(this.app.me.user_id)) {
            return;
        }
        const gid = String(p.group);
        if (!this.app.keys.groupKey(gid, p.version)) {
            await this.app.keys.storeGroupKey(gid, p.version,
                                              await e2e.importKey(p.key));
        }
        const c = this.conv('group', gid, p.name);
        this.app.groupInfo(c);
        const waiting = this.waitingKey.filter((w) => w.c.key === c.key);
        this.waitingKey = this.waitingKey.filter((w) => w.c.key !== c.key);
        for (const w of waiting) {
            await this.decode(w.c, w.m, w.m.raw);
            this.refresh(w.m, true);
        }
    }

    // a message object (frame or history) as m, or null when hidden
    async ingest(raw, fromHistory) {
        if (fromHistory && typeof raw.seq === 'number') {
            const hc = this.convOf(raw);
            hc.histNewest = Math.max(hc.histNewest || 0, raw.seq);
        }
        if (raw.id && this.byId.has(raw.id)) {
            // again (a sync, a reconnect): its receipt may have been lost
            const m = this.byId.get(raw.id);
            if (raw.status && m.mine) {
                this.setStatus(m, raw.status);
            }
            this.report(m, 'delivered');
            if (m.c && this.open === m.c && !document.hidden) {
                this.report(m, 'read');
            }
            return m;
        }
        const me = String(this.app.me.user_id);
        if (String(raw.from) === me && this.byClient.has(raw.client_id)) {
            // our own send, stored before its ack reached us
            this.gotAck(raw);
            return this.byId.get(raw.id);
        }
        const c = this.convOf(raw);
        if (typeof raw.seq === 'number'
            && raw.seq > (this.knownSeq.get(c.key) || 0)) {
            this.knownSeq.set(c.key, raw.seq);
        }
        const m = {id: raw.id, seq: raw.seq, from: String(raw.from),
                   mine: String(raw.from) === me, ts: raw.ts,
                   group: c.kind === 'group', url: raw.url || null,
                   status: raw.status, client_id: raw.client_id,
                   c};
        const shown = await this.decode(c, m, raw);
        if (!fromHistory) {
            m.stale = false;    // came to us: acknowledge it whatever it is
        }
        if (this.byId.has(raw.id)) {
            return this.byId.get(raw.id);   // came meanwhile
        }
        this.byId.set(raw.id, m);
        if (!m.mine) {
            this.report(m, 'delivered');
        }
        if (!shown) {
            this.report(m, 'read');
            return null;
        }
        m.fromName = this.app.nameOf(m.from);
        c.msgs.push(m);
        c.last = Math.max(c.last, m.ts || 0);
        if (!fromHistory && !m.mine) {
            this.stopTyping(c, m.from);
            if (this.open === c && !document.hidden) {
                this.report(m, 'read');
            } else {
                c.unread++;
            }
        }
        if (this.open === c) {
            this.renderMessages(!fromHistory);
        }
        this.app.onConvs();
        return m;
    }

    // --- receipts -----------------------------------------------------------

    report(m, status) {
        if (!m.id || m.mine || m.stale || this.reported[status].has(m.id)) {
            return;
        }
        if (!m.group && (RANK[m.status] || 0) >= RANK[status]) {
            return;     // history says it got there already
        }
        this.reported[status].add(m.id);
        this.queue[status].add(m.id);
        if (!this.flushTimer) {
            this.flushTimer = setTimeout(() => this.flush(), 50);
        }
    }

    flush() {
        this.flushTimer = null;
        for (const status of ['delivered', 'read']) {
            const ids = [...this.queue[status]];
            this.queue[status].clear();
            for (let i = 0; i < ids.length; i += 100) {
                const part = ids.slice(i, i + 100);
                if (!this.app.conn.post({type: 'receipt', ids: part,
                                         status})) {
                    // not connected: again after the reconnect's sync
                    part.forEach((id) => this.reported[status].delete(id));
                }
            }
        }
    }

    markRead(c) {
        if (document.hidden) {
            return;
        }
        for (const m of c.msgs) {
            this.report(m, 'read');
        }
    }

    gotReceipt(f) {
        const m = this.byId.get(f.id);
        if (!m || !m.mine) {
            return;
        }
        if (!m.group) {
            this.setStatus(m, f.status);
            return;
        }
        m.rcpt = m.rcpt || {delivered: new Set(), read: new Set()};
        m.rcpt.delivered.add(String(f.by));
        if (f.status === 'read') {
            m.rcpt.read.add(String(f.by));
        }
        const others = m.c.members ? m.c.members.length - 1 : 1;
        if (m.rcpt.read.size >= others) {
            this.setStatus(m, 'read');
        } else if (m.rcpt.delivered.size >= others) {
            this.setStatus(m, 'delivered');
        }
    }

    setStatus(m, status) {
        const s = higher(m.status, status);
        if (s === m.status) {
            return;
        }
        m.status = s;
        this.refresh(m, false);
    }

    gotAck(f) {
        const m = this.byClient.get(f.client_id);
        if (!m) {
            return;
        }
        this.byClient.delete(f.client_id);
        m.id = f.id;
        m.seq = f.seq;
        m.ts = f.ts;
        this.byId.set(f.id, m);
        m.status = higher(m.status, 'sent');
        this.refresh(m, true);
    }

    gotError(f) {
        const m = f.client_id && this.byClient.get(f.client_id);
        if (!m) {
            if (f.id) {
                console.warn('ngx_chat: receipt for', f.id, f.code);
                return;
            }
            showError('server: ' + (f.message || f.code));
            return;
        }
        if (f.code === 'in_progress') {
            return;
        }
        if (f.code === 'rate_limited' || f.code === 'busy' ||
            f.code === 'unavailable')
        {
            this.app.conn.resend(f.client_id, f.retry_after || 1000);
            return;
        }
        this.byClient.delete(f.client_id);
        m.text += '  — not sent: ' + (f.message || f.code);
        m.error = true;
        this.refresh(m, true);
        showError('message not sent: ' + (f.message || f.code));
    }

    // --- sending ------------------------------------------------------------

    send(c, text, media) {
        const me = this.app.me;
        const m = {client_id: 'c' + Date.now().toString(36) +
                       Math.random().toString(36).slice(2, 10),
                   from: String(me.user_id), fromName: me.username,
                   mine: true, ts: Date.now(), text, url: media ? media.url
                                                                : null,
                   group: c.kind === 'group', status: null, c};
        c.msgs.push(m);
        c.last = m.ts;
        this.byClient.set(m.client_id, m);
        this.renderMessages(true);
        this.app.onConvs();

        const payload = {t: media ? 'image' : 'text', body: text,
                         n: me.username};
        this.chain = this.chain.then(() => this.sendSealed(c, m, payload,
                                                           media))
            .catch((err) => {
                this.byClient.delete(m.client_id);
                m.text += '  — not sent: ' + err.message;
                m.error = true;
                this.refresh(m, true);
                showError('cannot send: ' + err.message);
            });
    }

    async sendSealed(c, m, payload, media) {
        const frame = {type: 'send', client_id: m.client_id, e2e: true};
        let key;

        if (c.kind === 'group') {
            const v = this.app.keys.latestGroupVersion(c.id);
            if (v === null) {
                throw new Error('no key for this group yet');
            }
            key = this.app.keys.groupKey(c.id, v);
            frame.group = c.id;
            frame.body = e2e.groupBody(v, await e2e.seal(key, payload));
        } else {
            key = await this.app.keys.directKey(c.id);
            frame.to = c.id;
            frame.body = await e2e.seal(key, payload);
        }
        const tokens = await e2e.tokens(key, payload.body || '');
        if (tokens.length) {
            frame.search_tokens = tokens;
        }
        if (media) {
            frame.media = media.media_id;
        }
        this.app.conn.send(frame);
    }

    // a group key to one member, inside a 1:1 e2e message (not shown)
    async handOut(gid, name, version, key, member) {
        const k = await this.app.keys.directKey(member);
        const body = await e2e.seal(k, {t: 'group_key', group: Number(gid),
                                        version, name,
                                        key: await e2e.exportKey(key),
                                        n: this.app.me.username});
        const client_id = 'k' + gid + '-' + version + '-' + member + '-' +
            Math.random().toString(36).slice(2, 8);
        this.app.conn.send({type: 'send', to: String(member), client_id,
                            body, e2e: true});
    }

    // --- history ------------------------------------------------------------

    async loadOlder(c, first) {
        if (c.nextBefore === null || c.loading) {
            return;
        }
        c.loading = true;
        const box = $('messages');
        const height = box.scrollHeight;
        let res;
        try {
            res = await api.history(c, c.nextBefore, PAGE);
        } catch (err) {
            c.loading = false;
            showError('history: ' + err.message);
            return;
        }
        c.loading = false;
        c.nextBefore = res.next_before;
        const target = this.knownSeq.get(c.key) || 0;
        for (const raw of res.messages) {
            await this.ingest(raw, true);
        }
        if (this.open === c) {
            this.renderMessages(first);
            if (!first) {
                box.scrollTop = box.scrollHeight - height;
            }
            this.markRead(c);
        }
        if (first) {
            this.catchUp(c, target, CATCH_UP_TRIES, CATCH_UP_FIRST);
        }
    }

    // History is what the persist worker has written, a fraction of a
    // second behind the ack, and a message this browser acknowledged
    // before a reload is not sent on connect again: the first page can
    // end before TARGET, the newest seq seen here before.  The newest page
    // is asked for again until history reaches TARGET; after the last try
    // (the message is gone: ephemeral retention) history's newest is taken
    // as the known.  A page that does not reach down to what history gave
    // before leaves a gap: load-older goes on below that page.
    catchUp(c, target, tries, wait) {
        const had = c.histNewest || 0;
        if (had >= target) {
            return;
        }
        if (tries === 0) {
            if ((this.knownSeq.get(c.key) || 0) === target) {
                this.knownSeq.set(c.key, had);
                this.app.onConvs();
            }
            return;
        }
        setTimeout(async () => {
            try {
                const res = await api.history(c, undefined, PAGE);
                const seqs = res.messages.map((m) => m.seq);
                if (res.next_before !== null
                    && Math.min(...seqs) > had + 1) {
                    c.nextBefore = res.next_before;
                }
                for (const raw of res.messages) {
                    await this.ingest(raw, true);
                }
            } catch (err) {
                // asked again at the next try
            }
            if (this.open === c) {
                this.renderMessages(false);
                this.markRead(c);
            }
            this.catchUp(c, target, tries - 1,
                         Math.min(wait * 2, CATCH_UP_MAX));
        }, wait);
    }

    // --- typing -------------------------------------------------------------

    typed(c) {
        const now = Date.now();
        if (now - this.lastTyping < TYPING_SEND_EVERY) {
            return;
        }
        this.lastTyping = now;
        this.app.conn.post(c.kind === 'group' ? {type: 'typing', group: c.id}
                                              : {type: 'typing', to: c.id});
    }

    gotTyping(f) {
        if (String(f.from) === String(this.app.me.user_id)) {
            return;
        }
        const key = f.group ? convKey('group', f.group)
                            : convKey('direct', f.from);
        const c = this.convs.get(key);
        if (!c || this.open !== c) {
            return;
        }
        const slot = $('typing-slot');
        slot.replaceChildren(el('div', {test: 'typing', class: 'typing',
                                        'data-from': this.app.nameOf(f.from)},
                                this.app.nameOf(f.from) + ' is typing…'));
        clearTimeout(this.typingTimer);
        this.typingTimer = setTimeout(() => slot.replaceChildren(),
                                      TYPING_SHOW);
    }

    stopTyping(c, from) {
        const t = $('typing-slot').firstChild;
        if (this.open === c && t && t.dataset.from === this.app.nameOf(from)) {
            $('typing-slot').replaceChildren();
        }
    }

    // --- rendering ----------------------------------------------------------

    refresh(m, whole) {
        if (!m.el) {
            return;
        }
        if (whole) {
            updateMessageEl(m.el, m);
            return;
        }
        if (m.id) {
            m.el.dataset.id = m.id;
        }
        if (m.mine) {
            m.el.dataset.status = m.status || 'pending';
            const t = m.el.querySelector('.ticks');
            if (t) {
                t.className = 'ticks ' + (m.status || '');
                t.textContent = m.status === 'sent' ? '✓' : '✓✓';
            }
        }
    }

    renderMessages(toBottom) {
        const c = this.open;
        const list = $('message-list');
        const box = $('messages');
        if (!c) {
            list.replaceChildren();
            return;
        }
        const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight
            < 40;
        c.msgs.sort((a, b) => {
            const sa = a.seq === undefined ? Infinity : a.seq;
            const sb = b.seq === undefined ? Infinity : b.seq;
            return sa - sb || (a.ts || 0) - (b.ts || 0);
        });
        for (const m of c.msgs) {
            if (!m.el) {
                m.fromName = this.app.nameOf(m.from);
                m.el = messageEl(m);
            }
        }
        list.replaceChildren(...c.msgs.map((m) => m.el));
        this.renderedAt = Date.now();
        $('load-older').hidden = c.nextBefore === null;
        if (toBottom || atBottom) {
            box.scrollTop = box.scrollHeight;
        }
    }
}

// ngx_chat web client: the keys a session holds — this device's identity,
// peers' public keys (pinned on first sight, a change raises key-warning),
// the 1:1 conversation keys derived from them, and the group keys handed
// out by group admins.

import * as e2e from './e2e.js';
import {api} from './api.js';
import {$, el} from './ui.js';

const RECHECK = 10000;     // ms: ask for a peer's key again after
const REFRESH = 2000;      // ms: at most this often when asked to

export class Keys {
    constructor(me) {
        this.me = me;                 // {user_id, username}
        this.id = null;               // this device's identity
        this.direct = new Map();      // peer id -> {pub, key}
        this.groups = {};             // gid -> {version: CryptoKey}
        this.names = new Map();       // peer id -> username (for warnings)
    }

    async init() {
        const uid = String(this.me.user_id);
        this.id = await e2e.identity(uid);
        this.groups = await e2e.loadGroupKeys(uid);
        await api.putKey(this.id.publicB64);
    }

    // the conversation key with peer; the peer's public key is asked for
    // again when fresh (a message did not decrypt) or after RECHECK ms, so
    // that a changed key is noticed (and warned about) before a send
    async directKey(peer, fresh = false) {
        peer = String(peer);
        const known = this.direct.get(peer);
        const age = known ? Date.now() - known.checked : Infinity;
        if (age < (fresh ? REFRESH : RECHECK)) {
            return known.key;
        }

        let pub;
        if (peer === String(this.me.user_id)) {
            pub = this.id.publicB64;
        } else {
            try {
                pub = (await api.getKey(peer)).public_key;
            } catch (err) {
                if (known) {
                    return known.key;   // server unreachable: keep ours
                }
                throw err;
            }
        }
        if (known && known.pub === pub) {
            known.checked = Date.now();
            return known.key;
        }

        if (peer !== String(this.me.user_id)) {
            const pin = e2e.checkPin(this.me.user_id, peer, pub);
            if (pin === 'changed') {
                this.warn(peer, pub);
            }
        }

        const key = await e2e.directKey(this.id.privateKey, this.me.user_id,
                                        peer, pub);
        this.direct.set(peer, {pub, key, checked: Date.now()});
        return key;
    }

    warn(peer, pub) {
        const box = $('key-warnings');
        const name = this.names.get(peer) || ('user ' + peer);
        if (box.querySelector('[data-peer="' + peer + '"]')) {
            return;
        }
        const w = el('div', {test: 'key-warning', class: 'key-warning',
                             'data-peer': peer, 'data-user': name},
                     '⚠ The security key of ' + name + ' changed since you ' +
                     'first talked (a new device or browser, or someone ' +
                     'between you). Messages now use the new key. ');
        w.append(el('button', {type: 'button', onclick: () => {
            e2e.acceptPin(this.me.user_id, peer, pub);
            w.remove();
        }}, 'Accept the new key'));
        box.append(w);
    }

    // --- groups -------------------------------------------------------------

    groupKey(gid, version) {
        const g = this.groups[String(gid)];
        return g ? g[String(version)] : undefined;
    }

    latestGroupVersion(gid) {
        const g = this.groups[String(gid)];
        if (!g) {
            return null;
        }
        return Math.max(...Object.keys(g).map(Number));
    }

    async storeGroupKey(gid, version, key) {
        const g = this.groups[String(gid)] || (this.groups[String(gid)] = {});
        g[String(version)] = key;
        await e2e.saveGroupKeys(String(this.me.user_id), this.groups);
    }

    // every conversation key held, for search: [{conv, key}]
    async all(peers) {
        const out = [];
        for (const p of peers) {
            try {
                out.push({peer: p, key: await this.directKey(p)});
            } catch (e) {
                // no key published: nothing to search there
            }
        }
        for (const [gid, versions] of Object.entries(this.groups)) {
            for (const key of Object.values(versions)) {
                out.push({group: gid, key});
            }
        }
        return out;
    }
}

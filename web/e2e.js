// ngx_chat web client: all of its cryptography (WebCrypto only).
//
//   identity   an ECDH P-256 key pair per device (browser profile), made on
//              the first login of a user, kept in IndexedDB with its
//              private key non-extractable; the public key (SPKI, base64)
//              is what PUT /v1/keys publishes.
//   1:1        ECDH(mine, peer's) -> HKDF-SHA256(salt = "<low id>:<high
//              id>", info = "ngx_chat 1:1 v1") -> AES-GCM-256.
//   groups     a random AES-GCM-256 key per group and version, handed to
//              each member inside a 1:1 e2e message {"t":"group_key",...}.
//   envelope   base64(12-byte random IV || AES-GCM ciphertext of the JSON
//              payload); group messages prefix "g<version>:" to it.
//   search     HKDF(conversation key, info "ngx_chat search v1") -> HMAC
//              key; token = base64url(HMAC-SHA256(key, word))[:22].
//
// docs/PROTOCOL.md ("End-to-end encryption in the web client") has the
// scheme and its limits.

const enc = new TextEncoder();
const dec = new TextDecoder();
const subtle = crypto.subtle;

const DB_NAME = 'ngx_chat_e2e';
const INFO_1TO1 = 'ngx_chat 1:1 v1';
const INFO_SEARCH = 'ngx_chat search v1';
const MAX_WORDS = 32;


// --- base64 ---------------------------------------------------------------

export function b64(buf) {
    const bytes = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < bytes.length; i++) {
        s += String.fromCharCode(bytes[i]);
    }
    return btoa(s);
}

export function unb64(text) {
    const s = atob(text);
    const bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
        bytes[i] = s.charCodeAt(i);
    }
    return bytes;
}

function b64url(buf) {
    return b64(buf).replace(/\+/g, '-').replace(/\//g, '_')
        .replace(/=+$/, '');
}


// --- IndexedDB: one store "keys", key path none, keyed by name ------------

function db() {
    return new Promise((resolve, reject) => {
        const req = indexedDB.open(DB_NAME, 1);
        req.onupgradeneeded = () => req.result.createObjectStore('keys');
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
    });
}

async function idbGet(key) {
    const d = await db();
    return new Promise((resolve, reject) => {
        const req = d.transaction('keys').objectStore('keys').get(key);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
    });
}

async function idbPut(key, value) {
    const d = await db();
    return new Promise((resolve, reject) => {
        const tx = d.transaction('keys', 'readwrite');
        tx.objectStore('keys').put(value, key);
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
    });
}


// group keys of user uid on this device: {gid: {version: CryptoKey}}
export async function loadGroupKeys(uid) {
    return (await idbGet('groups:' + uid)) || {};
}

export async function saveGroupKeys(uid, keys) {
    await idbPut('groups:' + uid, keys);
}


// --- the device's identity ------------------------------------------------

// {privateKey, publicKey, publicB64} of user uid on this device, made and
// stored on first use (the private key cannot be exported).
export async function identity(uid) {
    const name = 'identity:' + uid;
    let pair = await idbGet(name);

    if (!pair) {
        pair = await subtle.generateKey({name: 'ECDH', namedCurve: 'P-256'},
                                        false, ['deriveBits']);
        await idbPut(name, pair);
    }

    const spki = await subtle.exportKey('spki', pair.publicKey);
    return {privateKey: pair.privateKey, publicKey: pair.publicKey,
            publicB64: b64(spki)};
}

async function importPeer(publicB64) {
    return subtle.importKey('spki', unb64(publicB64),
                            {name: 'ECDH', namedCurve: 'P-256'}, false, []);
}


// --- key pinning (trust on first use) -------------------------------------

// 'new' (pinned now), 'same', or 'changed' (the pin stays the first key
// until the user accepts the new one with pin(..., true))
export function checkPin(me, peer, publicB64) {
    const k = 'ngx_chat_pin:' + me + ':' + peer;
    const old = localStorage.getItem(k);

    if (old === null) {
        localStorage.setItem(k, publicB64);
        return 'new';
    }

    return old === publicB64 ? 'same' : 'changed';
}

export function acceptPin(me, peer, publicB64) {
    localStorage.setItem('ngx_chat_pin:' + me + ':' + peer, publicB64);
}


// --- conversation keys ----------------------------------------------------

// the AES-GCM key of my conversation with peer (ids as numbers or strings)
export async function directKey(myPrivate, me, peer, peerPublicB64) {
    const pub = await importPeer(peerPublicB64);
    const secret = await subtle.deriveBits({name: 'ECDH', public: pub},
                                           myPrivate, 256);
    const ids = [BigInt(me), BigInt(peer)].sort((a, b) =>
        (a < b ? -1 : a > b ? 1 : 0));
    const ikm = await subtle.importKey('raw', secret, 'HKDF', false,
                                       ['deriveKey', 'deriveBits']);
    return subtle.deriveKey(
        {name: 'HKDF', hash: 'SHA-256', salt: enc.encode(ids.join(':')),
         info: enc.encode(INFO_1TO1)},
        ikm, {name: 'AES-GCM', length: 256}, true, ['encrypt', 'decrypt']);
}

export async function newGroupKey() {
    return subtle.generateKey({name: 'AES-GCM', length: 256}, true,
                              ['encrypt', 'decrypt']);
}

export async function exportKey(key) {
    return b64(await subtle.exportKey('raw', key));
}

export async function importKey(rawB64) {
    return subtle.importKey('raw', unb64(rawB64), {name: 'AES-GCM'}, true,
                            ['encrypt', 'decrypt']);
}


// --- envelope -------------------------------------------------------------

// base64(IV || AES-GCM(JSON payload))
export async function seal(key, payload) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await subtle.encrypt({name: 'AES-GCM', iv}, key,
                                    enc.encode(JSON.stringify(payload)));
    const out = new Uint8Array(12 + ct.byteLength);
    out.set(iv, 0);
    out.set(new Uint8Array(ct), 12);
    return b64(out);
}

// the payload, or throws (wrong key, altered text)
export async function open(key, body) {
    const bytes = unb64(body);
    if (bytes.length < 12 + 16) {
        throw new Error('ciphertext too short');
    }
    const pt = await subtle.decrypt({name: 'AES-GCM', iv: bytes.slice(0, 12)},
                                    key, bytes.slice(12));
    return JSON.parse(dec.decode(pt));
}

// group bodies: "g<version>:<envelope>"
export function groupBody(version, sealed) {
    return 'g' + version + ':' + sealed;
}

export function parseGroupBody(body) {
    const m = /^g(\d+):(.*)$/s.exec(body || '');
    return m ? {version: Number(m[1]), sealed: m[2]} : null;
}


// --- blind index ------------------------------------------------------------

// NFKC, lower case, split on what is not a letter or digit, words of 1 to
// 64 characters, distinct, at most 32
export function words(text) {
    const out = [];
    const seen = new Set();
    const parts = text.normalize('NFKC').toLowerCase()
        .split(/[^\p{L}\p{N}]+/u);

    for (const w of parts) {
        const n = [...w].length;
        if (n < 1 || n > 64 || seen.has(w)) {
            continue;
        }
        seen.add(w);
        out.push(w);
        if (out.length === MAX_WORDS) {
            break;
        }
    }
    return out;
}

async function searchKey(convKey) {
    const raw = await subtle.exportKey('raw', convKey);
    const ikm = await subtle.importKey('raw', raw, 'HKDF', false,
                                       ['deriveKey']);
    return subtle.deriveKey(
        {name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0),
         info: enc.encode(INFO_SEARCH)},
        ikm, {name: 'HMAC', hash: 'SHA-256', length: 256}, false, ['sign']);
}

// one 22-character token per word of text (an empty list for none)
export async function tokens(convKey, text) {
    const key = await searchKey(convKey);
    const out = [];

    for (const w of words(text)) {
        const mac = await subtle.sign('HMAC', key, enc.encode(w));
        out.push(b64url(mac.slice(0, 16)));
    }
    return out;
}

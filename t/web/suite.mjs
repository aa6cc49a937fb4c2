// t/web/suite.mjs — the browser scenarios of t/060-web.t: Debian's
// chromium, driven by playwright-core, chats through the web client at
// CHAT_WEB the way people would, through the client's data-test hooks only
// (docs/WEB.md, ../shared/CONTRACT.md section 6).
//
// Environment:
//   CHAT_WEB        the client's URL (the stack's stack.env has it)
//   WEB_RUN         a run id, unique per run: usernames and marker words
//                   are made from it, so runs never meet
//   WEB_ARTIFACTS   where the screenshots go (made if missing)
//   WEB_CHROMIUM    the browser (default /usr/bin/chromium)
//
// Output: one JSON object per line on stdout, which t/060-web.t turns into
// assertions: {"ok":true|false,"name":...,"diag":...} per check,
// {"marker":WORD,"where":...} per word sent end-to-end encrypted (the
// plaintext scan looks for them), {"screenshot":PATH}, and {"done":N} last.
// Exit 0 when it ran to the end (whatever the checks said), else non-zero.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const WEB = process.env.CHAT_WEB;
const RUN = process.env.WEB_RUN;
const ART = process.env.WEB_ARTIFACTS;
const BROWSER = process.env.WEB_CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'web-test-password';
const STEP_MS = 15000;          // the longest any one step may take
// the stack's scripts/stack (its profile and offset from the environment,
// as t/060-web.t was given them)
const STACK = fileURLToPath(new URL('../../scripts/stack', import.meta.url));

if (!WEB || !RUN || !ART) {
    console.error('suite.mjs: CHAT_WEB, WEB_RUN and WEB_ARTIFACTS are needed');
    process.exit(2);
}
mkdirSync(ART, { recursive: true });

let checks = 0;
let persistStopped = false;     // started again at the end, whatever failed
const out = (o) => console.log(JSON.stringify(o));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function report(ok, name, diag) {
    checks++;
    out({ ok, name, ...(diag ? { diag } : {}) });
}

// the users: lower-case letters, digits and _ (the API's rule), unique
// per run
const user = (n) => `w${n}_${RUN}`.slice(0, 32);
const A = user('a'), B = user('b'), C = user('c');

// marker words: letters and digits only (one word for the search's
// tokenizer), unique per run
const marker = (n) => `mk${n}${RUN}`;
const M_DIRECT = marker('direct'), M_GROUP = marker('group');
const M_SEARCH = marker('search');

const hook = (page, name) => page.locator(`[data-test="${name}"]`);
const sel = (name, attrs = {}) => `[data-test="${name}"]`
    + Object.entries(attrs).map(([k, v]) => `[data-${k}="${v}"]`).join('');

async function shot(page, name) {
    const path = `${ART}/${name}.png`;
    try {
        await page.screenshot({ path, fullPage: true, timeout: 5000 });
        out({ screenshot: path });
    } catch (e) {
        out({ note: `screenshot ${name}: ${e.message.split('\n')[0]}` });
    }
}

// Runs the checks of one scenario in order; the first that fails ends the
// scenario (the rest depend on it), with a screenshot of every page.
async function scenario(label, pages, fn, needs = true) {
    let step = '';
    if (!needs) {
        report(false, `${label}: not run (a) failed)`);
        return false;
    }
    const check = async (name, f) => {
        step = name;
        const t0 = Date.now();
        await f();
        report(true, `${label}: ${name}`, `${Date.now() - t0} ms`);
    };
    const t0 = Date.now();
    try {
        await fn(check);
        out({ note: `${label}: ${Date.now() - t0} ms` });
        return true;
    } catch (e) {
        report(false, `${label}: ${step}`, e.message.split('\n').slice(0, 6)
               .join('\n'));
        for (const [who, p] of Object.entries(pages())) {
            if (!p.isClosed()) {
                await shot(p, `fail-${label.replace(/\W+/g, '-')}-${who}`);
            }
        }
        return false;
    }
}

// waits for a page-side condition, polling; a clear error when it times out
async function until(page, what, fn, arg, timeout = STEP_MS) {
    // waitForFunction takes the promise of an async function as truthy
    if (fn.constructor.name === 'AsyncFunction') {
        throw new Error(`until(${what}): an async condition; use poll()`);
    }
    try {
        await page.waitForFunction(fn, arg, { timeout, polling: 200 });
    } catch (e) {
        throw new Error(`${what}: not within ${timeout} ms`);
    }
}

// polls an async page-side condition (fetches): page.evaluate awaits it
async function poll(page, what, fn, arg, timeout = STEP_MS) {
    const end = Date.now() + timeout;
    while (!await page.evaluate(fn, arg)) {
        if (Date.now() > end) {
            throw new Error(`${what}: not within ${timeout} ms`);
        }
        await sleep(200);
    }
}

// scripts/stack svc NAME ACTION
function stackSvc(name, action) {
    execFileSync(STACK, ['svc', name, action],
                 { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
}

// --- a small PNG, made here (RGB, 8 bits, no interlace) -------------------

const CRC = new Int32Array(256).map((_, n) => {
    for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
    return n;
});
function crc32(buf) {
    let c = -1;
    for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
}
function chunk(type, data) {
    const len = Buffer.alloc(4), crc = Buffer.alloc(4);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    len.writeUInt32BE(data.length);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
}
function png(w, h) {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr.set([8, 2, 0, 0, 0], 8);
    const raw = Buffer.alloc((w * 3 + 1) * h);
    for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
            // a diagonal split: orange over teal
            raw.set(x > y ? [240, 120, 20] : [20, 140, 140],
                    y * (w * 3 + 1) + 1 + x * 3);
        }
    }
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)),
        chunk('IEND', Buffer.alloc(0))]);
}

// --- steps through the hooks ---------------------------------------------

async function signedIn(page, name) {
    return await hook(page, 'me').filter({ hasText: name }).count() > 0;
}

// register (and log in, if registering does not) NAME on a fresh page
async function register(page, name) {
    await hook(page, 'username').fill(name, { timeout: STEP_MS });
    await hook(page, 'password').fill(PASSWORD);
    await hook(page, 'register').click();
    const me = hook(page, 'me').filter({ hasText: name });
    try {
        await me.waitFor({ timeout: 8000 });
        return;
    } catch (e) { /* registering did not sign in: log in */ }
    await login(page, name);
}

async function login(page, name) {
    await hook(page, 'username').fill(name, { timeout: STEP_MS });
    await hook(page, 'password').fill(PASSWORD);
    await hook(page, 'login').click();
    await hook(page, 'me').filter({ hasText: name })
        .waitFor({ timeout: STEP_MS });
}

// the page (re)loaded: signed in again if the client did not keep the
// session
async function reload(page, name) {
    await page.goto(WEB);
    await Promise.race([
        hook(page, 'me').filter({ hasText: name }).waitFor({ timeout: 8000 }),
        hook(page, 'username').waitFor({ timeout: 8000 })]).catch(() => {});
    if (!await signedIn(page, name)) await login(page, name);
}

async function openDirect(page, peer) {
    const conv = page.locator(sel('conversation', { kind: 'direct',
                                                    name: peer }));
    if (await conv.count() > 0) {
        await conv.first().click();
    } else {
        await hook(page, 'new-chat').fill(peer, { timeout: STEP_MS });
        await hook(page, 'open-chat').click();
    }
    await conv.first().waitFor({ timeout: STEP_MS });
}

async function openGroup(page, name) {
    const conv = page.locator(sel('conversation', { kind: 'group', name }));
    await conv.first().waitFor({ timeout: STEP_MS });
    await conv.first().click();
}

async function send(page, text) {
    await hook(page, 'compose').fill(text, { timeout: STEP_MS });
    await hook(page, 'send').click();
}

// the messages from FROM shown, in the page
const fromSel = (f) => `[data-test="message"][data-from="${f}"]`;

// the message with TEXT from FROM on PAGE: shown, and (own ones) acked
function message(page, from, text) {
    return page.locator(sel('message', { from })).filter({ hasText: text });
}

async function acked(page, from, text) {
    const m = message(page, from, text);
    await m.first().waitFor({ timeout: STEP_MS });
    await until(page, `"${text}" acked (data-id)`, ([f, t]) =>
        [...document.querySelectorAll(f)]
            .some((e) => e.textContent.includes(t) && e.dataset.id),
        [fromSel(from), text]);
}

// the message ID of the conversation with PEER is in its history
// (GET /v1/messages, with PAGE's session): history is what the persist
// worker has written, a fraction of a second behind the ack (API.md), and
// a page loaded before that shows the message only once it comes live
async function persisted(page, peer, id, timeout = 20000) {
    await poll(page, `message ${id} in the history with ${peer}`,
        async ([p, i]) => {
            const s = sessionStorage.getItem('ngx_chat_token');
            if (!s) return false;
            const h = { Authorization: `Bearer ${s}` };
            const u = await fetch(`/v1/users/lookup?username=${p}`,
                                  { headers: h });
            if (!u.ok) return false;
            const { user_id } = await u.json();
            const r = await fetch(`/v1/messages?with=${user_id}&limit=5`,
                                  { headers: h });
            if (!r.ok) return false;
            const { messages } = await r.json();
            return messages.some((m) => m.id === i);
        }, [peer, id], timeout);
}

async function seen(page, from, text) {
    await message(page, from, text).first().waitFor({ timeout: STEP_MS })
        .catch(async () => {
            const last = await page.evaluate(() =>
                [...document.querySelectorAll('[data-test="message"]')]
                    .slice(-2).map((e) => JSON.stringify(e.dataset) + ' '
                                   + e.textContent.slice(0, 60)));
            throw new Error(`"${text}" from ${from} not shown (the last `
                            + `shown: ${last.join(' | ')})`);
        });
}

async function status(page, from, text, want) {
    await until(page, `"${text}" data-status=${want}`, ([f, t, w]) =>
        [...document.querySelectorAll(f)]
            .some((e) => e.textContent.includes(t) && e.dataset.status === w),
        [fromSel(from), text, want], 20000);
}

// --- the scenarios ----------------------------------------------------------

async function main() {
    const t0 = Date.now();
    const browser = await chromium.launch({
        executablePath: BROWSER,
        // root in CI: no sandbox; /dev/shm may be small in containers
        args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
    out({ note: `chromium ${browser.version()}, ${A} ${B} ${C}` });
    const ctx = {}, page = {};
    // what the pages send the server: every request (URL and body) and
    // every WebSocket frame, for the wire checks at the end
    const wire = { requests: [], frames: [] };
    for (const who of ['A', 'B', 'C']) {
        ctx[who] = await browser.newContext({ viewport: { width: 900,
                                                          height: 700 } });
        page[who] = await ctx[who].newPage();
        page[who].on('request', (r) => wire.requests.push(
            { who, url: r.url(), body: r.postData() || '' }));
        page[who].on('websocket', (ws) => ws.on('framesent', (f) =>
            wire.frames.push({ who, text: String(f.payload) })));
        page[who].on('pageerror', (e) =>
            out({ note: `${who}: page error: ${e.message}` }));
        page[who].on('console', (m) => {
            if (m.type() === 'error') {
                out({ note: `${who}: console: ${m.text()}` });
            }
        });
    }
    const pages = () => page;
    const [pa, pb, pc] = [page.A, page.B, page.C];

    // a) sign-in, friends, 1:1 until read, presence
    const a = await scenario('a) 1:1', pages, async (check) => {
        await check('the sign-in screen', async () => {
            for (const r of await Promise.all([pa, pb, pc]
                                              .map((p) => p.goto(WEB)))) {
                if (!r || r.status() !== 200) {
                    throw new Error(`GET ${WEB}: ${r && r.status()}`);
                }
            }
            await hook(pa, 'username').waitFor({ timeout: STEP_MS });
            await hook(pa, 'register').waitFor({ timeout: STEP_MS });
            await shot(pa, 'sign-in');
        });
        await check('A, B and C register', async () => {
            await Promise.all([register(pa, A), register(pb, B),
                               register(pc, C)]);
        });
        await check('each is connected (conn-status)', async () => {
            await Promise.all([pa, pb, pc].map((p) => p.locator(
                sel('conn-status', { state: 'connected' }))
                .waitFor({ timeout: STEP_MS })));
        });
        await check('A asks B to be friends, B accepts', async () => {
            await hook(pa, 'friend-username').fill(B);
            await hook(pa, 'friend-add').click();
            const req = pb.locator(sel('friend-request', { user: A }));
            try {
                await req.waitFor({ timeout: 10000 });
            } catch (e) {
                out({ note: 'B: no friend-request within 10 s, reloading' });
                await reload(pb, B);
                await req.waitFor({ timeout: STEP_MS });
            }
            await req.locator('[data-test="friend-accept"]').click();
            await pa.locator(sel('friend', { user: B }))
                .waitFor({ timeout: STEP_MS });
            await pb.locator(sel('friend', { user: A }))
                .waitFor({ timeout: STEP_MS });
        });
        await check('B shows online in A\'s friends', async () => {
            await pa.locator(sel('friend', { user: B, online: 'true' }))
                .waitFor({ timeout: STEP_MS });
        });
        const text = `hello ${M_DIRECT} from a`;
        out({ marker: M_DIRECT, where: '1:1' });
        await check('A opens the chat with B and sends; acked', async () => {
            await openDirect(pa, B);
            await send(pa, text);
            await acked(pa, A, text);
        });
        await check('A\'s presence shows B online', async () => {
            await pa.locator(sel('presence', { online: 'true' }))
                .waitFor({ timeout: STEP_MS });
        });
        await check('B opens the chat and sees it, decrypted', async () => {
            await openDirect(pb, A);
            await seen(pb, A, text);
        });
        await check('A\'s message reaches data-status=read', async () => {
            await status(pa, A, text, 'read');
            await shot(pa, 'direct-read');
        });
        await check('B answers, A sees it', async () => {
            await send(pb, `hi a ${M_DIRECT} back`);
            await seen(pa, B, `hi a ${M_DIRECT} back`);
        });
    });

    // b) a group of three
    const group = `g${RUN}`.slice(0, 40);
    await scenario('b) group', pages, async (check) => {
        await check('A creates a group with B and C', async () => {
            await hook(pa, 'group-name').fill(group, { timeout: STEP_MS });
            await hook(pa, 'group-members').fill(`${B},${C}`);
            await hook(pa, 'create-group').click();
            await openGroup(pa, group);
        });
        out({ marker: M_GROUP, where: 'group' });
        const said = { A: `a says ${M_GROUP}`, B: `b says ${M_GROUP}`,
                       C: `c says ${M_GROUP}` };
        const name = { A, B, C };
        await check('A sends to the group; acked', async () => {
            await send(pa, said.A);
            await acked(pa, A, said.A);
        });
        await check('B and C find the group and see A\'s message', async () => {
            await Promise.all([openGroup(pb, group), openGroup(pc, group)]);
            await Promise.all([seen(pb, A, said.A), seen(pc, A, said.A)]);
        });
        await check('B and C send; everyone sees the others', async () => {
            await send(pb, said.B);
            await send(pc, said.C);
            const want = [];
            for (const who of ['A', 'B', 'C']) {
                for (const from of ['A', 'B', 'C']) {
                    if (from !== who) {
                        want.push(seen(page[who], name[from], said[from]));
                    }
                }
            }
            await Promise.all(want);
            await shot(pc, 'group');
        });
    }, a);

    // c) an image
    await scenario('c) image', pages, async (check) => {
        await check('A attaches a PNG in the chat with B', async () => {
            await openDirect(pa, B);
            await hook(pa, 'attach').setInputFiles({
                name: `dot-${RUN}.png`, mimeType: 'image/png',
                buffer: png(48, 32) }, { timeout: STEP_MS });
        });
        await check('B sees it loaded (naturalWidth > 0)', async () => {
            await openDirect(pb, A);
            await until(pb, 'an image that loaded', () =>
                [...document.querySelectorAll('[data-test="image"]')]
                    .some((i) => i.complete && i.naturalWidth > 0));
            await shot(pb, 'image');
        });
    }, a);

    // d) search in the encrypted chat
    await scenario('d) search', pages, async (check) => {
        const text = `please find ${M_SEARCH} here`;
        out({ marker: M_SEARCH, where: 'search' });
        await check('A sends a word to find; acked', async () => {
            await openDirect(pa, B);
            await send(pa, text);
            await acked(pa, A, text);
        });
        await check('B searches it and gets a search-result', async () => {
            // the index catches up within seconds (API.md, GET
            // /v1/search): search again until it answers
            const res = pb.locator(sel('search-result'))
                .filter({ hasText: M_SEARCH });
            const end = Date.now() + 20000;
            for (;;) {
                await hook(pb, 'search-input').fill(M_SEARCH);
                await hook(pb, 'search-go').click();
                try {
                    await res.first().waitFor({ timeout: 2000 });
                    break;
                } catch (e) {
                    if (Date.now() > end) {
                        throw new Error(`no search-result with ${M_SEARCH}`
                                        + ' within 20 s');
                    }
                }
            }
            await shot(pb, 'search');
        });
    }, a);

    // e) typing, then scroll-back
    await scenario('e) typing, load-older', pages, async (check) => {
        await check('A types, B sees typing', async () => {
            await openDirect(pa, B);
            await openDirect(pb, A);
            // as a person would: typing on until it shows (a client
            // sends typing once every few seconds at most)
            const shows = hook(pb, 'typing');
            const end = Date.now() + STEP_MS;
            while (!await shows.isVisible()) {
                if (Date.now() > end) {
                    throw new Error(`no typing on B within ${STEP_MS} ms`);
                }
                await hook(pa, 'compose').pressSequentially('typing ',
                                                            { delay: 40 });
                await shows.waitFor({ state: 'visible', timeout: 1000 })
                    .catch(() => {});
            }
            await hook(pa, 'compose').fill('');
        });
        const N = 55;
        const old = (i) => `older ${String(i).padStart(3, '0')} ${RUN}`;
        // none of them in the history yet: the persist worker waits
        // until B has reloaded (below)
        stackSvc('persist', 'stop');
        persistStopped = true;
        await check(`A sends ${N} more; all acked`, async () => {
            for (let i = 1; i <= N; i++) await send(pa, old(i));
            await until(pa, `${N} messages acked`, ([f, r, n]) =>
                [...document.querySelectorAll(f)]
                    .filter((e) => e.textContent.includes(r)
                            && e.textContent.includes('older ')
                            && e.dataset.id).length >= n,
                [fromSel(A), RUN, N], 30000);
        });
        await check('B reloads: a page of history; load-older brings older',
                    async () => {
            // B's read receipt of the newest is out, so the reloaded page
            // does not get the N again on connect, and the history has
            // none of them yet (the persist worker stopped, as if it lagged
            // behind the acks): the page asks for the newest page again
            // until history reaches the newest seq it had seen (WEB.md)
            await status(pa, A, old(N), 'read');
            const newest = await message(pa, A, old(N)).first()
                .getAttribute('data-id');
            await persisted(pb, A, newest, 0).then(() => {
                throw new Error('the newest is in the history already');
            }, () => {});
            await reload(pb, B);
            await openDirect(pb, A);
            await sleep(1000);
            stackSvc('persist', 'start');
            persistStopped = false;
            await seen(pb, A, old(N));
            // the numbers of the "older NNN" messages shown, once the
            // first page is all there (the same for 1.5 s)
            const shown = () => pb.evaluate((r) =>
                [...document.querySelectorAll('[data-test="message"]')]
                    .map((e) => e.textContent.match(
                        new RegExp(`older (\\d{3}) ${r}`)))
                    .filter(Boolean).map((m) => Number(m[1])), RUN);
            let n = -1;
            for (let same = 0, i = 0; same < 3 && i < 40; i++) {
                const now = (await shown()).length;
                same = now === n ? same + 1 : 0;
                n = now;
                await sleep(500);
            }
            const first = Math.min(...await shown());
            if (first <= 1) {
                throw new Error(`${n} of the ${N} shown at once: nothing `
                                + 'to load');
            }
            const older = hook(pb, 'load-older');
            await older.waitFor({ state: 'visible', timeout: STEP_MS })
                .catch(async () => {
                    const now = await shown();
                    throw new Error('no visible load-older while the oldest'
                                    + ` shown is "${old(first)}" (then `
                                    + `${now.length} shown, the oldest `
                                    + `${Math.min(...now)})`);
                });
            // the button's click alone: a real click scrolls it into
            // view first, and scrolling to the top loads the next page by
            // itself (WEB.md), which may hide the button (nothing older
            // left) before the click lands
            await older.dispatchEvent('click');
            await until(pb, `a message older than "${old(first)}"`,
                        ([r, f]) => [...document.querySelectorAll(
                            '[data-test="message"]')].some((e) => {
                                const m = e.textContent.match(
                                    new RegExp(`older (\\d{3}) ${r}`));
                                return m && Number(m[1]) < f;
                            }), [RUN, first]);
            const before = n;
            out({ note: `B: ${before} of the ${N} shown, the oldest `
                        + `${first}; ${(await shown()).length} after `
                        + 'load-older' });
        });
    }, a);

    // a), the end: B's tab closes, A sees B go offline
    await scenario('a) presence', pages, async (check) => {
        await check('B\'s tab closes: A\'s presence goes offline',
                    async () => {
            await openDirect(pa, B);
            await pa.locator(sel('presence', { online: 'true' }))
                .waitFor({ timeout: STEP_MS });
            const t = Date.now();
            await pb.close();
            await pa.locator(sel('presence', { online: 'false' }))
                .waitFor({ timeout: 20000 });
            out({ note: `offline after ${Date.now() - t} ms` });
        });
    }, a);

    // B again, from a new browser (a new device: a new identity key): A
    // sees B online again and is warned that B's key changed
    await scenario('g) new device', pages, async (check) => {
        await check('B signs in from a new browser', async () => {
            ctx.B2 = await browser.newContext({ viewport: { width: 900,
                                                            height: 700 } });
            page.B2 = await ctx.B2.newPage();
            await page.B2.goto(WEB);
            await login(page.B2, B);
        });
        await check('A: B online again, and a key-warning about B',
                    async () => {
            await pa.locator(sel('presence', { online: 'true' }))
                .waitFor({ timeout: STEP_MS });
            // A's client asks for B's key again when it is 10 s old and
            // a message goes out (WEB.md): send until it warns
            const warned = pa.locator(sel('key-warning'));
            const end = Date.now() + 30000;
            for (let i = 1; await warned.count() === 0; i++) {
                if (Date.now() > end) {
                    throw new Error('no key-warning within 30 s');
                }
                await send(pa, `after the key change ${i}`);
                await warned.first().waitFor({ timeout: 5000 })
                    .catch(() => {});
            }
            await shot(pa, 'key-warning');
        });
        await check('A logs out: the sign-in screen again', async () => {
            await hook(pa, 'logout').click();
            await hook(pa, 'username').waitFor({ timeout: STEP_MS });
            await hook(pa, 'me').filter({ hasText: A })
                .waitFor({ state: 'hidden', timeout: STEP_MS });
        });
    }, a);

    // the wire: what left the browsers is ciphertext, and the search went
    // out as blind-index tokens
    await scenario('wire', pages, async (check) => {
        const sends = wire.frames.filter((f) => /"type":"send"/.test(f.text));
        await check(`the pages sent e2e messages (${sends.length} send `
                    + `frames of ${wire.frames.length})`, async () => {
            if (!sends.some((f) => /"e2e":true/.test(f.text))) {
                throw new Error('no send frame with "e2e":true seen');
            }
            const plain = sends.filter((f) => !/"e2e":true/.test(f.text));
            if (plain.length) {
                throw new Error(`${plain.length} send frames without e2e, `
                                + `e.g. ${plain[0].text.slice(0, 300)}`);
            }
        });
        await check('no marker word in any request or frame they sent',
                    async () => {
            const all = [
                ...wire.requests.map((r) => [r.who, `${r.url} ${r.body}`]),
                ...wire.frames.map((f) => [f.who, f.text])];
            for (const m of [M_DIRECT, M_GROUP, M_SEARCH]) {
                const hit = all.find(([, t]) => t.includes(m));
                if (hit) {
                    throw new Error(`${hit[0]} sent "${m}" in plain: `
                                    + hit[1].slice(0, 300));
                }
            }
        });
        await check('B\'s search went out as tokens (GET /v1/search?tokens=)',
                    async () => {
            if (!wire.requests.some((r) => r.who === 'B'
                                    && /\/v1\/search\?tokens=/.test(r.url))) {
                throw new Error('no GET /v1/search?tokens= from B');
            }
        });
    });

    await browser.close();
    out({ note: `the browser scenarios took ${Date.now() - t0} ms` });
    out({ done: checks });
}

main().catch((e) => {
    console.error(`suite.mjs: ${e.stack || e}`);
    process.exitCode = 1;
}).finally(() => {
    if (persistStopped) {
        stackSvc('persist', 'start');
    }
    if (process.exitCode) {
        process.exit();
    }
});

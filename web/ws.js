// ngx_chat web client: the WebSocket (/v1/ws?access_token=...), with
// reconnects (exponential backoff 0.5 s .. 30 s with jitter), a "sync"
// after each reconnect, and the sends not yet acknowledged sent again with
// the same client_id (the server answers a repeat with the first ack).

const MIN_DELAY = 500;
const MAX_DELAY = 30000;
const PING_EVERY = 60000;

export class Connection {
    // handlers: onFrame(frame), onState(state), onOpen(reconnected),
    // onFatal(reason) when the session was closed (1008), onRefused() when
    // a connection failed before it opened, onError(text)
    constructor(token, handlers) {
        this.token = token;
        this.h = handlers;
        this.ws = null;
        this.attempt = 0;
        this.opened = false;
        this.closed = false;
        this.timer = null;
        this.pinger = null;
        this.pending = new Map();   // client_id -> send frame, until acked
        this.state = null;
    }

    url() {
        const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
        return proto + '//' + location.host + '/v1/ws?access_token=' +
            encodeURIComponent(this.token);
    }

    setState(s) {
        this.state = s;
        this.h.onState(s);
    }

    start() {
        this.setState(this.opened ? 'reconnecting' : 'connecting');
        let ws;
        try {
            ws = new WebSocket(this.url());
        } catch (e) {
            this.h.onError('WebSocket: ' + e.message);
            this.retry();
            return;
        }
        this.ws = ws;

        ws.onopen = () => {
            const again = this.opened;
            ws.wasOpen = true;
            this.opened = true;
            this.attempt = 0;
            this.setState('connected');
            if (again) {
                this.raw({type: 'sync'});
            }
            for (const f of this.pending.values()) {
                this.raw(f);
            }
            this.pinger = setInterval(() => this.raw({type: 'ping'}),
                                      PING_EVERY);
            this.h.onOpen(again);
        };

        ws.onmessage = (ev) => {
            let f;
            try {
                f = JSON.parse(ev.data);
            } catch (e) {
                this.h.onError('bad frame from the server');
                return;
            }
            if (f.type === 'ack') {
                this.pending.delete(f.client_id);
            } else if (f.type === 'error' && f.client_id &&
                       f.code !== 'in_progress' && f.code !== 'unavailable'
                       && f.code !== 'busy' && f.code !== 'rate_limited') {
                // refused for good: do not send it again
                this.pending.delete(f.client_id);
            }
            this.h.onFrame(f);
        };

        ws.onclose = (ev) => {
            clearInterval(this.pinger);
            this.ws = null;
            if (ws.readyState === WebSocket.CLOSED && !ws.wasOpen &&
                this.h.onRefused) {
                // refused before the upgrade: maybe the token (401)
                this.h.onRefused();
            }
            if (this.closed) {
                return;
            }
            if (ev.code === 1008) {
                this.closed = true;
                this.h.onFatal(ev.reason || 'the session ended');
                return;
            }
            this.retry();
        };

        ws.onerror = () => {
            // onclose follows and reconnects
        };
    }

    retry() {
        if (this.closed) {
            return;
        }
        this.setState('reconnecting');
        const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
        const delay = base / 2 + Math.random() * base / 2;
        this.attempt++;
        this.timer = setTimeout(() => this.start(), delay);
    }

    raw(frame) {
        if (this.ws && this.ws.readyState === WebSocket.OPEN) {
            this.ws.send(JSON.stringify(frame));
            return true;
        }
        return false;
    }

    // a send frame: kept until its ack, sent again on reconnect
    send(frame) {
        this.pending.set(frame.client_id, frame);
        this.raw(frame);
    }

    // anything else (receipt, typing): only while connected
    post(frame) {
        return this.raw(frame);
    }

    // the server refused it for good
    forget(clientId) {
        this.pending.delete(clientId);
    }

    // resend what is waiting for its ack after the server said "try again"
    resend(clientId, delay) {
        setTimeout(() => {
            const f = this.pending.get(clientId);
            if (f) {
                this.raw(f);
            }
        }, delay);
    }

    close() {
        this.closed = true;
        clearTimeout(this.timer);
        clearInterval(this.pinger);
        if (this.ws) {
            this.ws.close(1000);
        }
    }
}

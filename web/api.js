// ngx_chat web client: the HTTP API (same origin, /v1/...).  The session
// token lives in sessionStorage, so each tab or browser context is a
// session of its own.

const TOKEN = 'ngx_chat_token';
const USER = 'ngx_chat_user';

export class ApiError extends Error {
    constructor(status, code, message) {
        super(message || code || ('HTTP ' + status));
        this.status = status;
        this.code = code;
    }
}

export function session() {
    const token = sessionStorage.getItem(TOKEN);
    const user = sessionStorage.getItem(USER);
    return token && user ? {token, user: JSON.parse(user)} : null;
}

export function saveSession(token, user) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, JSON.stringify(user));
}

export function clearSession() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
}

// JSON in, JSON out; throws ApiError with the server's code and message
export async function call(method, path, body, opts = {}) {
    const headers = {};
    const s = session();
    let payload;

    if (s && !opts.noAuth) {
        headers.Authorization = 'Bearer ' + s.token;
    }

    if (opts.raw) {
        headers['Content-Type'] = opts.type;
        payload = opts.raw;
    } else if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
    }

    let res;
    try {
        res = await fetch(path, {method, headers, body: payload});
    } catch (e) {
        throw new ApiError(0, 'network', 'cannot reach the server: ' +
                           e.message);
    }

    if (res.status === 204) {
        return null;
    }

    const text = await res.text();
    let json = null;
    try {
        json = text ? JSON.parse(text) : null;
    } catch (e) {
        json = null;
    }

    if (!res.ok) {
        throw new ApiError(res.status, json && json.error,
                           (json && json.message) || text.slice(0, 200) ||
                           ('HTTP ' + res.status));
    }
    return json;
}

export const api = {
    register: (username, password) =>
        call('POST', '/v1/users', {username, password}, {noAuth: true}),
    login: (username, password) =>
        call('POST', '/v1/sessions', {username, password}, {noAuth: true}),
    logout: () => call('DELETE', '/v1/sessions/current'),
    me: () => call('GET', '/v1/me'),
    lookup: (username) =>
        call('GET', '/v1/users/lookup?username=' +
             encodeURIComponent(username)),
    friends: () => call('GET', '/v1/friends'),
    befriend: (id) => call('PUT', '/v1/friends/' + id),
    putKey: (publicKey) => call('PUT', '/v1/keys', {public_key: publicKey}),
    getKey: (id) => call('GET', '/v1/users/' + id + '/keys'),
    createGroup: (name, members) =>
        call('POST', '/v1/groups', {name, members}),
    group: (gid) => call('GET', '/v1/groups/' + gid),
    addMember: (gid, uid) =>
        call('PUT', '/v1/groups/' + gid + '/members/' + uid),
    presence: (id) => call('GET', '/v1/users/' + id + '/presence'),
    history: (conv, before, limit = 30) =>
        call('GET', '/v1/messages?' + (conv.kind === 'group' ?
             'group=' : 'with=') + conv.id + '&limit=' + limit +
             (before ? '&before=' + before : '')),
    search: (tokens) =>
        call('GET', '/v1/search?tokens=' + tokens.join(',') + '&limit=50'),
    upload: (file) =>
        call('POST', '/v1/media', undefined, {raw: file, type: file.type}),
};

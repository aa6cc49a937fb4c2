
/*
 * Copyright (C) ngx_chat authors
 *
 * The S3-compatible media store (ngx_chat_media_s3.h).
 *
 * The PUT is a subrequest, as auth_request's: NGX_HTTP_SUBREQUEST_WAITED,
 * header only (the store's answer body is not wanted), its status taken
 * by a post-subrequest handler; nginx then posts the parent, whose
 * write_event_handler goes on.  A subrequest shares its parent's request
 * body (the temporary file: the proxy module sends it from there, never
 * whole in memory) and its variables, so the headers' values are set in
 * the parent's variables before the subrequest starts.  The subrequest's
 * method is PUT; its URI is chat_media_s3_location followed by the
 * object's path without its "/", which "proxy_pass <endpoint>/;" in that
 * location turns back into the path.
 *
 * The credentials are read once, at configuration; the secret is used by
 * chat_sigv4 only and never logged (neither is the Authorization header).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_media_s3.h"
#include "chat_sigv4.h"


#define NGX_CHAT_MEDIA_S3_HOST            0
#define NGX_CHAT_MEDIA_S3_DATE            1
#define NGX_CHAT_MEDIA_S3_CONTENT_SHA256  2
#define NGX_CHAT_MEDIA_S3_CONTENT_TYPE    3
#define NGX_CHAT_MEDIA_S3_CONTENT_LENGTH  4
#define NGX_CHAT_MEDIA_S3_AUTHORIZATION   5
#define NGX_CHAT_MEDIA_S3_NVARS           6

#define NGX_CHAT_MEDIA_S3_DATE_LEN        16    /* 20240102T030405Z */
#define NGX_CHAT_MEDIA_S3_AUTH_MAX        512
#define NGX_CHAT_MEDIA_S3_PATH_MAX        (1 + 63 + 1 + 2 + 1 + 64 + 1 + 8)
#define NGX_CHAT_MEDIA_S3_QUERY_MAX       1024


typedef struct {
    ngx_chat_media_put_t      *put;
    u_char                     path[NGX_CHAT_MEDIA_S3_PATH_MAX + 1];
    u_char                     date[NGX_CHAT_MEDIA_S3_DATE_LEN + 1];
    u_char                     length[NGX_OFF_T_LEN];
    char                       auth[NGX_CHAT_MEDIA_S3_AUTH_MAX];
} ngx_chat_media_s3_put_t;


static ngx_int_t ngx_chat_media_s3_put_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static u_char *ngx_chat_media_s3_path(u_char *p, ngx_chat_main_conf_t *cmcf,
    const char *sha256, const char *ext);
static void ngx_chat_media_s3_date(u_char *date);
static void ngx_chat_media_s3_key(ngx_chat_main_conf_t *cmcf,
    chat_sigv4_key_t *k);
static void ngx_chat_media_s3_set(ngx_http_request_t *r, ngx_int_t index,
    u_char *data, size_t len);
static ngx_int_t ngx_chat_media_s3_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_str_t  ngx_chat_media_s3_var_names[NGX_CHAT_MEDIA_S3_NVARS] = {
    ngx_string("chat_media_s3_host"),
    ngx_string("chat_media_s3_date"),
    ngx_string("chat_media_s3_content_sha256"),
    ngx_string("chat_media_s3_content_type"),
    ngx_string("chat_media_s3_content_length"),
    ngx_string("chat_media_s3_authorization")
};


static ngx_str_t  ngx_chat_media_s3_put_method = ngx_string("PUT");


ngx_int_t
ngx_chat_media_s3_put(ngx_http_request_t *r, ngx_chat_main_conf_t *cmcf,
    off_t size, const char *sha256, const char *ext, const char *mime,
    ngx_chat_media_put_t *put)
{
    int                           n;
    u_char                       *p;
    ngx_str_t                     uri;
    chat_sigv4_key_t              k;
    chat_sigv4_header_t           h[4];
    ngx_http_request_t           *sr;
    ngx_chat_media_s3_put_t      *s3;
    ngx_http_post_subrequest_t   *ps;

    s3 = ngx_pcalloc(r->pool, sizeof(ngx_chat_media_s3_put_t));
    if (s3 == NULL) {
        return NGX_ERROR;
    }

    s3->put = put;

    p = ngx_chat_media_s3_path(s3->path, cmcf, sha256, ext);
    *p = '\0';

    ngx_chat_media_s3_date(s3->date);
    ngx_chat_media_s3_key(cmcf, &k);

    /* every header sent is signed, except Content-Length and Connection */
    h[0].name = "content-type";
    h[0].value = mime;
    h[1].name = "host";
    h[1].value = (char *) cmcf->media_s3_host.data;
    h[2].name = "x-amz-content-sha256";
    h[2].value = sha256;
    h[3].name = "x-amz-date";
    h[3].value = (char *) s3->date;

    n = chat_sigv4_authorization(&k, "PUT", (char *) s3->path, NULL, h, 4,
                                 sha256, (char *) s3->date, s3->auth,
                                 sizeof(s3->auth));
    if (n < 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "chat: media: S3 PUT %s could not be signed",
                      s3->path);
        return NGX_ERROR;
    }

    ngx_chat_media_s3_set(r, cmcf->media_s3_vars[NGX_CHAT_MEDIA_S3_HOST],
                          cmcf->media_s3_host.data, cmcf->media_s3_host.len);
    ngx_chat_media_s3_set(r, cmcf->media_s3_vars[NGX_CHAT_MEDIA_S3_DATE],
                          s3->date, NGX_CHAT_MEDIA_S3_DATE_LEN);
    ngx_chat_media_s3_set(r,
                         cmcf->media_s3_vars[NGX_CHAT_MEDIA_S3_CONTENT_SHA256],
                         (u_char *) sha256, ngx_strlen(sha256));
    ngx_chat_media_s3_set(r,
                          cmcf->media_s3_vars[NGX_CHAT_MEDIA_S3_CONTENT_TYPE],
                          (u_char *) mime, ngx_strlen(mime));
    ngx_chat_media_s3_set(r,
                        cmcf->media_s3_vars[NGX_CHAT_MEDIA_S3_CONTENT_LENGTH],
                        s3->length, ngx_sprintf(s3->length, "%O", size)
                                    - s3->length);
    ngx_chat_media_s3_set(r,
                          cmcf->media_s3_vars[NGX_CHAT_MEDIA_S3_AUTHORIZATION],
                          (u_char *) s3->auth, n);

    uri.len = cmcf->media_s3_uri.len + (p - s3->path) - 1;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(uri.data, cmcf->media_s3_uri.data,
                          cmcf->media_s3_uri.len),
               s3->path + 1, (p - s3->path) - 1);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_chat_media_s3_put_done;
    ps->data = s3;

    if (ngx_http_subrequest(r, &uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->method = NGX_HTTP_PUT;
    sr->method_name = ngx_chat_media_s3_put_method;
    sr->header_only = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "chat: media: S3 PUT %s", s3->path);

    return NGX_AGAIN;
}


/*
 * Called as the subrequest is finalized, maybe twice (an error status,
 * then NGX_OK once nginx's error response is made): the last status wins.
 */

static ngx_int_t
ngx_chat_media_s3_put_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_chat_media_s3_put_t *s3 = data;

    ngx_uint_t  status;

    if (sr->headers_out.status) {
        status = sr->headers_out.status;

    } else if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        status = rc;

    } else {
        status = NGX_HTTP_BAD_GATEWAY;
    }

    if (!s3->put->done || status != s3->put->status) {
        if (status < 200 || status > 299) {
            ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                          "chat: media: S3 PUT %s: %ui", s3->path, status);
        }
    }

    s3->put->done = 1;
    s3->put->status = status;
    s3->put->stored = (status >= 200 && status <= 299);

    /* an NGX_ERROR would end the main request too: it answers instead */
    if (rc == NGX_ERROR && !sr->connection->error) {
        return NGX_HTTP_BAD_GATEWAY;
    }

    return rc;
}


ngx_int_t
ngx_chat_media_s3_serve(ngx_http_request_t *r, ngx_chat_main_conf_t *cmcf,
    const char *sha256, const char *ext)
{
    int                n;
    u_char            *p, *url;
    size_t             len;
    time_t             expires;
    ngx_int_t          rc;
    chat_sigv4_key_t   k;
    ngx_table_elt_t   *h;
    u_char             path[NGX_CHAT_MEDIA_S3_PATH_MAX + 1];
    u_char             date[NGX_CHAT_MEDIA_S3_DATE_LEN + 1];
    char               query[NGX_CHAT_MEDIA_S3_QUERY_MAX];

    p = ngx_chat_media_s3_path(path, cmcf, sha256, ext);
    *p = '\0';

    ngx_chat_media_s3_date(date);
    ngx_chat_media_s3_key(cmcf, &k);

    expires = ngx_min(cmcf->media_url_ttl, NGX_CHAT_MEDIA_S3_PRESIGN_MAX);

    n = chat_sigv4_presign(&k, "GET", (char *) cmcf->media_s3_host.data,
                           (char *) path, (char *) date, (unsigned) expires,
                           query, sizeof(query));
    if (n < 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "chat: media: S3 GET %s could not be presigned", path);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the path is A-Z a-z 0-9 . - / only: URI-encoded it is itself */
    len = cmcf->media_s3_origin.len + (p - path) + 1 + n;

    url = ngx_pnalloc(r->pool, len);
    if (url == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(url, cmcf->media_s3_origin.data, cmcf->media_s3_origin.len);
    p = ngx_cpymem(p, path, ngx_strlen(path));
    *p++ = '?';
    p = ngx_cpymem(p, query, n);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value.data = url;
    h->value.len = p - url;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    r->headers_out.location = h;

    /* the URL is a credential for a while: kept by nobody */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "private, no-store");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    r->headers_out.status = NGX_HTTP_MOVED_TEMPORARILY;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/* "/<bucket>/<2 hex>/<64 hex>.<ext>" */

static u_char *
ngx_chat_media_s3_path(u_char *p, ngx_chat_main_conf_t *cmcf,
    const char *sha256, const char *ext)
{
    *p++ = '/';
    p = ngx_cpymem(p, cmcf->media_s3_bucket.data, cmcf->media_s3_bucket.len);
    *p++ = '/';

    return ngx_chat_media_key(p, sha256, ext);
}


static void
ngx_chat_media_s3_date(u_char *date)
{
    ngx_tm_t  tm;

    ngx_gmtime(ngx_time(), &tm);

    (void) ngx_sprintf(date, "%4d%02d%02dT%02d%02d%02dZ%Z",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}


static void
ngx_chat_media_s3_key(ngx_chat_main_conf_t *cmcf, chat_sigv4_key_t *k)
{
    k->access_key = (char *) cmcf->media_s3_key_id.data;
    k->secret_key = (char *) cmcf->media_s3_secret.data;
    k->region = (char *) cmcf->media_s3_region.data;
    k->service = "s3";
    k->session_token = NULL;
}


/* a value in r's variables, which its subrequests share */

static void
ngx_chat_media_s3_set(ngx_http_request_t *r, ngx_int_t index, u_char *data,
    size_t len)
{
    ngx_http_variable_value_t  *v;

    v = &r->variables[index];

    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->escape = 0;
}


/* outside an upload's PUT the variables are not found */

static ngx_int_t
ngx_chat_media_s3_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->not_found = 1;

    return NGX_OK;
}


ngx_int_t
ngx_chat_media_s3_add_variables(ngx_conf_t *cf)
{
    ngx_uint_t             i;
    ngx_http_variable_t   *var;

    for (i = 0; i < NGX_CHAT_MEDIA_S3_NVARS; i++) {
        var = ngx_http_add_variable(cf, &ngx_chat_media_s3_var_names[i],
                                    NGX_HTTP_VAR_NOHASH);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = ngx_chat_media_s3_variable;
    }

    return NGX_OK;
}


ngx_int_t
ngx_chat_media_s3_postconfiguration(ngx_conf_t *cf,
    ngx_chat_main_conf_t *cmcf)
{
    ngx_uint_t  i;

    if (cmcf->media_s3_bucket.len == 0) {
        return NGX_OK;
    }

    for (i = 0; i < NGX_CHAT_MEDIA_S3_NVARS; i++) {
        cmcf->media_s3_vars[i] =
            ngx_http_get_variable_index(cf, &ngx_chat_media_s3_var_names[i]);

        if (cmcf->media_s3_vars[i] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a NUL-terminated copy */

static ngx_int_t
ngx_chat_media_s3_dup(ngx_conf_t *cf, u_char *data, size_t len,
    ngx_str_t *out)
{
    out->data = ngx_pnalloc(cf->pool, len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, data, len);
    out->data[len] = '\0';
    out->len = len;

    return NGX_OK;
}


/* chat_media_s3 http[s]://host[:port] bucket region */

char *
ngx_chat_media_s3(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    u_char      *host, *last, *colon;
    size_t       i, n;
    ngx_str_t   *value, origin;
    ngx_uint_t   https;

    if (cmcf->media_s3_bucket.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    origin = value[1];

    if (origin.len > 7 && ngx_strncmp(origin.data, "http://", 7) == 0) {
        https = 0;
        host = origin.data + 7;

    } else if (origin.len > 8
               && ngx_strncmp(origin.data, "https://", 8) == 0)
    {
        https = 1;
        host = origin.data + 8;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_media_s3: the endpoint \"%V\" must be "
                           "http://host[:port] or https://host[:port]",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    last = origin.data + origin.len;

    if (last[-1] == '/') {
        last--;
    }

    colon = NULL;

    for (n = 0; host + n < last; n++) {
        if (host[n] == ':') {
            colon = host + n;
            continue;
        }

        if (host[n] <= 0x20 || host[n] >= 0x7f
            || ngx_strchr("/?#@%", host[n]) != NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "chat_media_s3: the endpoint \"%V\" must be "
                               "a scheme and host[:port], with no path",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (n == 0 || colon == host) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_media_s3: no host in \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* a client sends no default port in Host: neither is it signed */
    if (colon
        && ((!https && last - colon == 3 && ngx_strncmp(colon, ":80", 3) == 0)
            || (https && last - colon == 4
                && ngx_strncmp(colon, ":443", 4) == 0)))
    {
        last = colon;
    }

    if (ngx_chat_media_s3_dup(cf, host, last - host, &cmcf->media_s3_host)
        != NGX_OK
        || ngx_chat_media_s3_dup(cf, origin.data, last - origin.data,
                                 &cmcf->media_s3_origin)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* S3's bucket names: 3 to 63 of a-z 0-9 . - */
    if (value[2].len < 3 || value[2].len > 63) {
        goto bad_bucket;
    }

    for (i = 0; i < value[2].len; i++) {
        if (!((value[2].data[i] >= 'a' && value[2].data[i] <= 'z')
              || (value[2].data[i] >= '0' && value[2].data[i] <= '9')
              || value[2].data[i] == '.' || value[2].data[i] == '-'))
        {
            goto bad_bucket;
        }
    }

    for (i = 0; i < value[3].len; i++) {
        if (!((value[3].data[i] >= 'a' && value[3].data[i] <= 'z')
              || (value[3].data[i] >= '0' && value[3].data[i] <= '9')
              || value[3].data[i] == '-'))
        {
            break;
        }
    }

    if (value[3].len == 0 || value[3].len > 64 || i < value[3].len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_media_s3: the region \"%V\" must be 1 to 64 "
                           "of a-z 0-9 -, as \"us-east-1\"", &value[3]);
        return NGX_CONF_ERROR;
    }

    if (ngx_chat_media_s3_dup(cf, value[2].data, value[2].len,
                              &cmcf->media_s3_bucket)
        != NGX_OK
        || ngx_chat_media_s3_dup(cf, value[3].data, value[3].len,
                                 &cmcf->media_s3_region)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

bad_bucket:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "chat_media_s3: the bucket \"%V\" must be 3 to 63 of "
                       "a-z 0-9 . -", &value[2]);
    return NGX_CONF_ERROR;
}


/*
 * chat_media_s3_credentials_file FILE: the access key id on its first
 * line, the secret access key on its second
 */

char *
ngx_chat_media_s3_credentials_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    char               sig[65];
    u_char            *p, *last, *nl;
    ngx_str_t          file, line[2];
    ngx_uint_t         i;
    chat_sigv4_key_t   k;

    if (cmcf->media_s3_key_id.data) {
        return "is duplicate";
    }

    if (ngx_chat_conf_secret_file(cf, cmd, 1024, &file) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    p = file.data;
    last = file.data + file.len;

    for (i = 0; i < 2; i++) {
        nl = ngx_strlchr(p, last, '\n');

        line[i].data = p;
        line[i].len = (nl ? nl : last) - p;

        if (line[i].len && line[i].data[line[i].len - 1] == '\r') {
            line[i].len--;
        }

        p = nl ? nl + 1 : last;
    }

    /* a file of two lines (the newline at its end is already gone) */
    k.access_key = NULL;

    if (p == last && line[0].len && line[1].len) {

        if (ngx_chat_media_s3_dup(cf, line[0].data, line[0].len,
                                  &cmcf->media_s3_key_id)
            != NGX_OK
            || ngx_chat_media_s3_dup(cf, line[1].data, line[1].len,
                                     &cmcf->media_s3_secret)
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        k.access_key = (char *) cmcf->media_s3_key_id.data;
    }

    ngx_explicit_memzero(file.data, file.len);

    /* chat_sigv4's own checks, with a region and date that pass theirs */
    if (k.access_key) {
        k.secret_key = (char *) cmcf->media_s3_secret.data;
        k.region = "us-east-1";
        k.service = "s3";
        k.session_token = NULL;

        if (chat_sigv4_signature(&k, "20240101T000000Z", "x", 1, sig)
            == 0)
        {
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "chat_media_s3_credentials_file: \"%V\" must hold "
                       "the access key id (visible ASCII, no / , = ;) on "
                       "its first line and the secret access key (at most "
                       "%d bytes) on its second, and nothing else",
                       &((ngx_str_t *) cf->args->elts)[1],
                       CHAT_SIGV4_SECRET_MAX);

    return NGX_CONF_ERROR;
}


char *
ngx_chat_media_s3_init_conf(ngx_conf_t *cf, ngx_chat_main_conf_t *cmcf)
{
    if (cmcf->media_s3_uri.data == NULL) {
        ngx_str_set(&cmcf->media_s3_uri, "/_chat_s3/");
    }

    if (cmcf->media_s3_uri.len < 2 || cmcf->media_s3_uri.data[0] != '/'
        || cmcf->media_s3_uri.data[cmcf->media_s3_uri.len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_media_s3_location\" must start and end "
                           "with \"/\"");
        return NGX_CONF_ERROR;
    }

    if (cmcf->media_s3_bucket.len == 0) {
        if (cmcf->media_s3_key_id.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_media_s3_credentials_file\" needs "
                               "\"chat_media_s3\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cmcf->media_s3_key_id.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_media_s3\" needs "
                           "\"chat_media_s3_credentials_file\"");
        return NGX_CONF_ERROR;
    }

    /* uploads are spooled to <chat_media_path>/.tmp before the PUT */
    if (cmcf->media_path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_media_s3\" needs \"chat_media_path\" "
                           "(where uploads are written before they are "
                           "sent)");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

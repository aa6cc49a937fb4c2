
/*
 * Copyright (C) ngx_chat authors
 *
 * JSON responses: every answer of the chat API is a JSON object, errors
 * are {"error":"<code>","message":"<text>"}.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_metrics.h"


ngx_chat_ctx_t *
ngx_chat_get_ctx(ngx_http_request_t *r)
{
    ngx_chat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_chat_module);
    }

    return ctx;
}


ngx_int_t
ngx_chat_http_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json)
{
    char       *text;
    ngx_int_t   rc;

    text = json_dumps(json, JSON_COMPACT|JSON_PRESERVE_ORDER);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_http_send_text(r, status, (u_char *) text,
                                 ngx_strlen(text));
    free(text);

    return rc;
}


/* a JSON text made elsewhere (by PostgreSQL, say), sent as it is */

ngx_int_t
ngx_chat_http_send_text(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, data, len);
    *b->last++ = '\n';

    if (status >= NGX_HTTP_BAD_REQUEST) {
        ngx_chat_metrics_api_error(data, len);
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_chat_http_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    json_t     *json;
    ngx_int_t   rc;

    json = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_http_send_json(r, status, json);
    json_decref(json);

    return rc;
}


/*
 * For a status that nginx's body handling returned (a malformed chunked
 * body, a body over client_max_body_size): the same answer, in JSON.
 */

ngx_int_t
ngx_chat_http_status_error(ngx_http_request_t *r, ngx_int_t status)
{
    /* what is left of the body cannot be trusted to frame a next request */
    r->keepalive = 0;

    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        return ngx_chat_http_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                   "malformed request body");

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return ngx_chat_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "too_large", "request body too large");

    default:
        return status;
    }
}


/* discards the body; NGX_OK, or an answer already on its way */

ngx_int_t
ngx_chat_http_discard_body(ngx_http_request_t *r, ngx_int_t *rc)
{
    *rc = ngx_http_discard_request_body(r);

    if (*rc == NGX_OK) {
        return NGX_OK;
    }

    *rc = ngx_chat_http_status_error(r, *rc);

    return NGX_ERROR;
}

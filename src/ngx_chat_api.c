
/*
 * Copyright (C) ngx_chat authors
 *
 * The HTTP API under /v1 (accounts, sessions, friends, groups, keys,
 * devices, history, receipts): the chat_api directive, the route table,
 * and the content handler that matches a route, authenticates the caller,
 * reads the JSON body (ngx_chat_api_request.c) and runs the route's
 * handler, which lives in the file of its resource family
 * (ngx_chat_api_*.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_api_request.h"
#include "ngx_chat_api_users.h"
#include "ngx_chat_api_friends.h"
#include "ngx_chat_api_groups.h"
#include "ngx_chat_api_keys.h"
#include "ngx_chat_api_messages.h"
#include "ngx_chat_api_receipts.h"
#include "ngx_chat_api_search.h"
#include "ngx_chat_api_media.h"


static ngx_int_t ngx_chat_api_handler(ngx_http_request_t *r);
static const ngx_chat_api_route_t *ngx_chat_api_route(ngx_chat_api_ctx_t *ctx,
    ngx_uint_t *allowed);
static ngx_int_t ngx_chat_api_allow(ngx_http_request_t *r,
    ngx_uint_t methods);


static const ngx_chat_api_route_t  ngx_chat_api_routes[] = {

    { NGX_HTTP_POST, "/v1/users", 0, 1, ngx_chat_api_register },
    { NGX_HTTP_POST, "/v1/sessions", 0, 1, ngx_chat_api_login },
    { NGX_HTTP_DELETE, "/v1/sessions/current", 1, 0, ngx_chat_api_logout },
    { NGX_HTTP_GET, "/v1/me", 1, 0, ngx_chat_api_me },
    { NGX_HTTP_GET, "/v1/friends", 1, 0, ngx_chat_api_friends },
    { NGX_HTTP_PUT, "/v1/friends/#", 1, 0, ngx_chat_api_friend_put },
    { NGX_HTTP_DELETE, "/v1/friends/#", 1, 0, ngx_chat_api_friend_delete },
    { NGX_HTTP_POST, "/v1/groups", 1, 1, ngx_chat_api_group_create },
    { NGX_HTTP_GET, "/v1/groups/#", 1, 0, ngx_chat_api_group_get },
    { NGX_HTTP_PUT, "/v1/groups/#/members/#", 1, 0,
      ngx_chat_api_member_put },
    { NGX_HTTP_DELETE, "/v1/groups/#/members/#", 1, 0,
      ngx_chat_api_member_delete },
    { NGX_HTTP_PUT, "/v1/keys", 1, 1, ngx_chat_api_key_put },
    { NGX_HTTP_GET, "/v1/users/lookup", 1, 0, ngx_chat_api_user_lookup },
    { NGX_HTTP_GET, "/v1/users/#/keys", 1, 0, ngx_chat_api_key_get },
    { NGX_HTTP_GET, "/v1/users/#/presence", 1, 0,
      ngx_chat_api_presence_get },
    { NGX_HTTP_PUT, "/v1/devices/*", 1, 1, ngx_chat_api_device_put },
    { NGX_HTTP_DELETE, "/v1/devices/*", 1, 0, ngx_chat_api_device_delete },
    { NGX_HTTP_GET, "/v1/messages", 1, 0, ngx_chat_api_messages },
    { NGX_HTTP_GET, "/v1/messages/*/receipts", 1, 0, ngx_chat_api_receipts },
    { NGX_HTTP_GET, "/v1/search", 1, 0, ngx_chat_api_search },
    { NGX_HTTP_POST, "/v1/media", 1, NGX_CHAT_API_BODY_RAW,
      ngx_chat_api_media_upload },
    /* by token or by signed URL: the handler decides */
    { NGX_HTTP_GET|NGX_HTTP_HEAD, "/v1/media/*", 0, 0,
      ngx_chat_api_media_get },
    { 0, NULL, 0, 0, NULL }
};


char *
ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf, **clcfp;
    ngx_chat_main_conf_t      *cmcf;

    /* tokens here are looked up in the deny-list (logout) */
    lcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_api_handler;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_chat_module);

    /* their body limits and temporary path: ngx_chat_api_media.c */
    if (cmcf->api_locations == NULL) {
        cmcf->api_locations = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_core_loc_conf_t *));
        if (cmcf->api_locations == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    clcfp = ngx_array_push(cmcf->api_locations);
    if (clcfp == NULL) {
        return NGX_CONF_ERROR;
    }

    *clcfp = clcf;
    cmcf->api = 1;
    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_uint_t                   allowed;
    const char                  *reason;
    ngx_chat_ctx_t              *mctx;
    ngx_pool_cleanup_t          *cln;
    ngx_chat_api_ctx_t          *ctx;
    const ngx_chat_api_route_t  *route;

    mctx = ngx_chat_get_ctx(r);
    if (mctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);
    mctx->api = ctx;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_chat_api_cleanup;
    cln->data = ctx;

    route = ngx_chat_api_route(ctx, &allowed);

    if (route == NULL) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        if (allowed) {
            if (ngx_chat_api_allow(r, allowed) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_chat_http_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "this method is not allowed here");
        }

        return ngx_chat_http_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such resource");
    }

    ctx->route = route;

    /* the route decides, whatever chat_auth says for the location */
    if (route->auth
        && ngx_chat_auth_user(r, &ctx->user_id, &reason) != NGX_OK)
    {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        return ngx_chat_auth_refuse(r, reason);
    }

    if (ngx_chat_worker == NULL || ngx_chat_worker->pg == NULL) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "no database is configured");
    }

    if (route->body == NGX_CHAT_API_BODY_RAW) {
        /* reads the body itself */
        return route->handler(ctx);
    }

    if (!route->body) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        r->main->count++;
        ngx_chat_api_finish(ctx, ngx_chat_api_run(ctx));

        return NGX_DONE;
    }

    if (r->headers_in.content_length_n > (off_t) ctx->conf->api_max_body) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        return ngx_chat_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "too_large", "request body too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_chat_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return ngx_chat_http_status_error(r, rc);
    }

    return NGX_DONE;
}


/* matches the path segment by segment; "#" takes a positive integer id */

static const ngx_chat_api_route_t *
ngx_chat_api_route(ngx_chat_api_ctx_t *ctx, ngx_uint_t *allowed)
{
    u_char                      *p, *last, *s;
    uint64_t                     id;
    const char                  *pat;
    ngx_uint_t                   i, nids, match;
    ngx_http_request_t          *r = ctx->request;
    const ngx_chat_api_route_t  *route;

    *allowed = 0;

    for (i = 0; ngx_chat_api_routes[i].path; i++) {
        route = &ngx_chat_api_routes[i];
        pat = route->path;
        p = r->uri.data;
        last = r->uri.data + r->uri.len;
        nids = 0;
        match = 1;

        while (*pat && match) {
            if (*pat == '#' || *pat == '*') {
                s = p;

                while (p < last && *p != '/') {
                    p++;
                }

                if (p == s) {
                    match = 0;
                    break;
                }

                if (*pat == '*') {
                    ctx->arg.data = s;
                    ctx->arg.len = p - s;

                } else {
                    /* digits only, no leading zero, at most 2^63 - 1 */
                    if (*s == '0' || p - s > 19) {
                        match = 0;
                        break;
                    }

                    for (id = 0; s < p; s++) {
                        if (*s < '0' || *s > '9') {
                            match = 0;
                            break;
                        }

                        id = id * 10 + (*s - '0');
                    }

                    if (!match || id > (uint64_t) INT64_MAX) {
                        match = 0;
                        break;
                    }

                    ctx->id[nids++] = id;
                }

                pat++;
                continue;
            }

            if (p == last || *p != (u_char) *pat) {
                match = 0;
                break;
            }

            p++;
            pat++;
        }

        if (!match || p != last) {
            continue;
        }

        if (!(r->method & route->method)) {
            *allowed |= route->method;
            continue;
        }

        ctx->nids = nids;

        return route;
    }

    return NULL;
}


/* RFC 9110: a 405 says which methods the resource has */

static ngx_int_t
ngx_chat_api_allow(ngx_http_request_t *r, ngx_uint_t methods)
{
    u_char           *p, *start;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    static struct {
        ngx_uint_t   method;
        const char  *name;
    }  names[] = {
        { NGX_HTTP_GET, "GET" }, { NGX_HTTP_POST, "POST" },
        { NGX_HTTP_PUT, "PUT" }, { NGX_HTTP_DELETE, "DELETE" },
        { 0, NULL }
    };

    start = ngx_pnalloc(r->pool, sizeof("GET, POST, PUT, DELETE"));
    h = ngx_list_push(&r->headers_out.headers);

    if (start == NULL || h == NULL) {
        return NGX_ERROR;
    }

    p = start;

    for (i = 0; names[i].name; i++) {
        if (methods & names[i].method) {
            p = ngx_sprintf(p, "%s%s", p == start ? "" : ", ",
                            names[i].name);
        }
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = start;
    h->value.len = p - start;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}

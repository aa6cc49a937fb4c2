
/*
 * Copyright (C) ngx_chat authors
 *
 * Pieces shared by the Redis, PostgreSQL and Kafka clients that run inside
 * nginx workers: event registration, reconnect backoff, status names.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_store.h"


static const char  *ngx_chat_store_rc_names[] = {
    "ok", "down", "timeout", "error"
};


const char *
ngx_chat_store_rc_text(ngx_chat_store_rc_e rc)
{
    if ((ngx_uint_t) rc >= sizeof(ngx_chat_store_rc_names) / sizeof(char *)) {
        return "error";
    }

    return ngx_chat_store_rc_names[rc];
}


/*
 * Exponential backoff with "equal jitter": half the delay is fixed, half
 * random, so that all workers of all nodes do not reconnect in lock step
 * after a backend restart.
 */

ngx_msec_t
ngx_chat_store_backoff(ngx_msec_t prev)
{
    ngx_msec_t  next;

    next = prev ? prev * 2 : NGX_CHAT_BACKOFF_MIN;

    if (next > NGX_CHAT_BACKOFF_MAX) {
        next = NGX_CHAT_BACKOFF_MAX;
    }

    return next / 2 + (ngx_msec_t) ngx_random() % (next / 2 + 1);
}


/*
 * The client libraries read or write a bounded amount per call and do not
 * tell us whether the socket was drained, so their sockets are registered
 * level-triggered: an event keeps firing while there is work to do.
 */

ngx_int_t
ngx_chat_store_watch(ngx_event_t *ev, ngx_uint_t want)
{
    ngx_int_t  event;

    event = ev->write ? NGX_WRITE_EVENT : NGX_READ_EVENT;

    if (want && !ev->active) {
        return ngx_add_event(ev, event, NGX_LEVEL_EVENT);
    }

    if (!want && ev->active) {
        return ngx_del_event(ev, event, 0);
    }

    return NGX_OK;
}


/* gives the connection back to nginx; the library closes the socket */

void
ngx_chat_store_free_connection(ngx_connection_t *c)
{
    ngx_event_t  *ev[2];
    ngx_uint_t    i;

    ev[0] = c->read;
    ev[1] = c->write;

    for (i = 0; i < 2; i++) {
        if (ev[i]->timer_set) {
            ngx_del_timer(ev[i]);
        }

        if (ev[i]->posted) {
            ngx_delete_posted_event(ev[i]);
        }

        (void) ngx_chat_store_watch(ev[i], 0);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}

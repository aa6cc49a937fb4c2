
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_FRIENDS_H_INCLUDED_
#define _NGX_CHAT_FRIENDS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


/* users whose friends one query reads at most */
#define NGX_CHAT_FRIENDS_BATCH    256


/*
 * A user's friends (accepted both ways) with their last_seen in
 * PostgreSQL (ms, -1 when none): n of them; rc is not NGX_CHAT_STORE_OK
 * when PostgreSQL did not answer (n 0).  The arrays live only during the
 * call.
 */
typedef void (*ngx_chat_friends_pt)(void *data, ngx_chat_store_rc_e rc,
    ngx_uint_t n, const uint64_t *ids, const int64_t *seen);


/*
 * The friends of a user who connects: what one event-loop round asks is
 * read in one query, after the round's I/O handlers.  NGX_ERROR: not
 * taken (no PostgreSQL, out of memory), the handler is not called.
 */
ngx_int_t ngx_chat_friends_get(uint64_t user_id, ngx_chat_friends_pt handler,
    void *data);

/*
 * The same for the groups of a user who connects: ids are the group ids,
 * seen the times the user joined them (ms).
 */
ngx_int_t ngx_chat_groups_get(uint64_t user_id, ngx_chat_friends_pt handler,
    void *data);

/* what waits is answered as failed (both kinds) */
void ngx_chat_friends_exit(void);


#endif /* _NGX_CHAT_FRIENDS_H_INCLUDED_ */

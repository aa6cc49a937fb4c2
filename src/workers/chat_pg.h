
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: what the roles share on the PostgreSQL side (blocking
 * libpq: each connection belongs to one thread).
 */


#ifndef _CHAT_PG_H_INCLUDED_
#define _CHAT_PG_H_INCLUDED_


#include <stddef.h>

#include <libpq-fe.h>


typedef enum {
    CHAT_PG_OK = 0,
    CHAT_PG_RETRY = -1,         /* connection, server, anything transient */
    CHAT_PG_DATA = -2           /* a row the database refuses */
} chat_pg_rc_e;


/*
 * A connection to dsn as application app; check (a query, may be NULL)
 * must succeed on it, e.g. a check that the migrations are applied.
 * NULL with the reason in err (logged).
 */
PGconn *chat_pg_connect(const char *dsn, const char *app, const char *check,
    char *err, size_t errlen);

/*
 * Checks (and clears) a result.  On failure: the reason in err, the
 * transaction rolled back, *pg finished and NULL when the connection is
 * broken; CHAT_PG_DATA for SQLSTATE classes 22 (data exception) and 23
 * (integrity constraint), which retrying cannot cure.
 */
chat_pg_rc_e chat_pg_exec(PGconn **pg, PGresult *res, ExecStatusType want,
    char *err, size_t errlen);


#endif /* _CHAT_PG_H_INCLUDED_ */

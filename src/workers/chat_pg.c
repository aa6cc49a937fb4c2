
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: PostgreSQL connections and results, see chat_pg.h.
 */


#include <stdio.h>
#include <string.h>

#include "chat_pg.h"
#include "chat_worker.h"


PGconn *
chat_pg_connect(const char *dsn, const char *app, const char *check,
    char *err, size_t errlen)
{
    char         q[512];
    PGconn      *pg;
    PGresult    *r;
    const char  *keys[4], *values[4];

    keys[0] = "dbname";
    values[0] = dsn;
    keys[1] = "application_name";
    values[1] = app;
    keys[2] = "connect_timeout";
    values[2] = "5";
    keys[3] = NULL;
    values[3] = NULL;

    pg = PQconnectdbParams(keys, values, 1);

    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        chat_log(CHAT_LOG_WARN, "pg_connect_failed", "error=%s",
                 chat_log_quote(err, q, sizeof(q)));
        PQfinish(pg);
        return NULL;
    }

    if (check) {
        r = PQexec(pg, check);

        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
            chat_log(CHAT_LOG_ERROR, "pg_prepare_failed", "error=%s hint=%s",
                     chat_log_quote(err, q, sizeof(q)),
                     "\"are the migrations applied (scripts/migrate)?\"");
            PQclear(r);
            PQfinish(pg);
            return NULL;
        }

        PQclear(r);
    }

    chat_log(CHAT_LOG_INFO, "pg_connected", "host=%s port=%s db=%s",
             PQhost(pg), PQport(pg), PQdb(pg));

    return pg;
}


chat_pg_rc_e
chat_pg_exec(PGconn **pg, PGresult *res, ExecStatusType want, char *err,
    size_t errlen)
{
    const char    *state, *msg;
    chat_pg_rc_e   rc;
    PGresult      *r;

    if (res && PQresultStatus(res) == want) {
        PQclear(res);

        /* in COPY IN state no more results come before the data */
        while (want != PGRES_COPY_IN && (r = PQgetResult(*pg)) != NULL) {
            PQclear(r);
        }

        return CHAT_PG_OK;
    }

    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    msg = res ? PQresultErrorMessage(res) : "";

    if (msg == NULL || *msg == '\0') {
        msg = PQerrorMessage(*pg);
    }

    snprintf(err, errlen, "%s%s%s", state ? state : "", state ? " " : "",
             msg);

    rc = state && (strncmp(state, "22", 2) == 0
                   || strncmp(state, "23", 2) == 0)
         ? CHAT_PG_DATA : CHAT_PG_RETRY;

    PQclear(res);

    while ((r = PQgetResult(*pg)) != NULL) {
        PQclear(r);
    }

    if (PQstatus(*pg) != CONNECTION_OK) {
        chat_log(CHAT_LOG_WARN, "pg_disconnected", NULL);
        PQfinish(*pg);
        *pg = NULL;
        return CHAT_PG_RETRY;
    }

    if (PQtransactionStatus(*pg) != PQTRANS_IDLE) {
        PQclear(PQexec(*pg, "ROLLBACK"));
    }

    return rc;
}


/*
 * Copyright (C) ngx_chat authors
 *
 * The workers' side of the S3-compatible media store: deleting an object
 * (chat-worker cleanup collects the contents no upload names any more).
 * A blocking libcurl request signed with SigV4 (src/common/chat_sigv4.c):
 * the daemon does one thing at a time, and its transaction waits for it.
 */


#ifndef _CHAT_S3_H_INCLUDED_
#define _CHAT_S3_H_INCLUDED_


#include "chat_worker.h"


typedef struct chat_s3_s  chat_s3_t;


/*
 * From --s3-endpoint (http[s] and host[:port], no path), --s3-bucket,
 * --s3-region and --s3-credentials-file (the access key id on its first
 * line, the secret on its second, as the gateway's
 * chat_media_s3_credentials_file): NULL with the reason logged (never the
 * secret).
 */
chat_s3_t *chat_s3_open(chat_worker_conf_t *conf);
void chat_s3_close(chat_s3_t *s3);

/*
 * DELETE of the object at key ("<2 hex>/<sha256>.<ext>"): 0 when it is
 * gone (2xx, or 404: already), -1 otherwise (logged).
 */
int chat_s3_delete(chat_s3_t *s3, const char *key);


#endif /* _CHAT_S3_H_INCLUDED_ */


/*
 * ngx_chat: the form of a media id, one rule for every place that takes
 * one: a send's "media" (chat_record_check), a download's path
 * (ngx_chat_api_media.c) and the ids a signed URL is made for
 * (chat_media_url.c): 1 to CHAT_MEDIA_ID_MAX bytes of A-Z a-z 0-9 - _,
 * so that an id is never escaped in JSON, a URL or a log line.
 *
 * No nginx headers.
 */


#ifndef _CHAT_MEDIA_ID_H_INCLUDED_
#define _CHAT_MEDIA_ID_H_INCLUDED_


#include <stddef.h>


#define CHAT_MEDIA_ID_MAX        255


/* 1 when c may be in a media id */
int chat_media_id_char(int c);

/* 1 when s (len bytes) is a media id */
int chat_media_id_valid(const char *s, size_t len);


#endif /* _CHAT_MEDIA_ID_H_INCLUDED_ */

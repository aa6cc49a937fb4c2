
/*
 * ngx_chat: the form of a media id (chat_media_id.h).
 */


#include "chat_media_id.h"


int
chat_media_id_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_';
}


int
chat_media_id_valid(const char *s, size_t len)
{
    size_t  i;

    if (s == NULL || len == 0 || len > CHAT_MEDIA_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!chat_media_id_char((unsigned char) s[i])) {
            return 0;
        }
    }

    return 1;
}

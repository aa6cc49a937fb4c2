
/*
 * ngx_chat: image type and dimensions from the first bytes, see
 * chat_image.h.
 *
 * Every read is preceded by a check that the byte is within len, and a
 * short prefix answers MORE at that check, before anything after it is
 * looked at: that is what keeps a decision stable as the prefix grows.
 */


#include <string.h>

#include "chat_image.h"


#define chat_image_be16(p)  ((uint32_t) (p)[0] << 8 | (p)[1])
#define chat_image_le16(p)  ((uint32_t) (p)[1] << 8 | (p)[0])
#define chat_image_le24(p)                                                    \
    ((uint32_t) (p)[2] << 16 | (uint32_t) (p)[1] << 8 | (p)[0])
#define chat_image_be32(p)                                                    \
    ((uint32_t) (p)[0] << 24 | (uint32_t) (p)[1] << 16                        \
     | (uint32_t) (p)[2] << 8 | (p)[3])
#define chat_image_le32(p)                                                    \
    ((uint32_t) (p)[3] << 24 | (uint32_t) (p)[2] << 16                        \
     | (uint32_t) (p)[1] << 8 | (p)[0])

#define chat_image_lower(c)  (((c) >= 'A' && (c) <= 'Z') ? ((c) | 32) : (c))


static int chat_image_match(const unsigned char *p, size_t len,
    const char *sig, size_t n);
static int chat_image_png(const unsigned char *p, size_t len,
    chat_image_t *img, const char **err);
static int chat_image_png_ihdr(const unsigned char *ihdr);
static int chat_image_gif(const unsigned char *p, size_t len,
    chat_image_t *img, const char **err);
static int chat_image_jpeg(const unsigned char *p, size_t len,
    chat_image_t *img, const char **err);
static int chat_image_jpeg_sof(unsigned m);
static int chat_image_webp(const unsigned char *p, size_t len,
    chat_image_t *img, const char **err);
static int chat_image_webp_chunk(const unsigned char *p, size_t len,
    unsigned kind, uint32_t size, chat_image_t *img, const char **err);


static const char  *chat_image_mimes[] = {
    NULL, "image/jpeg", "image/png", "image/gif", "image/webp"
};

static const char  *chat_image_exts[] = {
    NULL, "jpg", "png", "gif", "webp"
};

#define CHAT_IMAGE_NTYPES  (sizeof(chat_image_mimes) / sizeof(char *))


int
chat_image_probe(const unsigned char *p, size_t len, chat_image_t *img,
    const char **err)
{
    int            rc;
    const char    *e;
    chat_image_t   im;

    e = NULL;

    if (len == 0) {
        rc = CHAT_IMAGE_MORE;
        e = "empty";
        goto done;
    }

    switch (p[0]) {

    case 0x89:
        rc = chat_image_png(p, len, &im, &e);
        break;

    case 'G':
        rc = chat_image_gif(p, len, &im, &e);
        break;

    case 0xff:
        rc = chat_image_jpeg(p, len, &im, &e);
        break;

    case 'R':
        rc = chat_image_webp(p, len, &im, &e);
        break;

    default:
        rc = CHAT_IMAGE_BAD;
        e = "not an image";
    }

    if (rc != CHAT_IMAGE_OK) {
        goto done;
    }

    /* each format has refused 0 already */

    if ((uint64_t) im.width * im.height > CHAT_IMAGE_MAX_PIXELS) {
        rc = CHAT_IMAGE_BAD;
        e = "too many pixels";
        goto done;
    }

    *img = im;

done:

    if (err != NULL) {
        *err = e;
    }

    return rc;
}


const char *
chat_image_mime(chat_image_type_e t)
{
    if ((size_t) t >= CHAT_IMAGE_NTYPES) {
        return NULL;
    }

    return chat_image_mimes[t];
}


const char *
chat_image_ext(chat_image_type_e t)
{
    if ((size_t) t >= CHAT_IMAGE_NTYPES) {
        return NULL;
    }

    return chat_image_exts[t];
}


chat_image_type_e
chat_image_type_of_mime(const char *s, size_t len)
{
    size_t       i, n, start, end;
    const char  *m;

    end = 0;

    while (end < len && s[end] != ';') {
        end++;
    }

    start = 0;

    while (start < end && (s[start] == ' ' || s[start] == '\t')) {
        start++;
    }

    while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
        end--;
    }

    for (i = 1; i < CHAT_IMAGE_NTYPES; i++) {
        m = chat_image_mimes[i];
        n = strlen(m);

        if (end - start != n) {
            continue;
        }

        for (n = 0; start + n < end; n++) {
            if (chat_image_lower(s[start + n]) != m[n]) {
                break;
            }
        }

        if (start + n == end) {
            return (chat_image_type_e) i;
        }
    }

    return 0;
}


/*
 * p against the n bytes of sig: BAD at the first difference, MORE when
 * the len < n bytes there are match, OK when all n do.
 */
static int
chat_image_match(const unsigned char *p, size_t len, const char *sig,
    size_t n)
{
    if (memcmp(p, sig, len < n ? len : n) != 0) {
        return CHAT_IMAGE_BAD;
    }

    return len < n ? CHAT_IMAGE_MORE : CHAT_IMAGE_OK;
}


/* signature (8), IHDR length (4) and type (4), its 13 bytes */
#define CHAT_IMAGE_PNG_SIG   "\x89PNG\r\n\x1a\n"
#define CHAT_IMAGE_PNG_HEAD  (8 + 8 + 13)

static int
chat_image_png(const unsigned char *p, size_t len, chat_image_t *img,
    const char **err)
{
    int  rc;

    rc = chat_image_match(p, len, CHAT_IMAGE_PNG_SIG, 8);
    if (rc != CHAT_IMAGE_OK) {
        *err = (rc == CHAT_IMAGE_BAD) ? "not an image" : "PNG: truncated";
        return rc;
    }

    if (len < 16) {
        *err = "PNG: truncated";
        return CHAT_IMAGE_MORE;
    }

    if (memcmp(p + 12, "IHDR", 4) != 0) {
        *err = "PNG: IHDR missing";
        return CHAT_IMAGE_BAD;
    }

    if (chat_image_be32(p + 8) != 13) {
        *err = "PNG: bad IHDR length";
        return CHAT_IMAGE_BAD;
    }

    if (len < CHAT_IMAGE_PNG_HEAD) {
        *err = "PNG: truncated";
        return CHAT_IMAGE_MORE;
    }

    img->width = chat_image_be32(p + 16);
    img->height = chat_image_be32(p + 20);

    if (img->width == 0 || img->height == 0) {
        *err = "PNG: zero width or height";
        return CHAT_IMAGE_BAD;
    }

    if (img->width > 0x7fffffff || img->height > 0x7fffffff) {
        *err = "PNG: width or height over 2^31-1";
        return CHAT_IMAGE_BAD;
    }

    if (chat_image_png_ihdr(p + 24) != 0) {
        *err = "PNG: bad IHDR";
        return CHAT_IMAGE_BAD;
    }

    img->type = CHAT_IMAGE_PNG;

    return CHAT_IMAGE_OK;
}


/*
 * The last 5 bytes of IHDR: bit depth, colour type, compression, filter,
 * interlace; 0 when the PNG specification (11.2.2) allows them.
 */
static int
chat_image_png_ihdr(const unsigned char *ihdr)
{
    unsigned  depth, allowed;

    depth = ihdr[0];

    switch (ihdr[1]) {

    case 0:                          /* greyscale */
        allowed = 1 | 2 | 4 | 8 | 16;
        break;

    case 3:                          /* indexed */
        allowed = 1 | 2 | 4 | 8;
        break;

    case 2:                          /* truecolour */
    case 4:                          /* greyscale with alpha */
    case 6:                          /* truecolour with alpha */
        allowed = 8 | 16;
        break;

    default:
        return -1;
    }

    if (depth == 0 || depth > 16 || (depth & (depth - 1)) != 0
        || (depth & allowed) == 0)
    {
        return -1;
    }

    if (ihdr[2] != 0 || ihdr[3] != 0 || ihdr[4] > 1) {
        return -1;
    }

    return 0;
}


static int
chat_image_gif(const unsigned char *p, size_t len, chat_image_t *img,
    const char **err)
{
    int  rc87, rc89;

    rc87 = chat_image_match(p, len, "GIF87a", 6);
    rc89 = chat_image_match(p, len, "GIF89a", 6);

    if (rc87 == CHAT_IMAGE_BAD && rc89 == CHAT_IMAGE_BAD) {
        *err = "not an image";
        return CHAT_IMAGE_BAD;
    }

    if (len < 10) {
        *err = "GIF: truncated";
        return CHAT_IMAGE_MORE;
    }

    img->width = chat_image_le16(p + 6);
    img->height = chat_image_le16(p + 8);

    if (img->width == 0 || img->height == 0) {
        *err = "GIF: zero width or height";
        return CHAT_IMAGE_BAD;
    }

    img->type = CHAT_IMAGE_GIF;

    return CHAT_IMAGE_OK;
}


static int
chat_image_jpeg(const unsigned char *p, size_t len, chat_image_t *img,
    const char **err)
{
    int       rc;
    size_t    pos;
    unsigned  m, seg, n;

    rc = chat_image_match(p, len, "\xff\xd8", 2);
    if (rc != CHAT_IMAGE_OK) {
        *err = (rc == CHAT_IMAGE_BAD) ? "not an image" : "JPEG: truncated";
        return rc;
    }

    pos = 2;

    for ( ;; ) {

        /* a marker: FF, fill bytes FF, the code */

        if (pos >= len) {
            goto more;
        }

        if (p[pos] != 0xff) {
            *err = "JPEG: no marker after a segment";
            return CHAT_IMAGE_BAD;
        }

        while (pos < len && p[pos] == 0xff) {
            pos++;
        }

        if (pos >= len) {
            goto more;
        }

        m = p[pos];

        if (m == 0xd9 || m == 0xda) {
            *err = "JPEG without a frame header";
            return CHAT_IMAGE_BAD;
        }

        if (m == 0x00 || m == 0xd8) {
            *err = "JPEG: bad marker";
            return CHAT_IMAGE_BAD;
        }

        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            /* TEM, RSTn: no length */
            pos++;
            continue;
        }

        /* the length counts itself, not the marker */

        if (len - pos < 3) {
            goto more;
        }

        seg = chat_image_be16(p + pos + 1);

        if (seg < 2) {
            *err = "JPEG: bad segment length";
            return CHAT_IMAGE_BAD;
        }

        if (!chat_image_jpeg_sof(m)) {
            pos += 1 + seg;
            continue;
        }

        /* the marker, length, precision, height, width, components */

        if (len - pos < 9) {
            goto more;
        }

        img->height = chat_image_be16(p + pos + 4);
        img->width = chat_image_be16(p + pos + 6);
        n = p[pos + 8];

        if (n == 0 || seg != 8 + 3 * n) {
            *err = "JPEG: bad frame header";
            return CHAT_IMAGE_BAD;
        }

        if (img->width == 0 || img->height == 0) {
            *err = "JPEG: zero width or height";
            return CHAT_IMAGE_BAD;
        }

        img->type = CHAT_IMAGE_JPEG;

        return CHAT_IMAGE_OK;
    }

more:

    *err = "JPEG: truncated before the frame header";

    return CHAT_IMAGE_MORE;
}


/* SOF0-3, 5-7, 9-11, 13-15; not DHT (C4), JPG (C8), DAC (CC) */
static int
chat_image_jpeg_sof(unsigned m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}


/* "RIFF" size "WEBP", then the first chunk's fourcc and size */
#define CHAT_IMAGE_WEBP_HEAD  20

static int
chat_image_webp(const unsigned char *p, size_t len, chat_image_t *img,
    const char **err)
{
    int       rc;
    uint32_t  riff, size;

    rc = chat_image_match(p, len, "RIFF", 4);
    if (rc != CHAT_IMAGE_OK) {
        *err = (rc == CHAT_IMAGE_BAD) ? "not an image" : "WebP: truncated";
        return rc;
    }

    if (len > 8) {
        rc = chat_image_match(p + 8, len - 8, "WEBP", 4);
        if (rc == CHAT_IMAGE_BAD) {
            *err = "RIFF but not WebP";
            return rc;
        }
    }

    if (len < CHAT_IMAGE_WEBP_HEAD) {
        *err = "WebP: truncated";
        return CHAT_IMAGE_MORE;
    }

    if (memcmp(p + 12, "VP8 ", 4) != 0
        && memcmp(p + 12, "VP8L", 4) != 0
        && memcmp(p + 12, "VP8X", 4) != 0)
    {
        *err = "WebP: unknown first chunk";
        return CHAT_IMAGE_BAD;
    }

    riff = chat_image_le32(p + 4);
    size = chat_image_le32(p + 16);

    /* "WEBP" and the chunk's header and data */

    if (riff < 12 || size > riff - 12) {
        *err = "WebP: chunk larger than the RIFF";
        return CHAT_IMAGE_BAD;
    }

    rc = chat_image_webp_chunk(p + CHAT_IMAGE_WEBP_HEAD,
                               len - CHAT_IMAGE_WEBP_HEAD, p[15], size, img,
                               err);
    if (rc != CHAT_IMAGE_OK) {
        return rc;
    }

    if (img->width == 0 || img->height == 0) {
        *err = "WebP: zero width or height";
        return CHAT_IMAGE_BAD;
    }

    img->type = CHAT_IMAGE_WEBP;

    return CHAT_IMAGE_OK;
}


/*
 * The first chunk's data, len bytes of it at p, of size bytes in all;
 * kind is the last letter of its fourcc: ' ' (VP8), 'L' (VP8L), 'X' (VP8X).
 */
static int
chat_image_webp_chunk(const unsigned char *p, size_t len, unsigned kind,
    uint32_t size, chat_image_t *img, const char **err)
{
    uint32_t  tag, bits;

    switch (kind) {

    case ' ':

        /* frame tag (3), start code (3), width (2), height (2) */

        if (size < 10) {
            *err = "WebP: VP8 chunk too short";
            return CHAT_IMAGE_BAD;
        }

        if (len < 10) {
            break;
        }

        tag = chat_image_le24(p);

        if ((tag & 1) != 0 || ((tag >> 1) & 7) > 3 || ((tag >> 4) & 1) == 0
            || (tag >> 5) >= size)
        {
            *err = "WebP: VP8 without a shown key frame";
            return CHAT_IMAGE_BAD;
        }

        if (memcmp(p + 3, "\x9d\x01\x2a", 3) != 0) {
            *err = "WebP: VP8 without a start code";
            return CHAT_IMAGE_BAD;
        }

        /* the top 2 bits are the scale */
        img->width = chat_image_le16(p + 6) & 0x3fff;
        img->height = chat_image_le16(p + 8) & 0x3fff;

        return CHAT_IMAGE_OK;

    case 'L':

        /* signature (1), then 14 + 14 + 1 + 3 bits */

        if (size < 5) {
            *err = "WebP: VP8L chunk too short";
            return CHAT_IMAGE_BAD;
        }

        if (len < 5) {
            break;
        }

        bits = chat_image_le32(p + 1);

        if (p[0] != 0x2f || (bits >> 29) != 0) {
            *err = "WebP: bad VP8L header";
            return CHAT_IMAGE_BAD;
        }

        img->width = (bits & 0x3fff) + 1;
        img->height = ((bits >> 14) & 0x3fff) + 1;

        return CHAT_IMAGE_OK;

    default: /* 'X' */

        /* flags (1), reserved (3), canvas width - 1 (3), height - 1 (3) */

        if (size != 10) {
            *err = "WebP: bad VP8X chunk size";
            return CHAT_IMAGE_BAD;
        }

        if (len < 10) {
            break;
        }

        img->width = chat_image_le24(p + 4) + 1;
        img->height = chat_image_le24(p + 7) + 1;

        return CHAT_IMAGE_OK;
    }

    *err = "WebP: truncated";

    return CHAT_IMAGE_MORE;
}


/*
 * libFuzzer target for the image probe, src/common/chat_image.c.
 *
 * The input is the file.  Invariants:
 *
 *   - the answer is OK, MORE or BAD; the reason is NULL exactly for OK;
 *     the image is written only for OK;
 *   - OK: width and height >= 1, at most CHAT_IMAGE_MAX_PIXELS pixels,
 *     within what the format can say (GIF, JPEG 65535; PNG 2^31-1; WebP
 *     2^24), the type has a mime type and an extension that name it, the
 *     input starts with the type's magic bytes, and where the dimensions
 *     stand at fixed offsets (PNG, GIF, VP8X) they are those;
 *   - not BAD: the input is a prefix of, or starts with, one of the
 *     signatures;
 *   - a prefix of the input (several lengths, each copied to a buffer of
 *     its own size so that ASan sees a read past it) answers MORE or
 *     exactly what the whole input answers: a longer prefix never turns
 *     OK into BAD or changes the dimensions.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_image.h"
#include "chat_fuzz.h"


#define chat_fuzz_be32(p)                                                     \
    ((uint32_t) (p)[0] << 24 | (uint32_t) (p)[1] << 16                        \
     | (uint32_t) (p)[2] << 8 | (p)[3])
#define chat_fuzz_le16(p)   ((uint32_t) (p)[1] << 8 | (p)[0])
#define chat_fuzz_le24(p)                                                     \
    ((uint32_t) (p)[2] << 16 | (uint32_t) (p)[1] << 8 | (p)[0])


typedef struct {
    const char          *magic;
    size_t               len;
    size_t               off;       /* of the magic in the file */
    chat_image_type_e    type;
} chat_fuzz_magic_t;


static const chat_fuzz_magic_t  chat_fuzz_magics[] = {
    { "\x89PNG\r\n\x1a\n", 8, 0, CHAT_IMAGE_PNG },
    { "GIF87a", 6, 0, CHAT_IMAGE_GIF },
    { "GIF89a", 6, 0, CHAT_IMAGE_GIF },
    { "\xff\xd8", 2, 0, CHAT_IMAGE_JPEG },
    { "RIFF", 4, 0, CHAT_IMAGE_WEBP },
    { "WEBP", 4, 8, CHAT_IMAGE_WEBP }
};

#define CHAT_FUZZ_NMAGICS                                                     \
    (sizeof(chat_fuzz_magics) / sizeof(chat_fuzz_magics[0]))


/* 1 when data could be (a prefix of) a file of type t, by its magic */
static int
chat_fuzz_magic_fits(const uint8_t *data, size_t size, chat_image_type_e t)
{
    size_t                    i, n;
    const chat_fuzz_magic_t  *m;
    int                       fits;

    fits = 0;

    for (i = 0; i < CHAT_FUZZ_NMAGICS; i++) {
        m = &chat_fuzz_magics[i];

        if (m->type != t) {
            continue;
        }

        if (size <= m->off) {
            fits = 1;
            continue;
        }

        n = size - m->off < m->len ? size - m->off : m->len;

        if (memcmp(data + m->off, m->magic, n) == 0) {
            fits = 1;

        } else if (t == CHAT_IMAGE_WEBP) {
            /* both RIFF and WEBP must be there */
            return 0;
        }
    }

    return fits;
}


static int
chat_fuzz_probe(const uint8_t *data, size_t size, chat_image_t *img)
{
    int             rc;
    uint8_t        *copy;
    const char     *err;
    chat_image_t    sentinel;

    /* an exact copy: libFuzzer's own buffer only guards the whole input */
    copy = malloc(size ? size : 1);
    chat_fuzz_check(copy != NULL);
    memcpy(copy, data, size);

    memset(img, 0xa5, sizeof(chat_image_t));
    memset(&sentinel, 0xa5, sizeof(chat_image_t));
    err = "unset";

    rc = chat_image_probe(copy, size, img, &err);

    free(copy);

    chat_fuzz_check(rc == CHAT_IMAGE_OK || rc == CHAT_IMAGE_MORE
                    || rc == CHAT_IMAGE_BAD);

    if (rc != CHAT_IMAGE_OK) {
        chat_fuzz_check(err != NULL && strcmp(err, "unset") != 0);
        chat_fuzz_check(memcmp(img, &sentinel, sizeof(chat_image_t)) == 0);
        return rc;
    }

    chat_fuzz_check(err == NULL);

    return rc;
}


static void
chat_fuzz_ok(const uint8_t *data, size_t size, const chat_image_t *img)
{
    const char  *mime, *ext;

    chat_fuzz_check(img->type >= CHAT_IMAGE_JPEG
                    && img->type <= CHAT_IMAGE_WEBP);
    chat_fuzz_check(img->width >= 1 && img->height >= 1);
    chat_fuzz_check((uint64_t) img->width * img->height
                    <= CHAT_IMAGE_MAX_PIXELS);

    mime = chat_image_mime(img->type);
    ext = chat_image_ext(img->type);

    chat_fuzz_check(mime != NULL && ext != NULL);
    chat_fuzz_check(chat_image_type_of_mime(mime, strlen(mime))
                    == img->type);

    chat_fuzz_check(chat_fuzz_magic_fits(data, size, img->type));

    switch (img->type) {

    case CHAT_IMAGE_PNG:
        chat_fuzz_check(size >= 29 && memcmp(data + 12, "IHDR", 4) == 0);
        chat_fuzz_check(img->width == chat_fuzz_be32(data + 16)
                        && img->height == chat_fuzz_be32(data + 20));
        chat_fuzz_check(img->width <= 0x7fffffff
                        && img->height <= 0x7fffffff);
        break;

    case CHAT_IMAGE_GIF:
        chat_fuzz_check(size >= 10);
        chat_fuzz_check(img->width == chat_fuzz_le16(data + 6)
                        && img->height == chat_fuzz_le16(data + 8));
        break;

    case CHAT_IMAGE_JPEG:
        chat_fuzz_check(img->width <= 65535 && img->height <= 65535);
        break;

    default: /* WebP */
        chat_fuzz_check(size >= 25 && memcmp(data + 12, "VP8", 3) == 0);
        chat_fuzz_check(img->width <= (1u << 24)
                        && img->height <= (1u << 24));

        if (data[15] == 'X') {
            chat_fuzz_check(img->width == chat_fuzz_le24(data + 24) + 1
                            && img->height == chat_fuzz_le24(data + 27) + 1);

        } else {
            chat_fuzz_check(img->width <= 16384 && img->height <= 16384);
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int           rc, prc;
    size_t        i, k, cuts[8];
    chat_image_t  img, pimg;

    rc = chat_fuzz_probe(data, size, &img);

    if (rc == CHAT_IMAGE_OK) {
        chat_fuzz_ok(data, size, &img);
    }

    if (rc != CHAT_IMAGE_BAD) {
        chat_fuzz_check(chat_fuzz_magic_fits(data, size, CHAT_IMAGE_PNG)
                        || chat_fuzz_magic_fits(data, size, CHAT_IMAGE_GIF)
                        || chat_fuzz_magic_fits(data, size, CHAT_IMAGE_JPEG)
                        || chat_fuzz_magic_fits(data, size,
                                                CHAT_IMAGE_WEBP));
    }

    if (size == 0) {
        chat_fuzz_check(rc == CHAT_IMAGE_MORE);
        return 0;
    }

    /* prefixes: the header sizes, halves, one byte short, and two picked */

    cuts[0] = 10;
    cuts[1] = 29;
    cuts[2] = 30;
    cuts[3] = size / 2;
    cuts[4] = size - 1;
    cuts[5] = data[0] % size;
    cuts[6] = (size > 1) ? (data[size - 1] * 257u + data[1]) % size : 0;
    cuts[7] = size > 4096 ? size - 4096 : 0;

    for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        k = cuts[i];

        if (k >= size) {
            continue;
        }

        prc = chat_fuzz_probe(data, k, &pimg);

        if (prc == CHAT_IMAGE_MORE) {
            continue;
        }

        chat_fuzz_check(prc == rc);

        if (rc == CHAT_IMAGE_OK) {
            chat_fuzz_check(pimg.type == img.type
                            && pimg.width == img.width
                            && pimg.height == img.height);
        }
    }

    return 0;
}

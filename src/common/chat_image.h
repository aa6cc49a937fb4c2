
/*
 * ngx_chat: what an uploaded image is, from its first bytes.
 *
 * The type comes from the magic bytes, never from the Content-Type the
 * client sent, and the width and height from the format's own header:
 *
 *   PNG   the 8-byte signature, then the IHDR chunk first (length 13):
 *         width and height big-endian, each 1..2^31-1, and a bit depth,
 *         colour type, compression, filter and interlace method that the
 *         PNG specification allows.  Chunk CRCs are NOT checked: the probe
 *         trusts nothing it reads, and a decoder checks them anyway.
 *   GIF   "GIF87a" or "GIF89a", then the logical screen width and height,
 *         16-bit little-endian, neither 0.
 *   JPEG  FF D8, then the marker segments are walked (fill bytes FF FF..
 *         skipped, RSTn and TEM standalone, every other segment length
 *         >= 2, big-endian) up to the first SOF marker (C0-C3, C5-C7,
 *         C9-CB, CD-CF), whose height and width (16-bit big-endian) must
 *         not be 0 and whose length must be 8 + 3 * components (>= 1).
 *         SOS or EOI before any SOF, a second SOI, FF 00 where a marker
 *         belongs, or anything but FF between segments is BAD.  Segments
 *         (EXIF, ICC) may be large: the caller decides how many bytes it
 *         is ready to give (CHAT_IMAGE_PROBE_MAX).
 *   WebP  "RIFF" <size, LE32> "WEBP", then the first chunk, which must
 *         fit in the RIFF size:
 *           "VP8 "  lossy: a key frame tag (version <= 3, shown, its first
 *                   partition within the chunk), start code 9D 01 2A,
 *                   14-bit width and height, little-endian;
 *           "VP8L"  lossless: signature 0x2F, 14-bit width - 1 and
 *                   height - 1 packed, version 0;
 *           "VP8X"  extended: chunk size 10, 24-bit canvas width - 1 and
 *                   height - 1, little-endian, at offsets 4 and 7.
 *         Any other first chunk is BAD.
 *
 * Whatever the format, an image of more than CHAT_IMAGE_MAX_PIXELS pixels
 * (width * height) is BAD: a decompression bomb is refused before anyone
 * decodes it.
 *
 * The probe is incremental in the simplest way: it is given a prefix of
 * the file and says whether that is enough.  It reads the bytes in order
 * and decides only on what it has read, so a longer prefix never changes
 * a decision: once OK (with its dimensions) or BAD, always the same.
 *
 * No nginx headers, no allocation: shared with the standalone tools.
 */


#ifndef _CHAT_IMAGE_H_INCLUDED_
#define _CHAT_IMAGE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_IMAGE_OK           0
#define CHAT_IMAGE_BAD         -1
#define CHAT_IMAGE_MORE        -2

/* the most pixels an image may have, width * height */
#define CHAT_IMAGE_MAX_PIXELS  (1ULL << 31)

/* how much of a file a caller should be ready to probe: JPEG metadata */
#define CHAT_IMAGE_PROBE_MAX   (256 * 1024)


typedef enum {
    CHAT_IMAGE_JPEG = 1,
    CHAT_IMAGE_PNG,
    CHAT_IMAGE_GIF,
    CHAT_IMAGE_WEBP
} chat_image_type_e;


typedef struct {
    chat_image_type_e  type;
    uint32_t           width;
    uint32_t           height;
} chat_image_t;


/*
 * The type and dimensions of an image whose first len bytes (all of it,
 * or a prefix) are at p:
 *
 *   CHAT_IMAGE_OK    *img is filled in;
 *   CHAT_IMAGE_MORE  the prefix is too short to decide (an empty one
 *                    too): give more bytes; at the end of the file it is
 *                    truncated, so bad;
 *   CHAT_IMAGE_BAD   not one of the four types, or a header that
 *                    contradicts itself or is too large.
 *
 * *img is left alone unless OK.  *err (when err is not NULL) is set to a
 * short static reason for MORE and BAD ("not an image", "JPEG without a
 * frame header", "PNG: IHDR missing", ...), to NULL for OK.
 */
int chat_image_probe(const unsigned char *p, size_t len, chat_image_t *img,
    const char **err);

/* "image/jpeg", "image/png", "image/gif", "image/webp"; NULL otherwise */
const char *chat_image_mime(chat_image_type_e t);

/* "jpg", "png", "gif", "webp"; NULL otherwise */
const char *chat_image_ext(chat_image_type_e t);

/*
 * The type a Content-Type value of len bytes names, 0 for none: one of
 * the four media types above, in any case, with spaces and tabs around
 * it and parameters after ';' ignored ("IMAGE/PNG; x=y" is PNG).  Only
 * the registered names: "image/jpg" and "image/pjpeg" are 0.
 */
chat_image_type_e chat_image_type_of_mime(const char *s, size_t len);


#endif /* _CHAT_IMAGE_H_INCLUDED_ */


/*
 * Unit tests for src/common/chat_image.c.
 *
 * The six valid images are real files, not handcrafted: a 2x3 grey JPEG
 * from libjpeg (JFIF APP0, DQT, SOF0, optimised DHT, SOS), a 1x1 indexed
 * PNG and a 3x2 GIF87a from libgd, and three WebP files from libwebp: a
 * lossy 4x3 ("VP8 "), a lossless 5x7 ("VP8L") and a lossy 6x2 with alpha
 * ("VP8X", ALPH, VP8).  file(1) agrees with their types and sizes, and
 * libjpeg decodes the JPEG built here with fill bytes and 105 KB of APP1
 * and APP2 segments before the frame, without a warning.  The malformed
 * cases are those files with a few bytes changed, or cut, or small
 * handcrafted headers.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_image.h"
#include "chat_test.h"


static const unsigned char  chat_test_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
    0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
    0x01, 0x03, 0x00, 0x00, 0x00, 0x25, 0xdb, 0x56, 0xca, 0x00, 0x00, 0x00,
    0x03, 0x50, 0x4c, 0x54, 0x45, 0xff, 0x00, 0x00, 0x19, 0xe2, 0x09, 0x37,
    0x00, 0x00, 0x00, 0x09, 0x70, 0x48, 0x59, 0x73, 0x00, 0x00, 0x0e, 0xc4,
    0x00, 0x00, 0x0e, 0xc4, 0x01, 0x95, 0x2b, 0x0e, 0x1b, 0x00, 0x00, 0x00,
    0x0a, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0xe2, 0x21, 0xbc, 0x33, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82
};

static const unsigned char  chat_test_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x37, 0x61, 0x03, 0x00, 0x02, 0x00, 0x80, 0x00,
    0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x02, 0x00, 0x00, 0x02, 0x03, 0x44, 0x80, 0x50, 0x00, 0x3b
};

static const unsigned char  chat_test_jpeg[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01,
    0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43,
    0x00, 0x10, 0x0b, 0x0c, 0x0e, 0x0c, 0x0a, 0x10, 0x0e, 0x0d, 0x0e, 0x12,
    0x11, 0x10, 0x13, 0x18, 0x28, 0x1a, 0x18, 0x16, 0x16, 0x18, 0x31, 0x23,
    0x25, 0x1d, 0x28, 0x3a, 0x33, 0x3d, 0x3c, 0x39, 0x33, 0x38, 0x37, 0x40,
    0x48, 0x5c, 0x4e, 0x40, 0x44, 0x57, 0x45, 0x37, 0x38, 0x50, 0x6d, 0x51,
    0x57, 0x5f, 0x62, 0x67, 0x68, 0x67, 0x3e, 0x4d, 0x71, 0x79, 0x70, 0x64,
    0x78, 0x5c, 0x65, 0x67, 0x63, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x03,
    0x00, 0x02, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x06, 0xff, 0xc4, 0x00, 0x19, 0x10, 0x00, 0x01, 0x05,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x02, 0x03, 0x11, 0x22, 0xff, 0xda, 0x00, 0x08, 0x01,
    0x01, 0x00, 0x00, 0x3f, 0x00, 0x1a, 0x23, 0x65, 0x0c, 0x85, 0xff, 0xd9
};

static const unsigned char  chat_test_webp_lossy[] = {
    0x52, 0x49, 0x46, 0x46, 0x36, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50,
    0x56, 0x50, 0x38, 0x20, 0x2a, 0x00, 0x00, 0x00, 0xb0, 0x01, 0x00, 0x9d,
    0x01, 0x2a, 0x04, 0x00, 0x03, 0x00, 0x07, 0x40, 0x96, 0x25, 0xb0, 0x02,
    0x74, 0x01, 0x0e, 0x23, 0xfc, 0x80, 0x00, 0xf7, 0x2c, 0x4a, 0x16, 0x6f,
    0x70, 0x5f, 0xad, 0x5e, 0xeb, 0xfd, 0x5a, 0x4d, 0x10, 0xee, 0x55, 0x38,
    0x00, 0x00
};

static const unsigned char  chat_test_webp_lossless[] = {
    0x52, 0x49, 0x46, 0x46, 0x3c, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50,
    0x56, 0x50, 0x38, 0x4c, 0x30, 0x00, 0x00, 0x00, 0x2f, 0x04, 0x80, 0x01,
    0x10, 0x99, 0x0a, 0x44, 0xf4, 0x3f, 0x36, 0x51, 0xfe, 0x82, 0xf7, 0x3f,
    0x40, 0x98, 0x6d, 0x54, 0x7f, 0xb2, 0x69, 0xdd, 0xf3, 0x0c, 0x8e, 0x82,
    0x3c, 0x08, 0x02, 0x92, 0xa4, 0xe7, 0xd2, 0x73, 0x82, 0x49, 0x9a, 0x6a,
    0x3b, 0xa6, 0xe2, 0xb4, 0xf7, 0x76, 0xbd, 0x01
};

static const unsigned char  chat_test_webp_ext[] = {
    0x52, 0x49, 0x46, 0x46, 0x5e, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50,
    0x56, 0x50, 0x38, 0x58, 0x0a, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x01, 0x00, 0x00, 0x41, 0x4c, 0x50, 0x48, 0x0c, 0x00,
    0x00, 0x00, 0x01, 0x0f, 0xf0, 0xc0, 0xff, 0x88, 0x88, 0x50, 0x95, 0x88,
    0xfe, 0x07, 0x56, 0x50, 0x38, 0x20, 0x2c, 0x00, 0x00, 0x00, 0xb0, 0x01,
    0x00, 0x9d, 0x01, 0x2a, 0x06, 0x00, 0x02, 0x00, 0x07, 0x40, 0x96, 0x25,
    0xa8, 0x02, 0x74, 0x00, 0xf1, 0xf8, 0x71, 0x00, 0x00, 0xf7, 0x43, 0x9b,
    0x78, 0x50, 0xc6, 0x38, 0x1e, 0x7f, 0x5a, 0xbe, 0xb6, 0xfc, 0x1a, 0xfe,
    0x40, 0x8a, 0xa7, 0x40, 0x00, 0x00
};


typedef struct {
    const char           *name;
    const unsigned char  *data;
    size_t                len;
    chat_image_type_e     type;
    uint32_t              width;
    uint32_t              height;
    size_t                need;      /* the shortest prefix that is OK */
} chat_test_valid_t;


#define chat_test_file(a)  chat_test_##a, sizeof(chat_test_##a)

static const chat_test_valid_t  chat_test_valid[] = {
    { "png 1x1", chat_test_file(png), CHAT_IMAGE_PNG, 1, 1, 29 },
    { "gif 3x2", chat_test_file(gif), CHAT_IMAGE_GIF, 3, 2, 10 },
    { "jpeg 2x3", chat_test_file(jpeg), CHAT_IMAGE_JPEG, 2, 3, 99 },
    { "webp lossy 4x3", chat_test_file(webp_lossy), CHAT_IMAGE_WEBP, 4, 3,
      30 },
    { "webp lossless 5x7", chat_test_file(webp_lossless), CHAT_IMAGE_WEBP,
      5, 7, 25 },
    { "webp extended 6x2", chat_test_file(webp_ext), CHAT_IMAGE_WEBP, 6, 2,
      30 }
};

#define CHAT_TEST_NVALID  (sizeof(chat_test_valid) / sizeof(chat_test_valid[0]))


/* a valid file with a few bytes changed, or cut (cut != 0) */
typedef struct {
    const char  *name;
    size_t       base;              /* in chat_test_valid */
    size_t       off;
    const char  *patch;
    size_t       patch_len;
    size_t       cut;
    int          rc;
    uint32_t     width;             /* when OK */
    uint32_t     height;
    const char  *err;
} chat_test_mutant_t;


#define CHAT_TEST_PNG    0
#define CHAT_TEST_GIF    1
#define CHAT_TEST_JPEG   2
#define CHAT_TEST_LOSSY  3
#define CHAT_TEST_VP8L   4
#define CHAT_TEST_VP8X   5

/* in chat_test_jpeg: SOF0's marker code, then height, width, components */
#define CHAT_TEST_SOF    0x5a

#define chat_test_patch(s)  s, sizeof(s) - 1

#define chat_test_bad(name, base, off, s, err)                                \
    { name, base, off, chat_test_patch(s), 0, CHAT_IMAGE_BAD, 0, 0, err }
#define chat_test_ok(name, base, off, s, w, h)                                \
    { name, base, off, chat_test_patch(s), 0, CHAT_IMAGE_OK, w, h, NULL }
#define chat_test_cut(name, base, cut, err)                                   \
    { name, base, 0, "", 0, cut, CHAT_IMAGE_MORE, 0, 0, err }

static const chat_test_mutant_t  chat_test_mutants[] = {

    chat_test_bad("png IHDR length 14", CHAT_TEST_PNG, 8, "\0\0\0\x0e",
                  "PNG: bad IHDR length"),
    chat_test_bad("png IHDR length 0", CHAT_TEST_PNG, 8, "\0\0\0\0",
                  "PNG: bad IHDR length"),
    chat_test_bad("png chunk other than IHDR first", CHAT_TEST_PNG, 12,
                  "gAMA", "PNG: IHDR missing"),
    chat_test_bad("png zero width", CHAT_TEST_PNG, 16, "\0\0\0\0",
                  "PNG: zero width or height"),
    chat_test_bad("png zero height", CHAT_TEST_PNG, 20, "\0\0\0\0",
                  "PNG: zero width or height"),
    chat_test_bad("png width 2^31", CHAT_TEST_PNG, 16, "\x80\0\0\0",
                  "PNG: width or height over 2^31-1"),
    chat_test_bad("png height 2^32-1", CHAT_TEST_PNG, 20, "\xff\xff\xff\xff",
                  "PNG: width or height over 2^31-1"),
    chat_test_bad("png bit depth 3", CHAT_TEST_PNG, 24, "\x03",
                  "PNG: bad IHDR"),
    chat_test_bad("png truecolour depth 4", CHAT_TEST_PNG, 24, "\x04\x02",
                  "PNG: bad IHDR"),
    chat_test_bad("png indexed depth 16", CHAT_TEST_PNG, 24, "\x10\x03",
                  "PNG: bad IHDR"),
    chat_test_bad("png colour type 5", CHAT_TEST_PNG, 25, "\x05",
                  "PNG: bad IHDR"),
    chat_test_bad("png compression 1", CHAT_TEST_PNG, 26, "\x01",
                  "PNG: bad IHDR"),
    chat_test_bad("png filter 1", CHAT_TEST_PNG, 27, "\x01",
                  "PNG: bad IHDR"),
    chat_test_bad("png interlace 2", CHAT_TEST_PNG, 28, "\x02",
                  "PNG: bad IHDR"),
    chat_test_ok("png interlaced", CHAT_TEST_PNG, 28, "\x01", 1, 1),
    chat_test_ok("png grey 16-bit", CHAT_TEST_PNG, 24, "\x10\x00", 1, 1),
    chat_test_bad("png 46341x46341", CHAT_TEST_PNG, 16,
                  "\0\0\xb5\x05\0\0\xb5\x05", "too many pixels"),
    chat_test_bad("png (2^31-1)x2", CHAT_TEST_PNG, 16,
                  "\x7f\xff\xff\xff\0\0\0\x02", "too many pixels"),
    chat_test_ok("png 65536x32768, 2^31 pixels", CHAT_TEST_PNG, 16,
                 "\0\x01\0\0\0\0\x80\0", 65536, 32768),
    chat_test_ok("png (2^31-1)x1", CHAT_TEST_PNG, 16,
                 "\x7f\xff\xff\xff\0\0\0\x01", 0x7fffffff, 1),
    chat_test_bad("png signature", CHAT_TEST_PNG, 4, "\r\r", "not an image"),
    chat_test_cut("png cut in IHDR", CHAT_TEST_PNG, 20, "PNG: truncated"),
    chat_test_cut("png signature only", CHAT_TEST_PNG, 8, "PNG: truncated"),

    chat_test_bad("gif 0x0", CHAT_TEST_GIF, 6, "\0\0\0\0",
                  "GIF: zero width or height"),
    chat_test_bad("gif 3x0", CHAT_TEST_GIF, 8, "\0\0",
                  "GIF: zero width or height"),
    chat_test_bad("gif 0x2", CHAT_TEST_GIF, 6, "\0\0",
                  "GIF: zero width or height"),
    chat_test_bad("gif 65535x65535", CHAT_TEST_GIF, 6, "\xff\xff\xff\xff",
                  "too many pixels"),
    chat_test_ok("gif 65535x32768", CHAT_TEST_GIF, 6, "\xff\xff\0\x80",
                 65535, 32768),
    chat_test_ok("gif89a", CHAT_TEST_GIF, 4, "9", 3, 2),
    chat_test_bad("gif88a", CHAT_TEST_GIF, 4, "8", "not an image"),
    chat_test_bad("gif87b", CHAT_TEST_GIF, 5, "b", "not an image"),
    chat_test_cut("gif cut in the screen size", CHAT_TEST_GIF, 9,
                  "GIF: truncated"),

    chat_test_bad("jpeg zero height", CHAT_TEST_JPEG, CHAT_TEST_SOF + 4,
                  "\0\0", "JPEG: zero width or height"),
    chat_test_bad("jpeg zero width", CHAT_TEST_JPEG, CHAT_TEST_SOF + 6,
                  "\0\0", "JPEG: zero width or height"),
    chat_test_bad("jpeg 65535x65535", CHAT_TEST_JPEG, CHAT_TEST_SOF + 4,
                  "\xff\xff\xff\xff", "too many pixels"),
    chat_test_ok("jpeg 65535x32768", CHAT_TEST_JPEG, CHAT_TEST_SOF + 4,
                 "\x80\0\xff\xff", 65535, 32768),
    chat_test_bad("jpeg SOF with 0 components", CHAT_TEST_JPEG,
                  CHAT_TEST_SOF + 8, "\0", "JPEG: bad frame header"),
    chat_test_bad("jpeg SOF length for 1 component, 2 said",
                  CHAT_TEST_JPEG, CHAT_TEST_SOF + 8, "\x02",
                  "JPEG: bad frame header"),
    chat_test_bad("jpeg SOF length 14 for 1 component", CHAT_TEST_JPEG,
                  CHAT_TEST_SOF + 1, "\0\x0e", "JPEG: bad frame header"),
    chat_test_bad("jpeg SOF length 2", CHAT_TEST_JPEG, CHAT_TEST_SOF + 1,
                  "\0\x02", "JPEG: bad frame header"),
    chat_test_bad("jpeg SOF length 1", CHAT_TEST_JPEG, CHAT_TEST_SOF + 1,
                  "\0\x01", "JPEG: bad segment length"),
    chat_test_bad("jpeg SOF replaced by SOS", CHAT_TEST_JPEG, CHAT_TEST_SOF,
                  "\xda", "JPEG without a frame header"),
    chat_test_bad("jpeg SOF replaced by EOI", CHAT_TEST_JPEG, CHAT_TEST_SOF,
                  "\xd9", "JPEG without a frame header"),
    chat_test_ok("jpeg SOF2, progressive", CHAT_TEST_JPEG, CHAT_TEST_SOF,
                 "\xc2", 2, 3),
    chat_test_bad("jpeg APP0 length 0", CHAT_TEST_JPEG, 4, "\0\0",
                  "JPEG: bad segment length"),
    chat_test_bad("jpeg DQT length 1", CHAT_TEST_JPEG, 0x16, "\0\x01",
                  "JPEG: bad segment length"),
    chat_test_bad("jpeg DQT a byte short", CHAT_TEST_JPEG, 0x16, "\0\x42",
                  "JPEG: no marker after a segment"),
    chat_test_bad("jpeg FF 00 for a marker", CHAT_TEST_JPEG, 0x15, "\0",
                  "JPEG: bad marker"),
    chat_test_bad("jpeg a second SOI", CHAT_TEST_JPEG, 3, "\xd8",
                  "JPEG: bad marker"),
    chat_test_cut("jpeg cut in APP0", CHAT_TEST_JPEG, 10,
                  "JPEG: truncated before the frame header"),
    chat_test_cut("jpeg cut in SOF", CHAT_TEST_JPEG, CHAT_TEST_SOF + 5,
                  "JPEG: truncated before the frame header"),
    chat_test_cut("jpeg SOI only", CHAT_TEST_JPEG, 2,
                  "JPEG: truncated before the frame header"),

    chat_test_bad("riff not webp", CHAT_TEST_LOSSY, 8, "WAVE",
                  "RIFF but not WebP"),
    chat_test_bad("rifx", CHAT_TEST_LOSSY, 3, "X", "not an image"),
    chat_test_bad("webp ALPH first", CHAT_TEST_VP8X, 12, "ALPH",
                  "WebP: unknown first chunk"),
    chat_test_bad("webp vp8 in lower case", CHAT_TEST_LOSSY, 12, "vp8 ",
                  "WebP: unknown first chunk"),
    chat_test_bad("webp RIFF size 11", CHAT_TEST_LOSSY, 4, "\x0b\0\0\0",
                  "WebP: chunk larger than the RIFF"),
    chat_test_bad("webp VP8 chunk past the RIFF", CHAT_TEST_LOSSY, 16,
                  "\x2b\0\0\0", "WebP: chunk larger than the RIFF"),
    chat_test_bad("webp VP8 chunk of 2^32-1", CHAT_TEST_LOSSY, 16,
                  "\xff\xff\xff\xff", "WebP: chunk larger than the RIFF"),
    chat_test_bad("webp VP8 chunk of 9", CHAT_TEST_LOSSY, 16, "\x09\0\0\0",
                  "WebP: VP8 chunk too short"),
    chat_test_bad("vp8 without a start code", CHAT_TEST_LOSSY, 23,
                  "\x9d\x01\x2b", "WebP: VP8 without a start code"),
    chat_test_bad("vp8 interframe", CHAT_TEST_LOSSY, 20, "\xb1",
                  "WebP: VP8 without a shown key frame"),
    chat_test_bad("vp8 hidden frame", CHAT_TEST_LOSSY, 20, "\xa0",
                  "WebP: VP8 without a shown key frame"),
    chat_test_bad("vp8 version 4", CHAT_TEST_LOSSY, 20, "\xb8",
                  "WebP: VP8 without a shown key frame"),
    chat_test_bad("vp8 first partition past the chunk", CHAT_TEST_LOSSY, 20,
                  "\x50\x05\0", "WebP: VP8 without a shown key frame"),
    chat_test_bad("vp8 zero width, scale bits set", CHAT_TEST_LOSSY, 26,
                  "\0\xc0", "WebP: zero width or height"),
    chat_test_bad("vp8 zero height", CHAT_TEST_LOSSY, 28, "\0\0",
                  "WebP: zero width or height"),
    chat_test_ok("vp8 scale bits ignored", CHAT_TEST_LOSSY, 27, "\x40\x03\xc0",
                 4, 3),
    chat_test_ok("vp8 16383x16383", CHAT_TEST_LOSSY, 26,
                 "\xff\x3f\xff\x3f", 16383, 16383),
    chat_test_cut("webp cut in VP8 header", CHAT_TEST_LOSSY, 29,
                  "WebP: truncated"),
    chat_test_cut("webp cut in chunk header", CHAT_TEST_LOSSY, 15,
                  "WebP: truncated"),
    chat_test_cut("webp RIFF and size", CHAT_TEST_LOSSY, 8,
                  "WebP: truncated"),

    chat_test_bad("vp8l signature", CHAT_TEST_VP8L, 20, "\x2e",
                  "WebP: bad VP8L header"),
    chat_test_bad("vp8l version 1", CHAT_TEST_VP8L, 24, "\x30",
                  "WebP: bad VP8L header"),
    chat_test_bad("vp8l chunk of 4", CHAT_TEST_VP8L, 16, "\x04\0\0\0",
                  "WebP: VP8L chunk too short"),
    chat_test_ok("vp8l 16384x16384", CHAT_TEST_VP8L, 21,
                 "\xff\xff\xff\x0f", 16384, 16384),
    chat_test_cut("vp8l cut", CHAT_TEST_VP8L, 24, "WebP: truncated"),

    chat_test_bad("vp8x chunk of 12", CHAT_TEST_VP8X, 16, "\x0c\0\0\0",
                  "WebP: bad VP8X chunk size"),
    chat_test_bad("vp8x chunk of 9", CHAT_TEST_VP8X, 16, "\x09\0\0\0",
                  "WebP: bad VP8X chunk size"),
    chat_test_bad("vp8x 65536x32769", CHAT_TEST_VP8X, 24,
                  "\xff\xff\0\0\x80\0", "too many pixels"),
    chat_test_bad("vp8x 2^24x2^24", CHAT_TEST_VP8X, 24,
                  "\xff\xff\xff\xff\xff\xff", "too many pixels"),
    chat_test_ok("vp8x 65536x32768", CHAT_TEST_VP8X, 24,
                 "\xff\xff\0\xff\x7f\0", 65536, 32768),
    chat_test_ok("vp8x 2^24x1", CHAT_TEST_VP8X, 24, "\xff\xff\xff\0\0\0",
                 1 << 24, 1),
    chat_test_cut("vp8x cut", CHAT_TEST_VP8X, 29, "WebP: truncated")
};


/* headers that no valid file has a few bytes away from */
typedef struct {
    const char  *name;
    const char  *data;
    size_t       len;
    int          rc;
    const char  *err;
} chat_test_bytes_t;


#define chat_test_bytes(name, s, rc, err)  { name, s, sizeof(s) - 1, rc, err }

static const chat_test_bytes_t  chat_test_bytes[] = {
    chat_test_bytes("empty", "", CHAT_IMAGE_MORE, "empty"),
    chat_test_bytes("text", "hello, world\n", CHAT_IMAGE_BAD,
                    "not an image"),
    chat_test_bytes("html", "<!DOCTYPE html>", CHAT_IMAGE_BAD,
                    "not an image"),
    chat_test_bytes("one NUL", "\0", CHAT_IMAGE_BAD, "not an image"),
    chat_test_bytes("bmp", "BM\x36\0\0\0", CHAT_IMAGE_BAD, "not an image"),
    chat_test_bytes("G", "G", CHAT_IMAGE_MORE, "GIF: truncated"),
    chat_test_bytes("GIF8", "GIF8", CHAT_IMAGE_MORE, "GIF: truncated"),
    chat_test_bytes("Gx", "Gx", CHAT_IMAGE_BAD, "not an image"),
    chat_test_bytes("FF alone", "\xff", CHAT_IMAGE_MORE,
                    "JPEG: truncated"),
    chat_test_bytes("FF D9", "\xff\xd9", CHAT_IMAGE_BAD, "not an image"),
    chat_test_bytes("R", "R", CHAT_IMAGE_MORE, "WebP: truncated"),
    chat_test_bytes("RIFF size WEB", "RIFF\x40\0\0\0WEB", CHAT_IMAGE_MORE,
                    "WebP: truncated"),
    chat_test_bytes("RIFF size WEX", "RIFF\x40\0\0\0WEX", CHAT_IMAGE_BAD,
                    "RIFF but not WebP"),
    chat_test_bytes("RIFF WAVE", "RIFF\x24\0\0\0WAVEfmt \x10\0\0\0",
                    CHAT_IMAGE_BAD, "RIFF but not WebP"),
    chat_test_bytes("png, a gAMA chunk first",
                    "\x89PNG\r\n\x1a\n\0\0\0\x04gAMA\0\0\xb1\x8f"
                    "\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0",
                    CHAT_IMAGE_BAD, "PNG: IHDR missing"),
    chat_test_bytes("png, IEND only",
                    "\x89PNG\r\n\x1a\n\0\0\0\0IEND\xae\x42\x60\x82",
                    CHAT_IMAGE_BAD, "PNG: IHDR missing"),
    chat_test_bytes("jpeg SOS first", "\xff\xd8\xff\xda\0\x08\x01\x01\0\0"
                    "\x3f\0", CHAT_IMAGE_BAD, "JPEG without a frame header"),
    chat_test_bytes("jpeg EOI first", "\xff\xd8\xff\xd9", CHAT_IMAGE_BAD,
                    "JPEG without a frame header"),
    chat_test_bytes("jpeg APP0, then SOS",
                    "\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
                    "\xff\xda\0\x08\x01\x01\0\0\x3f\0",
                    CHAT_IMAGE_BAD, "JPEG without a frame header"),
    chat_test_bytes("jpeg APP0, then SOF0 (a header alone)",
                    "\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
                    "\xff\xc0\0\x11\x08\x01\xe0\x02\x80\x03"
                    "\x01\x22\0\x02\x11\x01\x03\x11\x01",
                    CHAT_IMAGE_OK, NULL),
    chat_test_bytes("jpeg DHT, JPG, DAC are not frames",
                    "\xff\xd8\xff\xc4\0\x02\xff\xc8\0\x02\xff\xcc\0\x04\0\0"
                    "\xff\xc1\0\x0b\x08\0\x07\0\x09\x01\x01\x11\0",
                    CHAT_IMAGE_OK, NULL),
    chat_test_bytes("jpeg TEM and RST0-7, fill bytes",
                    "\xff\xd8\xff\x01\xff\xd0\xff\xff\xd7\xff\xff\xff"
                    "\xcf\0\x0b\x0c\0\x07\0\x09\x01\x01\x11\0",
                    CHAT_IMAGE_OK, NULL),
    chat_test_bytes("jpeg segment length 0", "\xff\xd8\xff\xe0\0\0",
                    CHAT_IMAGE_BAD, "JPEG: bad segment length"),
    chat_test_bytes("jpeg segment length 1", "\xff\xd8\xff\xe1\0\x01",
                    CHAT_IMAGE_BAD, "JPEG: bad segment length"),
    chat_test_bytes("jpeg fill bytes to the end", "\xff\xd8\xff\xff\xff",
                    CHAT_IMAGE_MORE,
                    "JPEG: truncated before the frame header"),
    chat_test_bytes("jpeg a byte between segments",
                    "\xff\xd8\xff\xfe\0\x03x\0\xff\xc0",
                    CHAT_IMAGE_BAD, "JPEG: no marker after a segment"),
    chat_test_bytes("jpeg large APP1 cut",
                    "\xff\xd8\xff\xe1\xff\xfe" "Exif\0\0",
                    CHAT_IMAGE_MORE,
                    "JPEG: truncated before the frame header")
};

#define CHAT_TEST_NBYTES  (sizeof(chat_test_bytes) / sizeof(chat_test_bytes[0]))
#define CHAT_TEST_NMUTANTS                                                    \
    (sizeof(chat_test_mutants) / sizeof(chat_test_mutants[0]))


/* the probe on an exact copy of the len bytes, so that ASan sees overreads */
static int
chat_test_probe(const unsigned char *data, size_t len, chat_image_t *img,
    const char **err)
{
    int             rc;
    unsigned char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);

    *err = "unset";
    rc = chat_image_probe(copy, len, img, err);

    free(copy);

    if (rc == CHAT_IMAGE_OK) {
        assert_null(*err);

    } else {
        assert_non_null(*err);
        assert_string_not_equal(*err, "unset");
    }

    return rc;
}


static void
chat_test_assert_ok(const unsigned char *data, size_t len,
    chat_image_type_e type, uint32_t width, uint32_t height)
{
    const char    *err;
    chat_image_t   img;

    memset(&img, 0, sizeof(chat_image_t));

    assert_int_equal(chat_test_probe(data, len, &img, &err), CHAT_IMAGE_OK);
    assert_int_equal(img.type, type);
    assert_int_equal(img.width, width);
    assert_int_equal(img.height, height);
}


/*
 * Every prefix shorter than need is MORE and leaves img alone, every
 * longer one is OK with the same answer.  Copies each prefix when copy.
 */
static void
chat_test_prefixes(const unsigned char *data, size_t len, size_t need,
    chat_image_type_e type, uint32_t width, uint32_t height, int copy)
{
    int            rc;
    size_t         k;
    const char    *err;
    chat_image_t   img;

    assert_true(need <= len);

    for (k = 0; k <= len; k++) {
        if (copy) {
            rc = chat_test_probe(data, k, &img, &err);

        } else {
            memset(&img, 0x5a, sizeof(chat_image_t));
            rc = chat_image_probe(data, k, &img, &err);
        }

        if (k < need) {
            if (rc != CHAT_IMAGE_MORE) {
                fail_msg("prefix %zu of %zu: %d (%s)", k, len, rc,
                         err ? err : "");
            }

            if (!copy) {
                assert_int_equal(img.width, 0x5a5a5a5a);
            }

            continue;
        }

        if (rc != CHAT_IMAGE_OK) {
            fail_msg("prefix %zu of %zu: %d (%s)", k, len, rc, err);
        }

        assert_int_equal(img.type, type);
        assert_int_equal(img.width, width);
        assert_int_equal(img.height, height);
    }
}


static void
chat_test_valid_files(void **state)
{
    size_t                    i;
    const chat_test_valid_t  *v;

    (void) state;

    for (i = 0; i < CHAT_TEST_NVALID; i++) {
        v = &chat_test_valid[i];
        print_message("%s\n", v->name);

        chat_test_assert_ok(v->data, v->len, v->type, v->width, v->height);
    }
}


static void
chat_test_valid_prefixes(void **state)
{
    size_t                    i;
    const chat_test_valid_t  *v;

    (void) state;

    for (i = 0; i < CHAT_TEST_NVALID; i++) {
        v = &chat_test_valid[i];

        chat_test_prefixes(v->data, v->len, v->need, v->type, v->width,
                           v->height, 1);
    }
}


/*
 * The JPEG with an APP1 of 65535 bytes (EXIF) and an APP2 of 40000 (ICC),
 * both full of FF D9 and FF DA, with fill bytes before APP2 and APP0.
 */
static void
chat_test_jpeg_large_segments(void **state)
{
    size_t          i, n, len;
    unsigned char  *p;

    (void) state;

    len = 2 + 2 + 65535 + 4 + 1 + 40000 + 2 + sizeof(chat_test_jpeg) - 2;
    p = malloc(len);
    assert_non_null(p);

    n = 0;
    p[n++] = 0xff;
    p[n++] = 0xd8;

    memcpy(p + n, "\xff\xe1\xff\xff" "Exif\0\0", 10);
    n += 10;

    for (i = 6; i < 65533; i++) {
        p[n++] = (i % 97 == 0) ? 0xff : (unsigned char) (i * 7);
    }

    memcpy(p + n, "\xff\xff\xff\xff\xe2\x9c\x40" "ICC_PROFILE\0", 19);
    n += 19;

    for (i = 12; i < 39998; i += 2) {
        p[n++] = 0xff;
        p[n++] = 0xda;
    }

    p[n++] = 0xff;
    p[n++] = 0xff;

    memcpy(p + n, chat_test_jpeg + 2, sizeof(chat_test_jpeg) - 2);
    n += sizeof(chat_test_jpeg) - 2;

    assert_int_equal(n, len);

    chat_test_assert_ok(p, len, CHAT_IMAGE_JPEG, 2, 3);

    /* SOF0's code is 0x5a - 2 bytes from the end of what came before */
    chat_test_prefixes(p, len, len - sizeof(chat_test_jpeg) + CHAT_TEST_SOF
                       + 9, CHAT_IMAGE_JPEG, 2, 3, 0);

    free(p);
}


static void
chat_test_mutated(void **state)
{
    int                        rc;
    size_t                     i, len;
    const char                *err;
    chat_image_t               img;
    unsigned char              buf[256];
    const chat_test_valid_t   *v;
    const chat_test_mutant_t  *m;

    (void) state;

    for (i = 0; i < CHAT_TEST_NMUTANTS; i++) {
        m = &chat_test_mutants[i];
        v = &chat_test_valid[m->base];
        print_message("%s\n", m->name);

        assert_true(v->len <= sizeof(buf));
        assert_true(m->off + m->patch_len <= v->len);

        memcpy(buf, v->data, v->len);
        memcpy(buf + m->off, m->patch, m->patch_len);
        len = m->cut ? m->cut : v->len;

        memset(&img, 0, sizeof(chat_image_t));
        rc = chat_test_probe(buf, len, &img, &err);

        if (rc != m->rc) {
            fail_msg("%s: %d (%s), not %d", m->name, rc, err ? err : "",
                     m->rc);
        }

        if (rc == CHAT_IMAGE_OK) {
            assert_int_equal(img.type, v->type);
            assert_int_equal(img.width, m->width);
            assert_int_equal(img.height, m->height);

        } else {
            assert_string_equal(err, m->err);
            assert_int_equal(img.width, 0);
        }
    }
}


static void
chat_test_handmade(void **state)
{
    int                       rc;
    size_t                    i;
    const char               *err;
    chat_image_t              img;
    const chat_test_bytes_t  *b;

    (void) state;

    for (i = 0; i < CHAT_TEST_NBYTES; i++) {
        b = &chat_test_bytes[i];
        print_message("%s\n", b->name);

        rc = chat_test_probe((const unsigned char *) b->data, b->len, &img,
                             &err);

        if (rc != b->rc) {
            fail_msg("%s: %d (%s), not %d", b->name, rc, err ? err : "",
                     b->rc);
        }

        if (rc != CHAT_IMAGE_OK) {
            assert_string_equal(err, b->err);
        }
    }

    /* the OK ones, with their dimensions */

    for (i = 0; i < CHAT_TEST_NBYTES; i++) {
        b = &chat_test_bytes[i];

        if (strcmp(b->name, "jpeg APP0, then SOF0 (a header alone)") == 0) {
            chat_test_assert_ok((const unsigned char *) b->data, b->len,
                                CHAT_IMAGE_JPEG, 640, 480);

        } else if (strcmp(b->name, "jpeg DHT, JPG, DAC are not frames") == 0
                   || strcmp(b->name, "jpeg TEM and RST0-7, fill bytes")
                      == 0)
        {
            chat_test_assert_ok((const unsigned char *) b->data, b->len,
                                CHAT_IMAGE_JPEG, 9, 7);

        } else {
            assert_int_not_equal(b->rc, CHAT_IMAGE_OK);
        }
    }

    assert_int_equal(chat_image_probe(NULL, 0, &img, NULL),
                     CHAT_IMAGE_MORE);
}


/* each of the 16 codes C0-CF as the first segment, a SOF1 of 5x3 after */
static void
chat_test_jpeg_sof_markers(void **state)
{
    unsigned        m;
    unsigned char   buf[64];
    const char     *sof1;

    (void) state;

    sof1 = "\xff\xc1\0\x0b\x08\0\x03\0\x05\x01\x01\x11\0";

    for (m = 0xc0; m <= 0xcf; m++) {
        memcpy(buf, "\xff\xd8\xff\0\0\x0b\x08\0\x09\0\x07\x01\x01\x11\0", 15);
        buf[3] = (unsigned char) m;
        memcpy(buf + 15, sof1, 13);

        if (m == 0xc4 || m == 0xc8 || m == 0xcc) {
            chat_test_assert_ok(buf, 28, CHAT_IMAGE_JPEG, 5, 3);

        } else {
            chat_test_assert_ok(buf, 28, CHAT_IMAGE_JPEG, 7, 9);
        }
    }
}


/*
 * Random damage to the valid files: whatever the answer, it is one of the
 * three with its reason, OK has sane dimensions, and no prefix of the
 * damaged file answers otherwise than MORE or the same.
 */
static void
chat_test_random_damage(void **state)
{
    int                       rc, prc;
    size_t                    i, j, k, n, len;
    const char               *err;
    chat_image_t              img, pimg;
    unsigned char             buf[256];
    const chat_test_valid_t  *v;

    (void) state;

    chat_test_rng_state = 15;

    for (i = 0; i < 3000; i++) {
        v = &chat_test_valid[i % CHAT_TEST_NVALID];
        memcpy(buf, v->data, v->len);

        /* the headers are in the first 100 bytes */
        n = 1 + chat_test_rand() % 3;

        for (j = 0; j < n; j++) {
            k = chat_test_rand() % (v->len < 100 ? v->len : 100);
            buf[k] = (unsigned char) chat_test_rand();
        }

        len = v->len;
        rc = chat_test_probe(buf, len, &img, &err);

        assert_true(rc == CHAT_IMAGE_OK || rc == CHAT_IMAGE_MORE
                    || rc == CHAT_IMAGE_BAD);

        if (rc == CHAT_IMAGE_OK) {
            assert_true(img.width >= 1 && img.height >= 1);
            assert_true((uint64_t) img.width * img.height
                        <= CHAT_IMAGE_MAX_PIXELS);
            assert_non_null(chat_image_mime(img.type));
        }

        for (k = 0; k < len; k++) {
            prc = chat_test_probe(buf, k, &pimg, &err);

            if (prc == CHAT_IMAGE_MORE) {
                continue;
            }

            assert_int_equal(prc, rc);

            if (rc == CHAT_IMAGE_OK) {
                assert_memory_equal(&pimg, &img, sizeof(chat_image_t));
            }
        }
    }
}


static void
chat_test_mime(void **state)
{
    chat_image_type_e  t, u;

    (void) state;

    assert_string_equal(chat_image_mime(CHAT_IMAGE_JPEG), "image/jpeg");
    assert_string_equal(chat_image_mime(CHAT_IMAGE_PNG), "image/png");
    assert_string_equal(chat_image_mime(CHAT_IMAGE_GIF), "image/gif");
    assert_string_equal(chat_image_mime(CHAT_IMAGE_WEBP), "image/webp");
    assert_string_equal(chat_image_ext(CHAT_IMAGE_JPEG), "jpg");
    assert_string_equal(chat_image_ext(CHAT_IMAGE_PNG), "png");
    assert_string_equal(chat_image_ext(CHAT_IMAGE_GIF), "gif");
    assert_string_equal(chat_image_ext(CHAT_IMAGE_WEBP), "webp");

    assert_null(chat_image_mime(0));
    assert_null(chat_image_mime(5));
    assert_null(chat_image_mime((chat_image_type_e) -1));
    assert_null(chat_image_ext(0));
    assert_null(chat_image_ext(5));

    for (t = CHAT_IMAGE_JPEG; t <= CHAT_IMAGE_WEBP; t++) {
        u = chat_image_type_of_mime(chat_image_mime(t),
                                    strlen(chat_image_mime(t)));
        assert_int_equal(u, t);
    }
}


static void
chat_test_type_of_mime(void **state)
{
    size_t  i;

    static const struct {
        const char         *s;
        chat_image_type_e   t;
    } cases[] = {
        { "image/png", CHAT_IMAGE_PNG },
        { "IMAGE/PNG; x=y", CHAT_IMAGE_PNG },
        { "Image/Png ;charset=binary", CHAT_IMAGE_PNG },
        { " \timage/jpeg\t ", CHAT_IMAGE_JPEG },
        { "image/gif;", CHAT_IMAGE_GIF },
        { "image/WebP", CHAT_IMAGE_WEBP },
        { "image/jpg", 0 },
        { "image/pjpeg", 0 },
        { "image/png2", 0 },
        { "image/pn", 0 },
        { "image/ png", 0 },
        { "image/svg+xml", 0 },
        { "text/plain", 0 },
        { "application/octet-stream", 0 },
        { "image/", 0 },
        { ";image/png", 0 },
        { "", 0 },
        { " ", 0 }
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (chat_image_type_of_mime(cases[i].s, strlen(cases[i].s))
            != cases[i].t)
        {
            fail_msg("\"%s\" is not %d", cases[i].s, cases[i].t);
        }
    }

    /* only len bytes count: no NUL needed, a shorter len is another type */
    assert_int_equal(chat_image_type_of_mime("image/pngX", 9),
                     CHAT_IMAGE_PNG);
    assert_int_equal(chat_image_type_of_mime("image/webp", 9), 0);
    assert_int_equal(chat_image_type_of_mime(NULL, 0), 0);
    assert_int_equal(chat_image_type_of_mime("image/gif\0", 10), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_valid_files),
        cmocka_unit_test(chat_test_valid_prefixes),
        cmocka_unit_test(chat_test_jpeg_large_segments),
        cmocka_unit_test(chat_test_mutated),
        cmocka_unit_test(chat_test_handmade),
        cmocka_unit_test(chat_test_jpeg_sof_markers),
        cmocka_unit_test(chat_test_random_damage),
        cmocka_unit_test(chat_test_mime),
        cmocka_unit_test(chat_test_type_of_mime),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

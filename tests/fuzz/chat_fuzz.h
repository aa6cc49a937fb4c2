
/*
 * ngx_chat: what the libFuzzer targets share.
 */


#ifndef _CHAT_FUZZ_H_INCLUDED_
#define _CHAT_FUZZ_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


/* a broken invariant is a crash, so that libFuzzer keeps the input */
#define chat_fuzz_check(c)                                                    \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,          \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#endif /* _CHAT_FUZZ_H_INCLUDED_ */

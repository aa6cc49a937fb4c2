
/*
 * ngx_chat: what the unit tests share.
 */


#ifndef _CHAT_TEST_H_INCLUDED_
#define _CHAT_TEST_H_INCLUDED_


#include <stdint.h>


/* the generator's state: a test sets it for a sequence of its own */
static uint64_t  chat_test_rng_state;


/* splitmix64: a deterministic source of test values */
static inline uint64_t
chat_test_rand(void)
{
    uint64_t  z;

    chat_test_rng_state += 0x9e3779b97f4a7c15ULL;
    z = chat_test_rng_state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;

    return z ^ (z >> 31);
}


#endif /* _CHAT_TEST_H_INCLUDED_ */

/*
 * utf8: incremental UTF-8 validator (RFC 3629 §3-4), used for WebSocket text
 * messages and close reasons (RFC 6455 §5.6, §8.1).
 *
 * A byte-class table feeds a 9-state DFA; the state is the caller's uint32_t,
 * so a code point may straddle any number of calls. The intermediate states
 * encode the narrowed range of the second byte after E0, ED, F0 and F4, which
 * is what lets the validator reject overlongs, surrogates and > U+10FFFF at
 * the first impossible byte instead of at the end of the sequence (RFC 6455
 * §8.1 fail-fast). Runs of ASCII are skipped a 64-bit word at a time.
 */
#include "utf8.h"

#include <string.h>

/* Byte classes: the DFA only needs to tell these ranges apart. */
enum {
    B_ASCII,    /* 00..7F */
    B_CONT_LO,  /* 80..8F: continuation, also the only 2nd byte after F4 */
    B_CONT_MID, /* 90..9F: continuation, allowed after ED and F0 */
    B_CONT_HI,  /* A0..BF: continuation, allowed after E0 and F0 */
    B_BAD,      /* C0, C1 (always overlong), F5..FF (beyond U+10FFFF) */
    B_LEAD2,    /* C2..DF */
    B_E0,       /* E0: 2nd byte A0..BF, else overlong */
    B_LEAD3,    /* E1..EC, EE, EF */
    B_ED,       /* ED: 2nd byte 80..9F, else a surrogate D800..DFFF */
    B_F0,       /* F0: 2nd byte 90..BF, else overlong */
    B_LEAD4,    /* F1..F3 */
    B_F4,       /* F4: 2nd byte 80..8F, else > U+10FFFF */
    B_NCLASS
};

/* States; ACCEPT and REJECT are fixed by utf8.h. */
enum {
    S_ACCEPT = UTF8_ACCEPT,
    S_REJECT = UTF8_REJECT,
    S_TAIL1,    /* one continuation byte (80..BF) to go */
    S_TAIL2,
    S_TAIL3,
    S_E0,       /* A0..BF, then TAIL1 */
    S_ED,       /* 80..9F, then TAIL1 */
    S_F0,       /* 90..BF, then TAIL2 */
    S_F4,       /* 80..8F, then TAIL2 */
    S_NSTATE
};

#define A_ B_ASCII
#define CL B_CONT_LO
#define CM B_CONT_MID
#define CH B_CONT_HI
#define XX B_BAD
#define L2 B_LEAD2
#define L3 B_LEAD3
#define L4 B_LEAD4

static const uint8_t byte_class[256] = {
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 00 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 10 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 20 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 30 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 40 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 50 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 60 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 70 */
    CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, /* 80 */
    CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, CM, /* 90 */
    CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, /* A0 */
    CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, CH, /* B0 */
    XX, XX, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, /* C0 */
    L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, /* D0 */
    B_E0, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, B_ED, L3, L3, /* E0 */
    B_F0, L4, L4, L4, B_F4, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, /* F0 */
};

#undef A_
#undef CL
#undef CM
#undef CH
#undef XX
#undef L2
#undef L3
#undef L4

#define R_ S_REJECT

static const uint8_t next_state[S_NSTATE][B_NCLASS] = {
    /*          ASCII     80-8F    90-9F    A0-BF    bad  C2-DF    E0    E1-EF    ED    F0    F1-F3    F4 */
    [S_ACCEPT] = { S_ACCEPT, R_, R_, R_, R_, S_TAIL1, S_E0, S_TAIL2, S_ED, S_F0, S_TAIL3, S_F4 },
    [S_REJECT] = { R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_TAIL1]  = { R_, S_ACCEPT, S_ACCEPT, S_ACCEPT, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_TAIL2]  = { R_, S_TAIL1, S_TAIL1, S_TAIL1, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_TAIL3]  = { R_, S_TAIL2, S_TAIL2, S_TAIL2, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_E0]     = { R_, R_, R_, S_TAIL1, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_ED]     = { R_, S_TAIL1, S_TAIL1, R_, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_F0]     = { R_, R_, S_TAIL2, S_TAIL2, R_, R_, R_, R_, R_, R_, R_, R_ },
    [S_F4]     = { R_, S_TAIL2, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_ },
};

#undef R_

/* Index of the first byte at or after i that is not ASCII, or len. */
static size_t skip_ascii(const uint8_t *s, size_t i, size_t len)
{
    /* memcpy keeps the unaligned 8-byte load defined; compilers emit one mov. */
    while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        if (w & UINT64_C(0x8080808080808080))
            break;
        i += 8;
    }
    while (i < len && s[i] < 0x80)
        i++;
    return i;
}

size_t utf8_validate(uint32_t *state, const uint8_t *s, size_t len)
{
    uint32_t st = *state;
    size_t i = 0;

    /* An out-of-range state can only be a caller bug; treat it as rejected
     * rather than index past the table. */
    if (st == S_REJECT || st >= S_NSTATE) {
        *state = S_REJECT;
        return 0;
    }
    while (i < len) {
        if (st == S_ACCEPT) {
            i = skip_ascii(s, i, len);
            if (i == len)
                break;
        }
        st = next_state[st][byte_class[s[i]]];
        if (st == S_REJECT) {
            *state = st;
            return i;
        }
        i++;
    }
    *state = st;
    return len;
}

int utf8_valid(const uint8_t *s, size_t len)
{
    uint32_t st = UTF8_ACCEPT;
    return utf8_validate(&st, s, len) == len && utf8_complete(st);
}

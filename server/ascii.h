/*
 * ascii: the two character helpers the protocol codecs share (HTTP tokens,
 * percent-encoding, JSON \u escapes). Locale-independent on purpose:
 * <ctype.h> answers by the process locale, the wire is ASCII.
 */
#ifndef WSM_ASCII_H
#define WSM_ASCII_H

/* Value of a hex digit (either case), or -1 when CH is not one. */
static inline int ascii_hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* CH with A-Z folded to a-z; every other byte unchanged. */
static inline char ascii_lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

#endif

#include "pretok.h"
/* placeholder: one character a piece, until the real pre-tokeniser lands */
size_t tv_piece_end(const unsigned char *s, size_t n, size_t i, int pattern) {
    (void)pattern;
    size_t j = i + 1;
    while (j < n && (s[j] & 0xC0) == 0x80) j++;
    return j;
}

/* Pre-tokenisation for the named patterns (tokvec.tokenizers.patterns: gpt2, cl100k, o200k), by hand.
 *
 * tv_piece_end gives what `regex.finditer(PATTERNS[name], text)` gives, piece by piece: the end of the
 * piece that starts at byte `i` of the UTF-8 text s[0..n). Every byte belongs to exactly one piece
 * (the named patterns match every character), so the pieces of a text are found by calling it
 * from i = 0 with the previous end until n. */
#ifndef TOKVEC_PRETOK_H
#define TOKVEC_PRETOK_H

#include <stddef.h>

enum { TV_PAT_GPT2 = 0, TV_PAT_CL100K = 1, TV_PAT_O200K = 2 };

/* s: valid UTF-8 (Python's encoding of a str; no lone surrogates), 0 <= i < n. Returns an end with
 * i < end <= n that falls on a character boundary. */
size_t tv_piece_end(const unsigned char *s, size_t n, size_t i, int pattern);

#endif

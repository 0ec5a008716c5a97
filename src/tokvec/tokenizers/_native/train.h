/* Byte-level BPE training on counted pieces (train.c).
 *
 * Use: count the training text (tv_count_text with a named pattern, or tv_count_piece for pieces cut
 * elsewhere), then tv_begin once, then tv_merge_one until it returns 0 or enough tokens exist. None
 * of these touch Python: the module calls them with the GIL released. */
#ifndef TOKVEC_TRAIN_H
#define TOKVEC_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct tv_trainer tv_trainer;

/* One merge: the pair (left, right) seen `count` times became `token`, a new id (256, 257, ... in
 * order) or, when another merge already made the same bytes, that token's id (`is_new` 0). */
typedef struct {
    uint32_t left, right, token;
    int is_new;
    int64_t count;
} tv_merge;

tv_trainer *tv_trainer_new(void);
void tv_trainer_free(tv_trainer *t);

/* Count the pieces of the UTF-8 text s[0..n) cut by `pattern` (pretok.h). 0, -1: out of memory, or
 * -2 (as tv_count_piece). */
int tv_count_text(tv_trainer *t, const unsigned char *s, size_t n, int pattern);
/* Count `count` more occurrences of the piece p[0..n). 0, -1: out of memory, or -2: refused, nothing
 * counted: the pairs counted in all (count x (n - 1) per piece) would pass INT64_MAX, so a pair's
 * count could overflow. */
int tv_count_piece(tv_trainer *t, const unsigned char *p, size_t n, int64_t count);
size_t tv_distinct_pieces(const tv_trainer *t);

/* Turn the counted pieces into words of byte ids and count every adjacent pair. Once; counting
 * after it is refused by the module. 0, or -1: out of memory. */
int tv_begin(tv_trainer *t);
/* The next merge: the pair seen most often (ties: the lower (left, right)), if seen >= min_count
 * (>= 1) times. 1 (written to *out), 0 (no such pair), or -1: out of memory. */
int tv_merge_one(tv_trainer *t, int64_t min_count, tv_merge *out);
/* Tokens so far: 256 + the new tokens made. */
uint32_t tv_n_tokens(const tv_trainer *t);

#endif

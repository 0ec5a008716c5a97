/* Byte-level BPE training: the algorithm of rustbpe (Karpathy) and HF tokenizers' BpeTrainer,
 * single-threaded, on counted pieces.
 *
 * Every distinct piece becomes a word of byte ids with its count. Every adjacent pair of ids is
 * counted (a word seen c times adds c) and remembers the words it occurs in. A max-heap holds
 * (count, pair); a merge takes the pair seen most often (ties: the lower pair of ids, as rustbpe),
 * rewrites the words it occurs in left to right (non-overlapping, "aaa" -> "Xa"), and adjusts the
 * counts of the pairs around each occurrence. A pair's count only falls after it is first pushed
 * (the new pairs all contain the new token), so stale heap entries are refreshed when they reach
 * the top ("lazy" deletion) and the order is exactly "most frequent pair first".
 *
 * Could two merges make the same bytes ("a"+"bc" after "ab"+"c")? Not with this rule, as far as
 * we can tell: no merge ever crosses the edges of a token once made, so the bytes of a token are
 * merged inside it exactly as the same bytes would be as a word alone, the same way in every word
 * (and ~60,000 random trainings never did it). tiktoken's ranks must hold each byte string once,
 * so a guard stays: such a merge would reuse the first token's id (as HF's trainer does), and
 * the pairs next to it, which could then grow, get a fresh heap entry as new pairs do. */
#include "train.h"

#include <stdlib.h>
#include <string.h>

#include "pretok.h"

/* ---- growable arrays ---------------------------------------------------------------------------- */

/* Make room for `need` elements of `size` bytes in *p (capacity *cap). 0, or -1: out of memory. */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need) cap2 *= 2;
    void *q = realloc(*p, cap2 * size);
    if (q == NULL) return -1;
    *p = q;
    *cap = cap2;
    return 0;
}

#define GROW(arr, cap, need) grow((void **)&(arr), &(cap), (need), sizeof *(arr))

/* Set *p to `cap` elements of `size` bytes (for arrays that share one capacity). */
static int resize(void **p, size_t cap, size_t size) {
    void *q = realloc(*p, cap * size);
    if (q == NULL) return -1;
    *p = q;
    return 0;
}

#define RESIZE(arr, cap) resize((void **)&(arr), (cap), sizeof *(arr))

/* ---- hashing ------------------------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t h) { /* splitmix64's finaliser */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix64(h ^ w);
}

/* ---- a table of byte strings (pieces with their counts; tokens with their ids) ------------------ */

typedef struct {
    unsigned char *bytes; /* every string, back to back */
    size_t bytes_len, bytes_cap;
    size_t *off;
    uint32_t *len;
    int64_t *value;
    uint64_t *hash;
    size_t n, cap;
    uint32_t *slots; /* entry index + 1; 0: empty. Open addressing, linear probing, load <= 1/2 */
    size_t mask;
} strtab;

static void strtab_free(strtab *s) {
    free(s->bytes);
    free(s->off);
    free(s->len);
    free(s->value);
    free(s->hash);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static int strtab_rehash(strtab *s, size_t nslots) {
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (slots == NULL) return -1;
    for (size_t e = 0; e < s->n; e++) {
        size_t k = (size_t)s->hash[e] & (nslots - 1);
        while (slots[k]) k = (k + 1) & (nslots - 1);
        slots[k] = (uint32_t)(e + 1);
    }
    free(s->slots);
    s->slots = slots;
    s->mask = nslots - 1;
    return 0;
}

/* The entry of p[0..n), added with value 0 if absent. (size_t)-1: out of memory (or 4G entries). */
static size_t strtab_get(strtab *s, const unsigned char *p, size_t n) {
    if (s->slots == NULL && strtab_rehash(s, 1024) < 0) return (size_t)-1;
    uint64_t h = hash_bytes(p, n);
    size_t k = (size_t)h & s->mask;
    for (uint32_t e; (e = s->slots[k]) != 0; k = (k + 1) & s->mask) {
        e--;
        if (s->hash[e] == h && s->len[e] == n && memcmp(s->bytes + s->off[e], p, n) == 0) return e;
    }
    if (s->n >= UINT32_MAX - 1 || n > UINT32_MAX) return (size_t)-1;
    size_t e = s->n;
    if (e == s->cap) { /* the four per-entry arrays share one capacity */
        size_t cap = s->cap ? s->cap * 2 : 1024;
        if (RESIZE(s->off, cap) < 0 || RESIZE(s->len, cap) < 0 || RESIZE(s->value, cap) < 0 || RESIZE(s->hash, cap) < 0)
            return (size_t)-1;
        s->cap = cap;
    }
    if (grow((void **)&s->bytes, &s->bytes_cap, s->bytes_len + n + 1, 1) < 0) return (size_t)-1;
    memcpy(s->bytes + s->bytes_len, p, n);
    s->off[e] = s->bytes_len;
    s->bytes_len += n;
    s->len[e] = (uint32_t)n;
    s->value[e] = 0;
    s->hash[e] = h;
    s->slots[k] = (uint32_t)(e + 1);
    s->n++;
    if (s->n * 2 > s->mask + 1 && strtab_rehash(s, (s->mask + 1) * 2) < 0) return (size_t)-1;
    return e;
}

/* ---- the trainer -------------------------------------------------------------------------------- */

typedef struct {
    uint32_t *word;
    uint32_t n, cap;
} wordlist; /* the words a pair may occur in (a word can be listed again after it no longer holds it) */

typedef struct {
    int64_t count;
    uint32_t left, right, pair;
} heap_entry;

struct tv_trainer {
    strtab pieces; /* value: count */
    strtab tokens; /* entry index == token id; the 256 bytes first */
    int merging; /* tv_begin is done */
    int64_t counted; /* the pairs counted, sum of count x max(n - 1, 1): no count can pass it */
    /* words: ids sym[start[w] .. start[w] + len[w]) seen count[w] times */
    uint32_t *sym;
    size_t sym_len, sym_cap;
    size_t *w_start;
    uint32_t *w_len;
    int64_t *w_count;
    uint32_t *w_seen; /* merge number that last rewrote the word: a word listed twice is rewritten once */
    size_t n_words, w_cap;
    /* pairs: index -> (left, right), count, the words it occurs in */
    uint32_t *p_left, *p_right, *p_touched;
    int64_t *p_count;
    wordlist *p_words;
    size_t n_pairs, p_cap;
    uint64_t *pm_keys; /* (left << 32 | right) -> pair index + 1 in pm_vals (0: empty) */
    uint32_t *pm_vals;
    size_t pm_mask;
    heap_entry *heap;
    size_t heap_len, heap_cap;
    uint32_t *touched; /* pairs that gained in the current merge */
    size_t n_touched, touched_cap;
    uint32_t merges; /* merges made so far (the number stamped on words and pairs, + 1) */
    unsigned char *scratch;
    size_t scratch_cap;
};

tv_trainer *tv_trainer_new(void) {
    tv_trainer *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    for (int b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        size_t e = strtab_get(&t->tokens, &byte, 1);
        if (e != (size_t)b) {
            tv_trainer_free(t);
            return NULL;
        }
    }
    return t;
}

void tv_trainer_free(tv_trainer *t) {
    if (t == NULL) return;
    strtab_free(&t->pieces);
    strtab_free(&t->tokens);
    free(t->sym);
    free(t->w_start);
    free(t->w_len);
    free(t->w_count);
    free(t->w_seen);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->p_words[i].word);
    free(t->p_words);
    free(t->p_left);
    free(t->p_right);
    free(t->p_touched);
    free(t->p_count);
    free(t->pm_keys);
    free(t->pm_vals);
    free(t->heap);
    free(t->touched);
    free(t->scratch);
    free(t);
}

int tv_count_piece(tv_trainer *t, const unsigned char *p, size_t n, int64_t count) {
    int64_t pairs = n > 1 ? (int64_t)(n - 1) : 1; /* 1: a piece without pairs still adds its count */
    if (count > (INT64_MAX - t->counted) / pairs) return -2;
    size_t e = strtab_get(&t->pieces, p, n);
    if (e == (size_t)-1) return -1;
    t->counted += count * pairs;
    t->pieces.value[e] += count;
    return 0;
}

int tv_count_text(tv_trainer *t, const unsigned char *s, size_t n, int pattern) {
    size_t i = 0;
    while (i < n) {
        size_t end = tv_piece_end(s, n, i, pattern);
        int rc = tv_count_piece(t, s + i, end - i, 1);
        if (rc < 0) return rc;
        i = end;
    }
    return 0;
}

size_t tv_distinct_pieces(const tv_trainer *t) { return t->pieces.n; }

uint32_t tv_n_tokens(const tv_trainer *t) { return (uint32_t)t->tokens.n; }

/* ---- pairs -------------------------------------------------------------------------------------- */

static int pairmap_rehash(tv_trainer *t, size_t nslots) {
    uint64_t *keys = malloc(nslots * sizeof *keys);
    uint32_t *vals = calloc(nslots, sizeof *vals);
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < t->n_pairs; i++) {
        uint64_t key = (uint64_t)t->p_left[i] << 32 | t->p_right[i];
        size_t k = (size_t)mix64(key) & (nslots - 1);
        while (vals[k]) k = (k + 1) & (nslots - 1);
        keys[k] = key;
        vals[k] = (uint32_t)(i + 1);
    }
    free(t->pm_keys);
    free(t->pm_vals);
    t->pm_keys = keys;
    t->pm_vals = vals;
    t->pm_mask = nslots - 1;
    return 0;
}

/* The index of pair (a, b), made (count 0, no words) if new. (size_t)-1: out of memory. */
static size_t pair_get(tv_trainer *t, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)a << 32 | b;
    size_t k = (size_t)mix64(key) & t->pm_mask;
    for (uint32_t v; (v = t->pm_vals[k]) != 0; k = (k + 1) & t->pm_mask)
        if (t->pm_keys[k] == key) return v - 1;
    size_t i = t->n_pairs;
    if (i >= UINT32_MAX - 1) return (size_t)-1;
    if (i == t->p_cap) { /* the five per-pair arrays share one capacity */
        size_t cap = t->p_cap ? t->p_cap * 2 : 1024;
        if (RESIZE(t->p_left, cap) < 0 || RESIZE(t->p_right, cap) < 0 || RESIZE(t->p_touched, cap) < 0 ||
            RESIZE(t->p_count, cap) < 0 || RESIZE(t->p_words, cap) < 0)
            return (size_t)-1;
        t->p_cap = cap;
    }
    t->p_left[i] = a;
    t->p_right[i] = b;
    t->p_touched[i] = 0;
    t->p_count[i] = 0;
    t->p_words[i] = (wordlist){NULL, 0, 0};
    t->pm_keys[k] = key;
    t->pm_vals[k] = (uint32_t)(i + 1);
    t->n_pairs++;
    if (t->n_pairs * 2 > t->pm_mask + 1 && pairmap_rehash(t, (t->pm_mask + 1) * 2) < 0) return (size_t)-1;
    return i;
}

/* Pair (a, b) is seen `delta` times more (or fewer) in word w. A pair that gains is listed with
 * the word and, once per merge, among the touched pairs (they get a heap entry after the merge). */
static int pair_add(tv_trainer *t, uint32_t a, uint32_t b, int64_t delta, uint32_t w) {
    size_t i = pair_get(t, a, b);
    if (i == (size_t)-1) return -1;
    t->p_count[i] += delta;
    if (delta <= 0) return 0;
    wordlist *wl = &t->p_words[i];
    if (wl->n == 0 || wl->word[wl->n - 1] != w) {
        if (wl->n == wl->cap) {
            uint32_t cap = wl->cap ? wl->cap * 2 : 2;
            uint32_t *q = realloc(wl->word, (size_t)cap * sizeof *q);
            if (q == NULL) return -1;
            wl->word = q;
            wl->cap = cap;
        }
        wl->word[wl->n++] = w;
    }
    if (t->merging && t->p_touched[i] != t->merges + 1) { /* (tv_begin heaps every pair itself) */
        t->p_touched[i] = t->merges + 1;
        if (GROW(t->touched, t->touched_cap, t->n_touched + 1) < 0) return -1;
        t->touched[t->n_touched++] = (uint32_t)i;
    }
    return 0;
}

/* ---- the heap: most frequent first, then the lower pair ----------------------------------------- */

static inline int above(const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->left != y->left) return x->left < y->left;
    return x->right < y->right;
}

static void sift_down(heap_entry *h, size_t n, size_t i) {
    heap_entry e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && above(&h[c + 1], &h[c])) c++;
        if (!above(&h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static int heap_push(tv_trainer *t, size_t pair) {
    if (GROW(t->heap, t->heap_cap, t->heap_len + 1) < 0) return -1;
    heap_entry e = {t->p_count[pair], t->p_left[pair], t->p_right[pair], (uint32_t)pair};
    size_t i = t->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!above(&e, &t->heap[parent])) break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
    return 0;
}

/* ---- training ----------------------------------------------------------------------------------- */

int tv_begin(tv_trainer *t) {
    if (pairmap_rehash(t, 1 << 16) < 0) return -1;
    strtab *ps = &t->pieces;
    for (size_t e = 0; e < ps->n; e++) {
        size_t n = ps->len[e];
        int64_t count = ps->value[e];
        if (n < 2 || count <= 0) continue; /* no pair inside */
        uint32_t w = (uint32_t)t->n_words;
        if (t->n_words >= UINT32_MAX - 1) return -1;
        if (t->n_words == t->w_cap) { /* the four per-word arrays share one capacity */
            size_t cap = t->w_cap ? t->w_cap * 2 : 1024;
            if (RESIZE(t->w_start, cap) < 0 || RESIZE(t->w_len, cap) < 0 || RESIZE(t->w_count, cap) < 0 ||
                RESIZE(t->w_seen, cap) < 0)
                return -1;
            t->w_cap = cap;
        }
        if (GROW(t->sym, t->sym_cap, t->sym_len + n) < 0) return -1;
        const unsigned char *p = ps->bytes + ps->off[e];
        uint32_t *ids = t->sym + t->sym_len;
        for (size_t j = 0; j < n; j++) ids[j] = p[j];
        t->w_start[w] = t->sym_len;
        t->w_len[w] = (uint32_t)n;
        t->w_count[w] = count;
        t->w_seen[w] = 0;
        t->sym_len += n;
        t->n_words++;
        for (size_t j = 0; j + 1 < n; j++)
            if (pair_add(t, ids[j], ids[j + 1], count, w) < 0) return -1;
    }
    strtab_free(ps); /* the words hold it all now */
    t->merging = 1;
    for (size_t i = 0; i < t->n_pairs; i++) {
        if (GROW(t->heap, t->heap_cap, t->heap_len + 1) < 0) return -1;
        t->heap[t->heap_len++] = (heap_entry){t->p_count[i], t->p_left[i], t->p_right[i], (uint32_t)i};
    }
    for (size_t i = t->heap_len / 2; i-- > 0;) sift_down(t->heap, t->heap_len, i);
    return 0;
}

/* Rewrite word w with pair (a, b) -> token m, adjusting the pairs around each occurrence. */
static int merge_word(tv_trainer *t, uint32_t w, uint32_t a, uint32_t b, uint32_t m) {
    uint32_t *ids = t->sym + t->w_start[w];
    uint32_t n = t->w_len[w], out = 0, i = 0;
    int64_t c = t->w_count[w];
    while (i < n) {
        if (i + 1 < n && ids[i] == a && ids[i + 1] == b) {
            if (out > 0) { /* x a b -> x m */
                uint32_t x = ids[out - 1];
                if (pair_add(t, x, a, -c, w) < 0 || pair_add(t, x, m, c, w) < 0) return -1;
            }
            if (pair_add(t, a, b, -c, w) < 0) return -1;
            if (i + 2 < n) { /* a b y -> m y */
                uint32_t y = ids[i + 2];
                if (pair_add(t, b, y, -c, w) < 0 || pair_add(t, m, y, c, w) < 0) return -1;
            }
            ids[out++] = m;
            i += 2;
        } else {
            ids[out++] = ids[i++];
        }
    }
    t->w_len[w] = out;
    return 0;
}

int tv_merge_one(tv_trainer *t, int64_t min_count, tv_merge *out) {
    if (min_count < 1) min_count = 1;
    size_t pair;
    for (;;) {
        if (t->heap_len == 0) return 0;
        heap_entry *top = &t->heap[0];
        int64_t now = t->p_count[top->pair];
        if (now <= 0) { /* merged already, or gone */
            t->heap[0] = t->heap[--t->heap_len];
            sift_down(t->heap, t->heap_len, 0);
            continue;
        }
        if (now != top->count) { /* stale: refresh and look again */
            top->count = now;
            sift_down(t->heap, t->heap_len, 0);
            continue;
        }
        if (now < min_count) return 0; /* the most frequent pair is too rare */
        pair = top->pair;
        t->heap[0] = t->heap[--t->heap_len];
        sift_down(t->heap, t->heap_len, 0);
        break;
    }
    uint32_t a = t->p_left[pair], b = t->p_right[pair];
    int64_t count = t->p_count[pair];
    /* the new token's bytes: a's then b's */
    strtab *tk = &t->tokens;
    size_t la = tk->len[a], lb = tk->len[b];
    if (grow((void **)&t->scratch, &t->scratch_cap, la + lb, 1) < 0) return -1;
    memcpy(t->scratch, tk->bytes + tk->off[a], la);
    memcpy(t->scratch + la, tk->bytes + tk->off[b], lb);
    size_t before = tk->n;
    size_t m = strtab_get(tk, t->scratch, la + lb);
    if (m == (size_t)-1) return -1;
    /* rewrite the words; the list is taken off the pair first (merging never adds (a, b) back) */
    wordlist words = t->p_words[pair];
    t->p_words[pair] = (wordlist){NULL, 0, 0};
    t->n_touched = 0;
    uint32_t stamp = t->merges + 1;
    int failed = 0;
    for (uint32_t k = 0; k < words.n && !failed; k++) {
        uint32_t w = words.word[k];
        if (t->w_seen[w] == stamp) continue;
        t->w_seen[w] = stamp;
        failed = merge_word(t, w, a, b, (uint32_t)m) < 0;
    }
    free(words.word);
    for (size_t k = 0; k < t->n_touched && !failed; k++)
        if (t->p_count[t->touched[k]] > 0) failed = heap_push(t, t->touched[k]) < 0;
    t->merges++;
    if (failed) return -1;
    *out = (tv_merge){a, b, (uint32_t)m, tk->n > before, count};
    return 1;
}

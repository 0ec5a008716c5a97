/* The named pre-tokenisation patterns (tokvec.tokenizers.patterns, tiktoken 0.14's regexes) matched by
 * hand. Each pattern is an alternation tried leftmost-first at byte i, as the `regex` module does;
 * the functions below take the alternatives in the pattern's order, and each comment quotes the
 * alternative it implements. The classes come from unicode_classes.h, generated from the regex
 * module itself. No allocation and no Python here: this runs without the GIL. */
#include "pretok.h"

#include <stdint.h>

#include "unicode_classes.h"

/* A character that is neither a letter, a number nor whitespace: [^\s\p{L}\p{N}]. */
#define OTHER(cls) (((cls) & (TV_CL_L | TV_CL_N | TV_CL_S)) == 0)
#define IS_CR_LF(b) ((b) == '\r' || (b) == '\n')

/* The class bits of the character at byte i (i < n), and in *next the byte after it. ASCII is one
 * table lookup; other characters are decoded (the text is valid UTF-8, so no checks). */
static inline unsigned class_at(const unsigned char *s, size_t i, size_t *next) {
    unsigned c = s[i];
    if (c < 0x80) {
        *next = i + 1;
        return tv_class_data[c];
    }
    uint32_t cp;
    if (c < 0xE0) {
        cp = (c & 0x1Fu) << 6 | (s[i + 1] & 0x3Fu);
        *next = i + 2;
    } else if (c < 0xF0) {
        cp = (c & 0x0Fu) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu);
        *next = i + 3;
    } else {
        cp = (c & 0x07u) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu);
        *next = i + 4;
    }
    return tv_class_of(cp);
}

/* The end of the longest run from byte i of characters whose bits satisfy (cls & mask) == want:
 * want == mask for "in the class", want == 0 for "in none of the classes". */
static inline size_t run_end(const unsigned char *s, size_t n, size_t i, unsigned mask, unsigned want) {
    while (i < n) {
        if (s[i] < 0x80) {
            if ((tv_class_data[s[i]] & mask) != want) break;
            i++;
        } else {
            size_t next;
            if ((class_at(s, i, &next) & mask) != want) break;
            i = next;
        }
    }
    return i;
}

/* The start of the character that ends at byte j. */
static inline size_t char_start_before(const unsigned char *s, size_t j) {
    do j--;
    while ((s[j] & 0xC0) == 0x80);
    return j;
}

/* The byte after the letter at byte i if it is `lower` (an ASCII lower-case letter) or, when
 * fold is set, a case variant of it as (?i:...) reads it; 0 if it is not. The regex module's
 * simple case folding gives these contraction letters no variant beyond ASCII except U+017F LATIN
 * SMALL LETTER LONG S for s (tests check this against the regex module over all code points). */
static inline size_t letter_end(const unsigned char *s, size_t n, size_t i, unsigned char lower, int fold) {
    if (i >= n) return 0;
    if (s[i] == lower || (fold && s[i] == lower - 0x20)) return i + 1;
    if (fold && lower == 's' && s[i] == 0xC5 && i + 1 < n && s[i + 1] == 0xBF) return i + 2;
    return 0;
}

/* The end of a contraction starting at byte i (s[i] == '\''), 0 if there is none: `'s 'd 'm 't
 * 'll 've 're` (the same set in gpt2's '(?:[sdmt]|ll|ve|re), cl100k's '(?i:[sdmt]|ll|ve|re) and
 * o200k's (?i:'s|'t|'re|'ve|'m|'ll|'d)). Their first letters differ, so their order does not matter. */
static size_t contraction_end(const unsigned char *s, size_t n, size_t i, int fold) {
    size_t k = i + 1, e;
    if ((e = letter_end(s, n, k, 's', fold)) || (e = letter_end(s, n, k, 'd', fold)) ||
        (e = letter_end(s, n, k, 'm', fold)) || (e = letter_end(s, n, k, 't', fold)))
        return e;
    if ((e = letter_end(s, n, k, 'l', fold))) return letter_end(s, n, e, 'l', fold);
    if ((e = letter_end(s, n, k, 'v', fold)) || (e = letter_end(s, n, k, 'r', fold)))
        return letter_end(s, n, e, 'e', fold);
    return 0;
}

/* The whitespace alternatives once nothing else matched at i; s[i] is whitespace ending at e1 and
 * the run of whitespace from i ends at j.
 *   `\s+(?!\S)`: the run but its last character (which then joins the next piece), if that leaves one;
 *                at the end of the text the whole run (nothing follows it).
 *   `\s` (gpt2, cl100k) or `\s+` (o200k): a lone whitespace character before a non-space. */
static inline size_t trailing_space_end(const unsigned char *s, size_t n, size_t e1, size_t j) {
    if (j == n) return n;
    if (j > e1) return char_start_before(s, j);
    return j;
}

/* The last CR or LF in bytes [i, j) and the byte after it, 0 if there is none. Bytes of multi-byte
 * characters are >= 0x80, so a byte scan is exact. */
static inline size_t after_last_cr_lf(const unsigned char *s, size_t i, size_t j) {
    while (j > i) {
        j--;
        if (IS_CR_LF(s[j])) return j + 1;
    }
    return 0;
}

/* \p{N}{1,3} (possessive or not: nothing after it in its alternative): up to three numbers, the
 * first of which ends at byte e1. */
static inline size_t numbers_end(const unsigned char *s, size_t n, size_t e1) {
    size_t j = e1, next;
    for (int k = 1; k < 3 && j < n && (class_at(s, j, &next) & TV_CL_N); k++) j = next;
    return j;
}

/* ` ?[^\s\p{L}\p{N}]+` then any CRs and LFs (and slashes when `slash`: o200k's `[\r\n/]*`), from
 * byte i whose character (class cls) ends at e1; 0 if it does not match there. Possessive or not,
 * the same: the run and its tail are greedy and nothing after them in the alternative can fail. */
static inline size_t other_end(const unsigned char *s, size_t n, size_t i, size_t e1, unsigned cls, int slash) {
    size_t start = i, next;
    if (!OTHER(cls)) {
        if (s[i] != ' ' || e1 >= n || !OTHER(class_at(s, e1, &next))) return 0;
        start = e1;
    }
    size_t j = run_end(s, n, start, TV_CL_L | TV_CL_N | TV_CL_S, 0);
    while (j < n && (IS_CR_LF(s[j]) || (slash && s[j] == '/'))) j++;
    return j;
}

/* gpt2: '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s */
static size_t gpt2_end(const unsigned char *s, size_t n, size_t i) {
    /* '(?:[sdmt]|ll|ve|re): case-sensitive */
    if (s[i] == '\'') {
        size_t e = contraction_end(s, n, i, 0);
        if (e) return e;
    }
    size_t e1;
    unsigned cls = class_at(s, i, &e1);
    /* ` ?\p{L}++`, ` ?\p{N}++`, ` ?[^\s\p{L}\p{N}]++`: one optional space, then a run of one class
     * (the three classes are disjoint, so the run's first character picks the alternative) */
    size_t start = i;
    if (s[i] == ' ' && e1 < n) {
        size_t e2;
        unsigned next_cls = class_at(s, e1, &e2);
        if (!(next_cls & TV_CL_S)) {
            start = e1;
            cls = next_cls;
        }
    }
    if (cls & TV_CL_L) return run_end(s, n, start, TV_CL_L, TV_CL_L);
    if (cls & TV_CL_N) return run_end(s, n, start, TV_CL_N, TV_CL_N);
    if (OTHER(cls)) return run_end(s, n, start, TV_CL_L | TV_CL_N | TV_CL_S, 0);
    /* s[i] is whitespace. `\s++$`: the possessive run takes all whitespace, so `$` can only hold at
     * the very end (the "before a final \n" reading of `$` never applies: that \n is in the run). */
    size_t j = run_end(s, n, e1, TV_CL_S, TV_CL_S);
    return trailing_space_end(s, n, e1, j); /* `\s+(?!\S)`, `\s` */
}

/* cl100k: '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
 *         |\s++$|\s*[\r\n]|\s+(?!\S)|\s */
static size_t cl100k_end(const unsigned char *s, size_t n, size_t i) {
    size_t e1, e2, e;
    /* '(?i:[sdmt]|ll|ve|re) */
    if (s[i] == '\'' && (e = contraction_end(s, n, i, 1))) return e;
    unsigned cls = class_at(s, i, &e1);
    /* [^\r\n\p{L}\p{N}]?+\p{L}++: a letter run, with one character before it that is no CR, LF,
     * letter or number (the prefix and the letters are disjoint, so possessiveness changes nothing) */
    if (cls & TV_CL_L) return run_end(s, n, e1, TV_CL_L, TV_CL_L);
    if (!(cls & TV_CL_N) && !IS_CR_LF(s[i]) && e1 < n && (class_at(s, e1, &e2) & TV_CL_L))
        return run_end(s, n, e2, TV_CL_L, TV_CL_L);
    /* \p{N}{1,3}+: up to three numbers */
    if (cls & TV_CL_N) return numbers_end(s, n, e1);
    /* ` ?[^\s\p{L}\p{N}]++[\r\n]*+`: optional space, a run of "other", then any CRs and LFs */
    if ((e = other_end(s, n, i, e1, cls, 0))) return e;
    /* s[i] is whitespace. `\s++$`: a run that reaches the end (see gpt2_end on `$`) */
    size_t j = run_end(s, n, e1, TV_CL_S, TV_CL_S);
    if (j == n) return n;
    /* `\s*[\r\n]`: \s* backtracks from the run's end to its last CR or LF */
    if ((e = after_last_cr_lf(s, i, j))) return e;
    return trailing_space_end(s, n, e1, j); /* `\s+(?!\S)`, `\s` */
}

/* The letters of o200k's first alternative from byte k (the part after the optional prefix):
 * [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+, with the regex engine's backtracking.
 * The greedy U* takes the whole U run; if the character after it is W, W+ takes the W run from there.
 * Otherwise U* gives back characters one at a time until W+ can start: the first such start is the
 * run's last character that is also W (Lm, Lo, M are in both classes), and W+ then ends right after
 * it (the character after it is either a U-only letter or the one after the run, which is not W).
 * Returns the end, or 0 if the alternative fails from k. */
static size_t o200k_lower_end(const unsigned char *s, size_t n, size_t k) {
    size_t j = k, last_w_end = 0, next;
    while (j < n) {
        unsigned cls = class_at(s, j, &next);
        if (!(cls & TV_CL_U)) {
            if (cls & TV_CL_W) return run_end(s, n, next, TV_CL_W, TV_CL_W);
            break;
        }
        if (cls & TV_CL_W) last_w_end = next;
        j = next;
    }
    return last_w_end;
}

/* The letters of o200k's second alternative from byte k: [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+
 * [\p{Ll}\p{Lm}\p{Lo}\p{M}]* (greedy; nothing after them can fail). 0 if the alternative fails. */
static size_t o200k_upper_end(const unsigned char *s, size_t n, size_t k) {
    size_t j = run_end(s, n, k, TV_CL_U, TV_CL_U);
    return j == k ? 0 : run_end(s, n, j, TV_CL_W, TV_CL_W);
}

/* o200k's optional (?i:'s|'t|'re|'ve|'m|'ll|'d) after the letters of its first two alternatives. */
static inline size_t with_contraction(const unsigned char *s, size_t n, size_t e) {
    if (e < n && s[e] == '\'') {
        size_t c = contraction_end(s, n, e, 1);
        if (c) return c;
    }
    return e;
}

/* o200k: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|...)?
 *       |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|...)?
 *       |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * The prefix [^\r\n\p{L}\p{N}]? is greedy but not possessive: each of the first two alternatives is
 * tried with the prefix, then without it. Without it only a character in U or W can start the
 * letters; that includes a mark (M), which is also a prefix character. */
static size_t o200k_end(const unsigned char *s, size_t n, size_t i) {
    size_t e1, e;
    unsigned cls = class_at(s, i, &e1);
    int prefix = !(cls & (TV_CL_L | TV_CL_N)) && !IS_CR_LF(s[i]);
    /* first alternative: with the prefix, then without */
    if (prefix && e1 < n && (e = o200k_lower_end(s, n, e1))) return with_contraction(s, n, e);
    if ((cls & (TV_CL_U | TV_CL_W)) && (e = o200k_lower_end(s, n, i))) return with_contraction(s, n, e);
    /* second alternative: with the prefix, then without */
    if (prefix && e1 < n && (e = o200k_upper_end(s, n, e1))) return with_contraction(s, n, e);
    if ((cls & TV_CL_U) && (e = o200k_upper_end(s, n, i))) return with_contraction(s, n, e);
    /* \p{N}{1,3} */
    if (cls & TV_CL_N) return numbers_end(s, n, e1);
    /* ` ?[^\s\p{L}\p{N}]+[\r\n/]*`: optional space, a run of "other", then any CRs, LFs and slashes */
    if ((e = other_end(s, n, i, e1, cls, 1))) return e;
    /* s[i] is whitespace. `\s*[\r\n]+`: \s* backtracks from the run's end to its last CR or LF, and
     * [\r\n]+ takes that one (o200k has no `\s++$`: a run with a CR or LF stops after the last one
     * even at the end of the text) */
    size_t j = run_end(s, n, e1, TV_CL_S, TV_CL_S);
    e = after_last_cr_lf(s, i, j);
    if (e) return e;
    return trailing_space_end(s, n, e1, j); /* `\s+(?!\S)`, `\s+` (a lone character here) */
}

size_t tv_piece_end(const unsigned char *s, size_t n, size_t i, int pattern) {
    switch (pattern) {
    case TV_PAT_GPT2:
        return gpt2_end(s, n, i);
    case TV_PAT_CL100K:
        return cl100k_end(s, n, i);
    case TV_PAT_O200K:
        return o200k_end(s, n, i);
    default: { /* not a pattern (module.c refuses it first): one character, to keep i < end <= n */
        size_t next;
        (void)class_at(s, i, &next);
        return next;
    }
    }
}

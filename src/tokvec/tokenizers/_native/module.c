/* tokvec.tokenizers._bpe_native: the Python face of the C BPE trainer (train.c) and of the
 * pre-tokeniser for the named patterns (pretok.c). Used by tokvec.tokenizers.bpe_train. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pretok.h"
#include "train.h"

static int check_pattern(int pattern) {
    if (pattern != TV_PAT_GPT2 && pattern != TV_PAT_CL100K && pattern != TV_PAT_O200K) {
        PyErr_Format(PyExc_ValueError, "pattern must be 0 (gpt2), 1 (cl100k) or 2 (o200k), got %d", pattern);
        return -1;
    }
    return 0;
}

/* split(text, pattern) -> list[str]: the pieces, as regex.findall(PATTERNS[name], text) gives them. */
static PyObject *split(PyObject *self, PyObject *args) {
    PyObject *text;
    int pattern;
    if (!PyArg_ParseTuple(args, "Ui:split", &text, &pattern) || check_pattern(pattern) < 0) return NULL;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    size_t i = 0;
    while (i < (size_t)n) {
        size_t end = tv_piece_end((const unsigned char *)s, (size_t)n, i, pattern);
        PyObject *piece = PyUnicode_DecodeUTF8(s + i, (Py_ssize_t)(end - i), "strict");
        if (piece == NULL || PyList_Append(out, piece) < 0) {
            Py_XDECREF(piece);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(piece);
        i = end;
    }
    return out;
}


/* ---- Trainer: counts pieces, then merges (train.h) ---------------------------------------------- */

typedef struct {
    PyObject_HEAD
    tv_trainer *t;
    int merging; /* merge() was called: no more counting */
    int busy;    /* a call runs without the GIL: another thread may not use the trainer meanwhile */
    int broken;  /* a call ran out of memory half-way: the counts or words are incomplete */
} Trainer;

static int trainer_enter(Trainer *self, int counting) {
    if (self->broken) {
        PyErr_SetString(PyExc_RuntimeError, "this Trainer ran out of memory in an earlier call and its counts are "
                                            "incomplete; count the text again in a new Trainer");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this Trainer is in use by another thread");
        return -1;
    }
    if (counting && self->merging) {
        PyErr_SetString(PyExc_RuntimeError, "the Trainer has started merging; count all the text first");
        return -1;
    }
    self->busy = 1;
    return 0;
}

static PyObject *trainer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Trainer", kwlist)) return NULL;
    Trainer *self = (Trainer *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->t = tv_trainer_new();
    if (self->t == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void trainer_dealloc(Trainer *self) {
    tv_trainer_free(self->t);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The result of tv_count_text or tv_count_piece (train.h): None, or the error. */
static PyObject *counted(Trainer *self, int rc, long long count) {
    if (rc == -2)
        return PyErr_Format(PyExc_ValueError,
                            "count %lld is too large: the pairs counted in all would pass 2**63 - 1, where a pair's "
                            "count overflows; scale the counts down",
                            count);
    if (rc < 0) {
        self->broken = 1; /* a text may be counted in part */
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *trainer_add_text(Trainer *self, PyObject *args) {
    PyObject *text;
    int pattern, rc;
    if (!PyArg_ParseTuple(args, "Ui:add_text", &text, &pattern) || check_pattern(pattern) < 0) return NULL;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n); /* held by `text`, which the caller holds */
    if (s == NULL || trainer_enter(self, 1) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS rc = tv_count_text(self->t, (const unsigned char *)s, (size_t)n, pattern);
    Py_END_ALLOW_THREADS self->busy = 0;
    return counted(self, rc, 1);
}

static PyObject *trainer_add_piece(Trainer *self, PyObject *args) {
    Py_buffer piece;
    long long count;
    if (!PyArg_ParseTuple(args, "y*L:add_piece", &piece, &count)) return NULL;
    if (count < 1) {
        PyBuffer_Release(&piece);
        return PyErr_Format(PyExc_ValueError, "count must be >= 1, got %lld", count);
    }
    if (trainer_enter(self, 1) < 0) {
        PyBuffer_Release(&piece);
        return NULL;
    }
    int rc = tv_count_piece(self->t, piece.buf, (size_t)piece.len, (int64_t)count);
    self->busy = 0;
    PyBuffer_Release(&piece);
    return counted(self, rc, count);
}

/* merge(max_new, min_count) -> [(token, left, right, count), ...]: merges until max_new new tokens
 * are made or no pair is seen min_count times. A merge whose bytes another merge made already
 * gives that token's id again (not a new token). */
static PyObject *trainer_merge(Trainer *self, PyObject *args) {
    Py_ssize_t max_new;
    long long min_count;
    if (!PyArg_ParseTuple(args, "nL:merge", &max_new, &min_count)) return NULL;
    if (max_new < 0) return PyErr_Format(PyExc_ValueError, "max_new must be >= 0, got %zd", max_new);
    if (trainer_enter(self, 0) < 0) return NULL;
    tv_merge *made = NULL;
    size_t n = 0, cap = 0;
    Py_ssize_t fresh = 0;
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS if (!self->merging) rc = tv_begin(self->t);
    while (rc >= 0 && fresh < max_new) {
        if (n == cap) {
            size_t cap2 = cap ? cap * 2 : 256;
            tv_merge *q = realloc(made, cap2 * sizeof *q);
            if (q == NULL) {
                rc = -1;
                break;
            }
            made = q;
            cap = cap2;
        }
        rc = tv_merge_one(self->t, (int64_t)min_count, &made[n]);
        if (rc <= 0) break;
        fresh += made[n].is_new;
        n++;
    }
    Py_END_ALLOW_THREADS self->merging = 1;
    self->busy = 0;
    if (rc < 0) { /* words half rewritten, or merges made and lost */
        self->broken = 1;
        free(made);
        return PyErr_NoMemory();
    }
    PyObject *out = PyList_New((Py_ssize_t)n);
    for (size_t k = 0; out != NULL && k < n; k++) {
        PyObject *item = Py_BuildValue("(IIIL)", made[k].token, made[k].left, made[k].right, (long long)made[k].count);
        if (item == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, (Py_ssize_t)k, item);
    }
    free(made);
    if (out == NULL) self->broken = 1; /* the merges made are lost */
    return out;
}

static PyObject *trainer_distinct_pieces(Trainer *self, PyObject *unused) {
    return PyLong_FromSize_t(tv_distinct_pieces(self->t));
}

static PyObject *trainer_n_tokens(Trainer *self, PyObject *unused) {
    return PyLong_FromUnsignedLong(tv_n_tokens(self->t));
}

static PyMethodDef trainer_methods[] = {
    {"add_text", (PyCFunction)trainer_add_text, METH_VARARGS, "add_text(text, pattern): count its pieces"},
    {"add_piece", (PyCFunction)trainer_add_piece, METH_VARARGS, "add_piece(piece: bytes, count): count a piece"},
    {"merge", (PyCFunction)trainer_merge, METH_VARARGS,
     "merge(max_new, min_count) -> [(token, left, right, count)]: the next merges"},
    {"distinct_pieces", (PyCFunction)trainer_distinct_pieces, METH_NOARGS, "distinct pieces counted (0 once merging)"},
    {"n_tokens", (PyCFunction)trainer_n_tokens, METH_NOARGS, "256 + the new tokens made"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TrainerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tokvec.tokenizers._bpe_native.Trainer",
    .tp_basicsize = sizeof(Trainer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Trainer(): byte-level BPE training on counted pieces (count all the text, then merge).",
    .tp_new = trainer_new,
    .tp_dealloc = (destructor)trainer_dealloc,
    .tp_methods = trainer_methods,
};

/* count_pieces(text, pattern) -> int: len(split(text, pattern)) without building the list (benchmarks). */
static PyObject *count_pieces(PyObject *self, PyObject *args) {
    PyObject *text;
    int pattern;
    if (!PyArg_ParseTuple(args, "Ui:count_pieces", &text, &pattern) || check_pattern(pattern) < 0) return NULL;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL) return NULL;
    size_t count = 0;
    for (size_t i = 0; i < (size_t)n; count++) i = tv_piece_end((const unsigned char *)s, (size_t)n, i, pattern);
    return PyLong_FromSize_t(count);
}

static PyMethodDef module_methods[] = {
    {"split", split, METH_VARARGS, "split(text, pattern) -> list of pieces (pattern: 0 gpt2, 1 cl100k, 2 o200k)"},
    {"count_pieces", count_pieces, METH_VARARGS, "count_pieces(text, pattern) -> number of pieces split() gives"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_bpe_native", "tokvec's BPE trainer and pre-tokeniser, in C.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__bpe_native(void) {
    if (PyType_Ready(&TrainerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    Py_INCREF(&TrainerType);
    if (PyModule_AddObject(m, "Trainer", (PyObject *)&TrainerType) < 0) {
        Py_DECREF(&TrainerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "GPT2", TV_PAT_GPT2) < 0 || PyModule_AddIntConstant(m, "CL100K", TV_PAT_CL100K) < 0 ||
        PyModule_AddIntConstant(m, "O200K", TV_PAT_O200K) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

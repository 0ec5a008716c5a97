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
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "GPT2", TV_PAT_GPT2) < 0 || PyModule_AddIntConstant(m, "CL100K", TV_PAT_CL100K) < 0 ||
        PyModule_AddIntConstant(m, "O200K", TV_PAT_O200K) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

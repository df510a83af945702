/* A C-extension test package built by the Cortex tests. */
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long x, y;
    if (!PyArg_ParseTuple(args, "ll", &x, &y))
        return NULL;
    return PyLong_FromLong(x + y);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "Add two integers in C."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cxfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit_cxfast(void) { return PyModule_Create(&module); }

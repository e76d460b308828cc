/*
 * cps_middleware._bridge — native part of the TLS layer.
 *
 * For now it only reports which libcrypto it was linked against, so that the
 * Python side can refuse to run when it differs from the interpreter's _ssl.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

static PyObject *
openssl_version_number(PyObject *self, PyObject *noargs)
{
    return PyLong_FromUnsignedLong(OpenSSL_version_num());
}

static PyObject *
openssl_version(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(OpenSSL_version(OPENSSL_VERSION));
}

static PyMethodDef bridge_methods[] = {
    {"openssl_version_number", openssl_version_number, METH_NOARGS,
     "OPENSSL_VERSION_NUMBER of the libcrypto this extension runs with."},
    {"openssl_version", openssl_version, METH_NOARGS,
     "Version text of the libcrypto this extension runs with."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bridge_module = {
    PyModuleDef_HEAD_INIT, "cps_middleware._bridge",
    "Native OpenSSL bridge of cps-middleware.", -1, bridge_methods,
};

PyMODINIT_FUNC
PyInit__bridge(void)
{
    return PyModule_Create(&bridge_module);
}

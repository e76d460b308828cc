/* cps_middleware._verify: the DER walk over one certificate (dercert.c). */
#ifndef CPS_DERCERT_H
#define CPS_DERCERT_H
#include <Python.h>

PyObject *dercert_parse(PyObject *self, PyObject *arg);
PyObject *dercert_set_tables(PyObject *self, PyObject *args);
PyObject *dercert_check_name(PyObject *self, PyObject *arg);

#endif

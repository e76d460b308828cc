/*
 * cps_middleware._verify: batch signature verification for the chain validator.
 *
 * verify_batch(keys, jobs, threads) -> bytes
 *   keys:    sequence of SubjectPublicKeyInfo DER (bytes), the issuers' keys
 *   jobs:    sequence of (key index, hash id, tbs bytes, signature bytes)
 *            hash id: 1 SHA-256, 2 SHA-384, 3 SHA-512, 4 SHA-224; RSA keys are
 *            verified with PKCS#1 v1.5 padding, EC keys with ECDSA (DER signature)
 *   threads: how many threads share the jobs (1 = the calling thread only)
 * Returns one byte per job: 1 the signature verifies, 0 it does not (or the
 * job cannot be run: bad key index, unknown hash). Raises ValueError when a
 * key cannot be decoded, TypeError on badly shaped input.
 *
 * The GIL is released while verifying; the bytes objects stay referenced by
 * the job tuples, which the caller's sequence keeps alive for the call.
 * Built against the system OpenSSL 3 (libcrypto), as the other native parts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>

typedef struct {
    EVP_PKEY *key;
    const EVP_MD *md;
    const unsigned char *tbs;
    size_t tbs_len;
    const unsigned char *sig;
    size_t sig_len;
} job_t;

typedef struct {
    job_t *jobs;
    unsigned char *out;
    Py_ssize_t start, end;
} slice_t;

static const EVP_MD *md_of(long id) {
    switch (id) {
    case 1: return EVP_sha256();
    case 2: return EVP_sha384();
    case 3: return EVP_sha512();
    case 4: return EVP_sha224();
    default: return NULL;
    }
}

static void *run_slice(void *arg) {
    slice_t *s = (slice_t *)arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    for (Py_ssize_t i = s->start; i < s->end; i++) {
        job_t *j = &s->jobs[i];
        s->out[i] = 0;
        if (ctx == NULL || j->key == NULL || j->md == NULL)
            continue;
        if (EVP_DigestVerifyInit(ctx, NULL, j->md, NULL, j->key) == 1 &&
            EVP_DigestVerify(ctx, j->sig, j->sig_len, j->tbs, j->tbs_len) == 1)
            s->out[i] = 1;
        EVP_MD_CTX_reset(ctx);
    }
    EVP_MD_CTX_free(ctx);
    return NULL;
}

static PyObject *verify_batch(PyObject *self, PyObject *args) {
    PyObject *keys_in, *jobs_in;
    int threads = 1;
    if (!PyArg_ParseTuple(args, "OO|i", &keys_in, &jobs_in, &threads))
        return NULL;
    PyObject *keys = PySequence_Fast(keys_in, "keys must be a sequence");
    if (keys == NULL)
        return NULL;
    PyObject *jobs = PySequence_Fast(jobs_in, "jobs must be a sequence");
    if (jobs == NULL) {
        Py_DECREF(keys);
        return NULL;
    }
    Py_ssize_t nkeys = PySequence_Fast_GET_SIZE(keys);
    Py_ssize_t njobs = PySequence_Fast_GET_SIZE(jobs);
    EVP_PKEY **pkeys = PyMem_Calloc((size_t)(nkeys ? nkeys : 1), sizeof(EVP_PKEY *));
    job_t *js = PyMem_Calloc((size_t)(njobs ? njobs : 1), sizeof(job_t));
    PyObject *result = PyBytes_FromStringAndSize(NULL, njobs);
    if (pkeys == NULL || js == NULL || result == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < nkeys; k++) {
        char *buf;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(keys, k), &buf, &len) < 0)
            goto fail;
        const unsigned char *p = (const unsigned char *)buf;
        pkeys[k] = d2i_PUBKEY(NULL, &p, (long)len);
        if (pkeys[k] == NULL || p != (const unsigned char *)buf + len) {
            PyErr_Format(PyExc_ValueError, "key %zd cannot be decoded", k);
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < njobs; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(jobs, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
            PyErr_SetString(PyExc_TypeError, "a job is a (key, hash, tbs, signature) tuple");
            goto fail;
        }
        long key = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
        long hash = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
        if (PyErr_Occurred())
            goto fail;
        char *tbs, *sig;
        Py_ssize_t tbs_len, sig_len;
        if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(t, 2), &tbs, &tbs_len) < 0 ||
            PyBytes_AsStringAndSize(PyTuple_GET_ITEM(t, 3), &sig, &sig_len) < 0)
            goto fail;
        js[i].key = (key >= 0 && key < nkeys) ? pkeys[key] : NULL;
        js[i].md = md_of(hash);
        js[i].tbs = (const unsigned char *)tbs;
        js[i].tbs_len = (size_t)tbs_len;
        js[i].sig = (const unsigned char *)sig;
        js[i].sig_len = (size_t)sig_len;
    }
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    if (njobs < 2 * threads)
        threads = 1;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    slice_t slices[64];
    pthread_t tids[64];
    int started[64] = {0};
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t per = (njobs + threads - 1) / threads;
    for (int t = 0; t < threads; t++) {
        slices[t].jobs = js;
        slices[t].out = out;
        slices[t].start = t * per < njobs ? t * per : njobs;
        slices[t].end = (t + 1) * per < njobs ? (t + 1) * per : njobs;
    }
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tids[t], NULL, run_slice, &slices[t]) == 0;
    run_slice(&slices[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_slice(&slices[t]); /* no thread: do it here */
    }
    Py_END_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < nkeys; k++)
        EVP_PKEY_free(pkeys[k]);
    PyMem_Free(pkeys);
    PyMem_Free(js);
    Py_DECREF(keys);
    Py_DECREF(jobs);
    return result;
fail:
    if (pkeys != NULL)
        for (Py_ssize_t k = 0; k < nkeys; k++)
            EVP_PKEY_free(pkeys[k]);
    PyMem_Free(pkeys);
    PyMem_Free(js);
    Py_XDECREF(result);
    Py_DECREF(keys);
    Py_DECREF(jobs);
    return NULL;
}

static PyMethodDef methods[] = {
    {"verify_batch", verify_batch, METH_VARARGS,
     "verify_batch(keys, jobs, threads=1) -> bytes: one 1/0 per (key, hash, tbs, sig) job"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_verify",
    "Batch signature verification (OpenSSL, GIL released, threads) for the validator.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__verify(void) { return PyModule_Create(&module); }

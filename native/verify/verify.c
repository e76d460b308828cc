/*
 * cps_middleware._verify — certificate and CRL signatures verified in native
 * code, a whole batch per call, with the GIL released and the batch spread
 * over threads.
 *
 * Why native: cryptography's verify holds the GIL, so the batch validator
 * could use a second core only through worker processes, and each Python-level
 * call costs more than hashing a TBSCertificate. Here one call checks a whole
 * batch: the issuer key is decoded once (Key), each thread keeps one verify
 * context per key for the whole batch (as `openssl speed` does), hashes the
 * signed data with a pre-fetched digest and verifies the digest.
 *
 * Built against the system OpenSSL 3 (the one the interpreter's ssl module
 * uses). Inputs are never trusted: every length is checked by OpenSSL, a
 * signature that does not parse is simply "does not verify".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "dercert.h"

#define MAX_THREADS 64
#define CHUNK 8

enum scheme { S_RSA_PKCS1, S_RSA_PSS, S_ECDSA, S_EDDSA };

typedef struct {
    PyObject_HEAD
    EVP_PKEY *pkey;
    EVP_MD *md; /* NULL for EdDSA */
    enum scheme scheme;
    int salt;      /* PSS salt length */
    int bits;
    PyObject *name; /* the scheme as given, for repr */
} KeyObject;

static PyTypeObject KeyType;

/* --- scheme names ------------------------------------------------------------ */

static int
parse_scheme(const char *s, enum scheme *scheme, const char **md, int *salt)
{
    static const char *hashes[] = {"sha256", "sha384", "sha512", "sha224", NULL};
    *salt = 0;
    *md = NULL;
    if (strcmp(s, "ed25519") == 0 || strcmp(s, "ed448") == 0) {
        *scheme = S_EDDSA;
        return 0;
    }
    const char *rest;
    if (strncmp(s, "rsa-pkcs1-", 10) == 0) {
        *scheme = S_RSA_PKCS1;
        rest = s + 10;
    } else if (strncmp(s, "rsa-pss-", 8) == 0) {
        *scheme = S_RSA_PSS;
        rest = s + 8;
    } else if (strncmp(s, "ecdsa-", 6) == 0) {
        *scheme = S_ECDSA;
        rest = s + 6;
    } else {
        return -1;
    }
    for (int i = 0; hashes[i]; i++) {
        size_t n = strlen(hashes[i]);
        if (strncmp(rest, hashes[i], n) != 0)
            continue;
        *md = hashes[i];
        if (*scheme == S_RSA_PSS) {
            if (rest[n] != ':')
                return -1;
            char *end;
            long v = strtol(rest + n + 1, &end, 10);
            if (*end || v < 0 || v > 1024)
                return -1;
            *salt = (int)v;
            return 0;
        }
        return rest[n] == '\0' ? 0 : -1;
    }
    return -1;
}

/* --- Key ------------------------------------------------------------------- */

static void
Key_dealloc(KeyObject *self)
{
    EVP_PKEY_free(self->pkey);
    EVP_MD_free(self->md);
    Py_XDECREF(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Key_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"spki", "scheme", NULL};
    Py_buffer spki;
    const char *scheme_s;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*s", kwlist, &spki, &scheme_s))
        return NULL;
    enum scheme scheme;
    const char *mdname;
    int salt;
    if (parse_scheme(scheme_s, &scheme, &mdname, &salt) != 0) {
        PyBuffer_Release(&spki);
        PyErr_Format(PyExc_ValueError, "unknown signature scheme %R", PyTuple_GET_ITEM(args, 1));
        return NULL;
    }
    const unsigned char *p = spki.buf;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)spki.len);
    int trailing = pkey && p != (const unsigned char *)spki.buf + spki.len;
    PyBuffer_Release(&spki);
    ERR_clear_error();
    if (!pkey || trailing) {
        EVP_PKEY_free(pkey);
        PyErr_SetString(PyExc_ValueError, "the public key does not parse");
        return NULL;
    }
    int id = EVP_PKEY_get_base_id(pkey);
    int ok = (scheme == S_RSA_PKCS1 || scheme == S_RSA_PSS) ? id == EVP_PKEY_RSA
             : scheme == S_ECDSA                             ? id == EVP_PKEY_EC
             : (strcmp(scheme_s, "ed25519") == 0 ? id == EVP_PKEY_ED25519 : id == EVP_PKEY_ED448);
    if (!ok) {
        EVP_PKEY_free(pkey);
        PyErr_SetString(PyExc_ValueError, "the key type does not match the signature scheme");
        return NULL;
    }
    EVP_MD *md = NULL;
    if (mdname) {
        md = EVP_MD_fetch(NULL, mdname, NULL);
        if (!md) {
            EVP_PKEY_free(pkey);
            ERR_clear_error();
            PyErr_Format(PyExc_ValueError, "digest %s is not available", mdname);
            return NULL;
        }
    }
    KeyObject *self = (KeyObject *)type->tp_alloc(type, 0);
    if (!self) {
        EVP_PKEY_free(pkey);
        EVP_MD_free(md);
        return NULL;
    }
    self->pkey = pkey;
    self->md = md;
    self->scheme = scheme;
    self->salt = salt;
    self->bits = EVP_PKEY_get_bits(pkey);
    self->name = PyUnicode_FromString(scheme_s);
    if (!self->name) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
Key_repr(KeyObject *self)
{
    return PyUnicode_FromFormat("<_verify.Key %U %d bits>", self->name, self->bits);
}

/* A verify context ready for EVP_PKEY_verify (digest already computed). */
static EVP_PKEY_CTX *
new_ctx(const KeyObject *k)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (!ctx)
        return NULL;
    if (EVP_PKEY_verify_init(ctx) <= 0 || EVP_PKEY_CTX_set_signature_md(ctx, k->md) <= 0)
        goto fail;
    if (k->scheme == S_RSA_PKCS1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
        goto fail;
    if (k->scheme == S_RSA_PSS &&
        (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, k->md) <= 0 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, k->salt) <= 0))
        goto fail;
    return ctx;
fail:
    EVP_PKEY_CTX_free(ctx);
    return NULL;
}

/* --- one verification ------------------------------------------------------ */

typedef struct {
    const KeyObject *key;
    EVP_PKEY_CTX *ctx;
} slot;

typedef struct {
    slot *slots; /* open addressing on the key pointer */
    size_t cap, used;
    EVP_MD_CTX *mdctx;
} thread_state;

static size_t
hash_ptr(const void *p, size_t cap)
{
    uintptr_t v = (uintptr_t)p;
    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 7) & (cap - 1);
}

static slot *
find_slot(slot *slots, size_t cap, const KeyObject *k)
{
    size_t i = hash_ptr(k, cap);
    while (slots[i].key && slots[i].key != k)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* The thread's verify context for this key (made on first use, kept for the batch). */
static EVP_PKEY_CTX *
ctx_for(thread_state *ts, const KeyObject *k)
{
    slot *s = find_slot(ts->slots, ts->cap, k);
    if (s->key)
        return s->ctx;
    if (2 * (ts->used + 1) > ts->cap) { /* keep the table at most half full */
        size_t cap = ts->cap * 2;
        slot *bigger = calloc(cap, sizeof(slot));
        if (!bigger)
            return NULL;
        for (size_t i = 0; i < ts->cap; i++)
            if (ts->slots[i].key)
                *find_slot(bigger, cap, ts->slots[i].key) = ts->slots[i];
        free(ts->slots);
        ts->slots = bigger;
        ts->cap = cap;
        s = find_slot(ts->slots, ts->cap, k);
    }
    s->key = k;
    s->ctx = new_ctx(k);
    ts->used++;
    return s->ctx;
}

static int
verify_one(thread_state *ts, const KeyObject *k, const unsigned char *sig, size_t siglen,
           const unsigned char *data, size_t datalen)
{
    int ok = 0;
    if (k->scheme == S_EDDSA) {
        EVP_MD_CTX *m = ts->mdctx;
        if (EVP_DigestVerifyInit_ex(m, NULL, NULL, NULL, NULL, k->pkey, NULL) > 0)
            ok = EVP_DigestVerify(m, sig, siglen, data, datalen) == 1;
        EVP_MD_CTX_reset(m);
    } else {
        unsigned char dg[EVP_MAX_MD_SIZE];
        unsigned int dglen = 0;
        EVP_PKEY_CTX *ctx = ctx_for(ts, k);
        if (ctx && EVP_Digest(data, datalen, dg, &dglen, k->md, NULL) > 0)
            ok = EVP_PKEY_verify(ctx, sig, siglen, dg, dglen) == 1;
    }
    ERR_clear_error();
    return ok;
}

static int
state_init(thread_state *ts)
{
    ts->cap = 16;
    ts->used = 0;
    ts->slots = calloc(ts->cap, sizeof(slot));
    ts->mdctx = EVP_MD_CTX_new();
    return ts->slots && ts->mdctx ? 0 : -1;
}

static void
state_free(thread_state *ts)
{
    if (ts->slots) {
        for (size_t i = 0; i < ts->cap; i++)
            EVP_PKEY_CTX_free(ts->slots[i].ctx);
        free(ts->slots);
    }
    EVP_MD_CTX_free(ts->mdctx);
    ERR_clear_error();
}

/* --- batches --------------------------------------------------------------- */

typedef struct {
    const KeyObject *key;
    const unsigned char *sig, *data;
    size_t siglen, datalen;
} item;

typedef struct {
    item *items;
    size_t n;
    unsigned char *out;
    atomic_size_t next;
    atomic_int failed; /* a thread could not allocate its state */
} batch;

static void *
worker(void *arg)
{
    batch *b = arg;
    thread_state ts = {0};
    if (state_init(&ts) != 0) {
        atomic_store(&b->failed, 1);
        state_free(&ts);
        return NULL;
    }
    for (;;) {
        size_t start = atomic_fetch_add(&b->next, CHUNK);
        if (start >= b->n)
            break;
        size_t end = start + CHUNK < b->n ? start + CHUNK : b->n;
        for (size_t i = start; i < end; i++) {
            item *it = &b->items[i];
            b->out[i] = (unsigned char)verify_one(&ts, it->key, it->sig, it->siglen, it->data,
                                                  it->datalen);
        }
    }
    state_free(&ts);
    return NULL;
}

static int
as_bytes(PyObject *o, const unsigned char **p, size_t *n)
{
    if (PyBytes_Check(o)) {
        *p = (const unsigned char *)PyBytes_AS_STRING(o);
        *n = (size_t)PyBytes_GET_SIZE(o);
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "signatures and signed data must be bytes");
    return -1;
}

/* --- pending batches --------------------------------------------------------
 *
 * A Pending holds a gathered batch and the native threads working on it. The
 * threads never need the GIL (they read bytes buffers the Pending keeps alive),
 * so a batch started with start_many() runs beside Python code in the calling
 * thread; result() lets the calling thread take the chunks still waiting, then
 * joins. verify_many() is start_many() + result(). */

typedef struct {
    PyObject_HEAD
    batch b;
    item *items;
    size_t *index;          /* items[j] is input position index[j] */
    unsigned char *packed;  /* 0/1 per item */
    Py_ssize_t n;           /* input length */
    PyObject *keys, *sigs, *data; /* PySequence_Fast copies: keep every buffer alive */
    pthread_t tids[MAX_THREADS];
    int started;
    int joined;
    PyObject *result;
} PendingObject;

static PyTypeObject PendingType;

static void
pending_join(PendingObject *self, int help)
{
    if (self->joined)
        return;
    Py_BEGIN_ALLOW_THREADS
    if (help)
        worker(&self->b); /* the calling thread takes the chunks still waiting */
    for (int t = 0; t < self->started; t++)
        pthread_join(self->tids[t], NULL);
    Py_END_ALLOW_THREADS
    self->joined = 1;
}

static void
Pending_dealloc(PendingObject *self)
{
    pending_join(self, 1);
    PyMem_Free(self->items);
    PyMem_Free(self->index);
    PyMem_Free(self->packed);
    Py_XDECREF(self->keys);
    Py_XDECREF(self->sigs);
    Py_XDECREF(self->data);
    Py_XDECREF(self->result);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Pending_result(PendingObject *self, PyObject *noargs)
{
    if (!self->result) {
        pending_join(self, 1);
        if (atomic_load(&self->b.failed))
            return PyErr_NoMemory();
        PyObject *r = PyBytes_FromStringAndSize(NULL, self->n);
        if (!r)
            return NULL;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(r);
        memset(out, 0, (size_t)self->n);
        for (size_t j = 0; j < self->b.n; j++)
            out[self->index[j]] = self->packed[j];
        self->result = r;
    }
    return Py_NewRef(self->result);
}

static PyMethodDef Pending_methods[] = {
    {"result", (PyCFunction)Pending_result, METH_NOARGS,
     "result() -> bytes: 1 where the signature verifies, 0 elsewhere. The calling "
     "thread helps with what is left (GIL released), then waits for the others."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PendingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cps_middleware._verify.Pending",
    .tp_doc = "A batch being verified by native threads (start_many); result() gives the verdicts.",
    .tp_basicsize = sizeof(PendingObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Pending_dealloc,
    .tp_methods = Pending_methods,
};

/* Gather the three sequences into a Pending (GIL held), start `threads` native
 * threads on it (0: none, the caller's result() does all the work). */
static PendingObject *
pending_start(PyObject *keys_o, PyObject *sigs_o, PyObject *data_o, int threads)
{
    PendingObject *self = PyObject_New(PendingObject, &PendingType);
    if (!self)
        return NULL;
    self->items = NULL;
    self->index = NULL;
    self->packed = NULL;
    self->keys = self->sigs = self->data = NULL;
    self->result = NULL;
    self->started = 0;
    self->joined = 1; /* nothing to join until threads are started */
    self->b.n = 0;
    atomic_init(&self->b.next, 0);
    atomic_init(&self->b.failed, 0);

    self->keys = PySequence_Fast(keys_o, "keys must be a sequence");
    if (self->keys)
        self->sigs = PySequence_Fast(sigs_o, "signatures must be a sequence");
    if (self->sigs)
        self->data = PySequence_Fast(data_o, "data must be a sequence");
    if (!self->data)
        goto fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(self->keys);
    if (PySequence_Fast_GET_SIZE(self->sigs) != n || PySequence_Fast_GET_SIZE(self->data) != n) {
        PyErr_SetString(PyExc_ValueError, "keys, signatures and data differ in length");
        goto fail;
    }
    self->n = n;
    self->items = PyMem_Calloc((size_t)n + 1, sizeof(item));
    self->index = PyMem_Calloc((size_t)n + 1, sizeof(size_t));
    self->packed = PyMem_Calloc((size_t)n + 1, 1);
    if (!self->items || !self->index || !self->packed) {
        PyErr_NoMemory();
        goto fail;
    }
    /* The sequences (held by PySequence_Fast) keep every bytes object alive, and
     * bytes never move, so the pointers stay valid while the Pending lives. */
    size_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PySequence_Fast_GET_ITEM(self->keys, i);
        if (k == Py_None)
            continue;
        if (!PyObject_TypeCheck(k, &KeyType)) {
            PyErr_SetString(PyExc_TypeError, "keys must hold _verify.Key objects or None");
            goto fail;
        }
        item *it = &self->items[m];
        it->key = (const KeyObject *)k;
        if (as_bytes(PySequence_Fast_GET_ITEM(self->sigs, i), &it->sig, &it->siglen) < 0 ||
            as_bytes(PySequence_Fast_GET_ITEM(self->data, i), &it->data, &it->datalen) < 0)
            goto fail;
        self->index[m++] = (size_t)i;
    }
    self->b.items = self->items;
    self->b.n = m;
    self->b.out = self->packed;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if ((size_t)threads > (m + CHUNK - 1) / CHUNK)
        threads = (int)((m + CHUNK - 1) / CHUNK);
    self->joined = 0;
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&self->tids[self->started], NULL, worker, &self->b) == 0)
            self->started++;
    }
    return self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* start_many(keys, signatures, data, threads=1) -> Pending: the batch is verified
 * by `threads` native threads from now on, beside the caller's Python code. */
static PyObject *
start_many(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"keys", "signatures", "data", "threads", NULL};
    PyObject *keys_o, *sigs_o, *data_o;
    int threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|i", kwlist, &keys_o, &sigs_o, &data_o,
                                     &threads))
        return NULL;
    return (PyObject *)pending_start(keys_o, sigs_o, data_o, threads < 0 ? 0 : threads);
}

/* verify_many(keys, signatures, data, threads=0) -> bytes of 0/1.
 * Three sequences of the same length; keys[i] is a Key or None (-> 0). The
 * calling thread works too: `threads` counts it. */
static PyObject *
verify_many(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"keys", "signatures", "data", "threads", NULL};
    PyObject *keys_o, *sigs_o, *data_o;
    int threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|i", kwlist, &keys_o, &sigs_o, &data_o,
                                     &threads))
        return NULL;
    PendingObject *p = pending_start(keys_o, sigs_o, data_o, (threads <= 1 ? 1 : threads) - 1);
    if (!p)
        return NULL;
    PyObject *r = Pending_result(p, NULL);
    Py_DECREF(p);
    return r;
}

static PyObject *
Key_verify(KeyObject *self, PyObject *args)
{
    Py_buffer sig, data;
    if (!PyArg_ParseTuple(args, "y*y*", &sig, &data))
        return NULL;
    thread_state ts = {0};
    int ok = 0, init;
    Py_BEGIN_ALLOW_THREADS
    init = state_init(&ts);
    if (init == 0)
        ok = verify_one(&ts, self, sig.buf, (size_t)sig.len, data.buf, (size_t)data.len);
    state_free(&ts);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&sig);
    PyBuffer_Release(&data);
    if (init != 0)
        return PyErr_NoMemory();
    return PyBool_FromLong(ok);
}

static PyObject *
Key_get_bits(KeyObject *self, void *closure)
{
    return PyLong_FromLong(self->bits);
}

static PyObject *
Key_get_scheme(KeyObject *self, void *closure)
{
    return Py_NewRef(self->name);
}

static PyMethodDef Key_methods[] = {
    {"verify", (PyCFunction)Key_verify, METH_VARARGS,
     "verify(signature, data) -> bool: one signature, GIL released."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Key_getset[] = {
    {"bits", (getter)Key_get_bits, NULL, "key size in bits", NULL},
    {"scheme", (getter)Key_get_scheme, NULL, "the signature scheme", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject KeyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cps_middleware._verify.Key",
    .tp_doc = "Key(spki, scheme): an issuer public key decoded once.\n\n"
              "scheme: 'rsa-pkcs1-sha256|384|512', 'rsa-pss-sha256:<salt>' (sha384, sha512), "
              "'ecdsa-sha256|384|512', 'ed25519', 'ed448'.",
    .tp_basicsize = sizeof(KeyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Key_new,
    .tp_dealloc = (destructor)Key_dealloc,
    .tp_repr = (reprfunc)Key_repr,
    .tp_methods = Key_methods,
    .tp_getset = Key_getset,
};

static PyObject *
openssl_version(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(OpenSSL_version(OPENSSL_VERSION));
}

static PyMethodDef module_methods[] = {
    {"verify_many", (PyCFunction)(void (*)(void))verify_many, METH_VARARGS | METH_KEYWORDS,
     "verify_many(keys, signatures, data, threads=0) -> bytes: 1 where the signature "
     "verifies, 0 elsewhere (None keys give 0). The GIL is released and the batch is "
     "spread over `threads` threads."},
    {"start_many", (PyCFunction)(void (*)(void))start_many, METH_VARARGS | METH_KEYWORDS,
     "start_many(keys, signatures, data, threads=1) -> Pending: the batch is verified by "
     "`threads` native threads (no GIL needed) while the caller goes on; "
     "Pending.result() helps with what is left and gives the bytes of verify_many."},
    {"openssl_version", openssl_version, METH_NOARGS, "The OpenSSL this module runs on."},
    {"parse_certificate", dercert_parse, METH_O,
     "parse_certificate(der) -> tuple | str: the facts _der.parse_certificate returns, "
     "or the reason the bytes are not a DER certificate it reads (dercert.c)."},
    {"check_name", dercert_check_name, METH_O,
     "check_name(name) -> None | str: None when the Name's RDNs, attribute OIDs and strings "
     "read, else the reason (dercert.c, as _der.check_name)."},
    {"set_der_tables", dercert_set_tables, METH_VARARGS,
     "set_der_tables(kinds, parsed): the extension tables of _der.py, once."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "cps_middleware._verify",
    "Batch signature verification in native code (GIL released, threads).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__verify(void)
{
    if (PyType_Ready(&KeyType) < 0 || PyType_Ready(&PendingType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Key", (PyObject *)&KeyType) < 0 ||
        PyModule_AddObjectRef(m, "Pending", (PyObject *)&PendingType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

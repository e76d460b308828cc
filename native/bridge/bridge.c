/*
 * cps_middleware._bridge — the OpenSSL 3 key bridge of the TLS layer.
 *
 * A minimal built-in OpenSSL provider ("cpsbridge": keymgmt + signature) is
 * registered in the default library context, the one the interpreter's _ssl
 * module uses. Its keys hold only the public part (taken from the
 * certificate) and a Python signer; every private-key operation is a digest
 * sign whose final step hashes on the host and calls
 *
 *     signer(digest_name, digest, padding, salt_length, mgf1_name) -> bytes
 *
 * with digest_name in {"sha1","sha224","sha256","sha384","sha512"}, padding
 * "pkcs1" / "pss" for RSA and None for ECDSA (DER signature expected), the
 * PSS salt length resolved to a number of bytes and the MGF1 digest name.
 *
 * The key is then installed into the SSL_CTX behind a standard
 * ssl.SSLContext, so every consumer of that context (urllib, requests,
 * httpx, aiohttp, asyncio) signs with it unchanged.
 *
 * Why each odd-looking piece is there (DESIGN.md, "TLS client authentication
 * with the card key"):
 *  - the signer's exception is kept per thread and handed back by
 *    take_error(), so the Python side re-raises it instead of a bare
 *    "EVP lib" SSLError;
 *  - the callback is bracketed with ERR_set_mark / ERR_pop_to_mark: a PKCS#11
 *    module linked to the same libcrypto (SoftHSM) may leave errors behind;
 *  - the public part only is imported and exported: refusing the private part
 *    keeps OpenSSL on this provider's signature code;
 *  - once the interpreter shuts down (shutdown()), no callback enters Python
 *    again and signer references are leaked rather than released without a
 *    live interpreter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define _GNU_SOURCE 1
#include <link.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define PROV_NAME "cpsbridge"
#define PROV_PROPS "provider=cpsbridge"
#define SIGNER_PARAM "cpsbridge-signer"
#define RSA_SIG_NAME "CPSBRIDGE-RSA-SIG"
#define EC_SIG_NAME "CPSBRIDGE-ECDSA-SIG"

enum { KT_RSA = 1, KT_EC = 2 };

#if PY_VERSION_HEX >= 0x030D0000
#define INTERPRETER_FINALIZING() Py_IsFinalizing()
#else
#define INTERPRETER_FINALIZING() _Py_IsFinalizing()
#endif

/* ------------------------------------------------------------------------ */
/* shared state                                                             */

static atomic_int g_shutdown = 0;
static atomic_long g_live_keys = 0;
static atomic_long g_signatures = 0;
static int g_provider_loaded = 0;
static OSSL_PROVIDER *g_provider = NULL;
static PyObject *g_sslcontext_type = NULL; /* _ssl._SSLContext */

/* Exception raised by the last failing signer call on this thread. */
static _Thread_local PyObject *t_error = NULL;

struct digest_entry {
    const char *py_name;  /* name given to the Python signer */
    const char *ossl_name;
    size_t size;
    EVP_MD *md;           /* fetched once */
};

static struct digest_entry g_digests[] = {
    {"sha1", "SHA1", 20, NULL},
    {"sha224", "SHA224", 28, NULL},
    {"sha256", "SHA256", 32, NULL},
    {"sha384", "SHA384", 48, NULL},
    {"sha512", "SHA512", 64, NULL},
};
#define N_DIGESTS ((int)(sizeof(g_digests) / sizeof(g_digests[0])))

static int
digest_index(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < N_DIGESTS; i++) {
        if (g_digests[i].md != NULL && EVP_MD_is_a(g_digests[i].md, name))
            return i;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* key data                                                                 */

typedef struct {
    int type;
    BIGNUM *n, *e;             /* RSA */
    char group[64];            /* EC */
    unsigned char *pub;        /* EC point, as in the certificate */
    size_t publen;
    int bits;
    PyObject *signer;          /* strong reference; NULL for a public-only key */
} BKey;

static void *
km_new_common(int type)
{
    BKey *k = OPENSSL_zalloc(sizeof(*k));
    if (k != NULL) {
        k->type = type;
        atomic_fetch_add(&g_live_keys, 1);
    }
    return k;
}

static void *km_rsa_new(void *provctx) { return km_new_common(KT_RSA); }
static void *km_ec_new(void *provctx) { return km_new_common(KT_EC); }

static void
drop_signer(PyObject *signer)
{
    if (signer == NULL)
        return;
    /* Without a live interpreter a reference cannot be released: leak it. */
    if (atomic_load(&g_shutdown) || !Py_IsInitialized() || INTERPRETER_FINALIZING())
        return;
    PyGILState_STATE st = PyGILState_Ensure();
    Py_DECREF(signer);
    PyGILState_Release(st);
}

static void
km_free(void *keydata)
{
    BKey *k = keydata;
    if (k == NULL)
        return;
    BN_free(k->n);
    BN_free(k->e);
    OPENSSL_free(k->pub);
    drop_signer(k->signer);
    OPENSSL_free(k);
    atomic_fetch_sub(&g_live_keys, 1);
}

static int
km_has(const void *keydata, int selection)
{
    const BKey *k = keydata;
    if (k == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
        if (k->type == KT_RSA && (k->n == NULL || k->e == NULL))
            return 0;
        if (k->type == KT_EC && k->pub == NULL)
            return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0
        && k->type == KT_EC && k->group[0] == '\0')
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && k->signer == NULL)
        return 0;
    return 1;
}

static int
km_match(const void *a, const void *b, int selection)
{
    const BKey *k1 = a, *k2 = b;
    if (k1->type != k2->type)
        return 0;
    if (k1->type == KT_RSA) {
        if (k1->n == NULL || k2->n == NULL || k1->e == NULL || k2->e == NULL)
            return 0;
        return BN_cmp(k1->n, k2->n) == 0 && BN_cmp(k1->e, k2->e) == 0;
    }
    if (strcmp(k1->group, k2->group) != 0)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0)
        return 1;
    return k1->pub != NULL && k2->pub != NULL && k1->publen == k2->publen
        && memcmp(k1->pub, k2->pub, k1->publen) == 0;
}

static int
ec_bits_for_group(const char *group)
{
    if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
        return 256;
    if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
        return 384;
    if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
        return 521;
    return 0;
}

static int
km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    BKey *k = keydata;
    const OSSL_PARAM *p;
    if (k == NULL)
        return 0;
    if (k->type == KT_RSA) {
        BIGNUM *n = NULL, *e = NULL;
        p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_N);
        if (p == NULL || !OSSL_PARAM_get_BN(p, &n))
            return 0;
        p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_E);
        if (p == NULL || !OSSL_PARAM_get_BN(p, &e)) {
            BN_free(n);
            return 0;
        }
        BN_free(k->n);
        BN_free(k->e);
        k->n = n;
        k->e = e;
        k->bits = BN_num_bits(n);
    } else {
        const char *group = NULL;
        const void *pub = NULL;
        size_t publen = 0;
        p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME);
        if (p == NULL || !OSSL_PARAM_get_utf8_string_ptr(p, &group)
            || strlen(group) >= sizeof(k->group))
            return 0;
        int bits = ec_bits_for_group(group);
        if (bits == 0)
            return 0;
        strcpy(k->group, group);
        k->bits = bits;
        p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PUB_KEY);
        if (p != NULL) {
            if (!OSSL_PARAM_get_octet_string_ptr(p, &pub, &publen) || publen == 0)
                return 0;
            unsigned char *copy = OPENSSL_memdup(pub, publen);
            if (copy == NULL)
                return 0;
            OPENSSL_free(k->pub);
            k->pub = copy;
            k->publen = publen;
        } else if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
            return 0;
        }
    }
    /* The signer comes only from this extension's own new_key(): a pointer
     * to a PyObject (borrowed; see below). */
    p = OSSL_PARAM_locate_const(params, SIGNER_PARAM);
    if (p != NULL) {
        const void *ptr = NULL;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &ptr, &len) || len != sizeof(PyObject *))
            return 0;
        PyObject *signer;
        memcpy(&signer, ptr, sizeof(signer));
        if (k->signer != NULL)
            return 0;
        /* new_key() calls EVP_PKEY_fromdata with the GIL held. The key takes its
         * own reference here, so that whatever path OpenSSL takes (keydata
         * never made, import failing before this point, key freed) every
         * reference taken is released by km_free and no other. */
        Py_INCREF(signer);
        k->signer = signer;
    }
    return 1;
}

static const OSSL_PARAM rsa_key_types[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_key_types[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *km_rsa_types(int selection) { return rsa_key_types; }
static const OSSL_PARAM *km_ec_types(int selection) { return ec_key_types; }

static int
km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    BKey *k = keydata;
    OSSL_PARAM_BLD *bld;
    OSSL_PARAM *params = NULL;
    int ok = 0;
    /* Only the public part exists here; a request for the private part alone
     * is refused, a key-pair request gets the public part. */
    if (k == NULL || (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY
                                   | OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS)) == 0)
        return 0;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL)
        return 0;
    if (k->type == KT_RSA) {
        if (k->n == NULL || k->e == NULL
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, k->n)
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, k->e))
            goto end;
    } else {
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, k->group, 0))
            goto end;
        if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && k->pub != NULL
            && !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, k->pub,
                                                 k->publen))
            goto end;
    }
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto end;
    ok = cb(params, cbarg);
end:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return ok;
}

static size_t
key_max_size(const BKey *k)
{
    if (k->type == KT_RSA)
        return (size_t)((k->bits + 7) / 8);
    /* DER ECDSA-Sig-Value: SEQUENCE of two INTEGERs of up to (bytes+1) each */
    size_t bytes = (size_t)((k->bits + 7) / 8);
    return 3 + 2 * (3 + bytes + 1);
}

static int
key_security_bits(const BKey *k)
{
    if (k->type == KT_EC)
        return k->bits / 2;
    if (k->bits >= 15360) return 256;
    if (k->bits >= 7680) return 192;
    if (k->bits >= 3072) return 128;
    if (k->bits >= 2048) return 112;
    if (k->bits >= 1024) return 80;
    return 0;
}

static int
km_get_params(void *keydata, OSSL_PARAM params[])
{
    BKey *k = keydata;
    OSSL_PARAM *p;
    if (k == NULL)
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL
        && !OSSL_PARAM_set_int(p, k->bits))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) != NULL
        && !OSSL_PARAM_set_int(p, key_security_bits(k)))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL
        && !OSSL_PARAM_set_int(p, (int)key_max_size(k)))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST)) != NULL
        && !OSSL_PARAM_set_utf8_string(p, "SHA256"))
        return 0;
    if (k->type == KT_RSA) {
        if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_N)) != NULL
            && (k->n == NULL || !OSSL_PARAM_set_BN(p, k->n)))
            return 0;
        if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_E)) != NULL
            && (k->e == NULL || !OSSL_PARAM_set_BN(p, k->e)))
            return 0;
    } else {
        if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_GROUP_NAME)) != NULL
            && !OSSL_PARAM_set_utf8_string(p, k->group))
            return 0;
        if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT)) != NULL
            && !OSSL_PARAM_set_utf8_string(
                p, (k->pub != NULL && k->pub[0] == 0x04) ? "uncompressed" : "compressed"))
            return 0;
        if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY)) != NULL
            && (k->pub == NULL || !OSSL_PARAM_set_octet_string(p, k->pub, k->publen)))
            return 0;
        if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PUB_KEY)) != NULL
            && (k->pub == NULL || !OSSL_PARAM_set_octet_string(p, k->pub, k->publen)))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM rsa_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM *km_rsa_gettable(void *provctx) { return rsa_gettable; }
static const OSSL_PARAM *km_ec_gettable(void *provctx) { return ec_gettable; }

static const char *
km_rsa_opname(int op)
{
    return op == OSSL_OP_SIGNATURE ? RSA_SIG_NAME : NULL;
}
static const char *
km_ec_opname(int op)
{
    return op == OSSL_OP_SIGNATURE ? EC_SIG_NAME : NULL;
}

#define FN(id, f) {id, (void (*)(void))(f)}

static const OSSL_DISPATCH rsa_keymgmt_fns[] = {
    FN(OSSL_FUNC_KEYMGMT_NEW, km_rsa_new),
    FN(OSSL_FUNC_KEYMGMT_FREE, km_free),
    FN(OSSL_FUNC_KEYMGMT_HAS, km_has),
    FN(OSSL_FUNC_KEYMGMT_MATCH, km_match),
    FN(OSSL_FUNC_KEYMGMT_IMPORT, km_import),
    FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, km_rsa_types),
    FN(OSSL_FUNC_KEYMGMT_EXPORT, km_export),
    FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, km_rsa_types),
    FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, km_get_params),
    FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, km_rsa_gettable),
    FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, km_rsa_opname),
    {0, NULL},
};
static const OSSL_DISPATCH ec_keymgmt_fns[] = {
    FN(OSSL_FUNC_KEYMGMT_NEW, km_ec_new),
    FN(OSSL_FUNC_KEYMGMT_FREE, km_free),
    FN(OSSL_FUNC_KEYMGMT_HAS, km_has),
    FN(OSSL_FUNC_KEYMGMT_MATCH, km_match),
    FN(OSSL_FUNC_KEYMGMT_IMPORT, km_import),
    FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, km_ec_types),
    FN(OSSL_FUNC_KEYMGMT_EXPORT, km_export),
    FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, km_ec_types),
    FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, km_get_params),
    FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, km_ec_gettable),
    FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, km_ec_opname),
    {0, NULL},
};

/* ------------------------------------------------------------------------ */
/* signature                                                                */

#define SALT_DIGEST (-1)
#define SALT_MAX (-3)

typedef struct {
    BKey *key;
    int md;          /* digest index, -1 = none yet */
    int mgf1;        /* MGF1 digest index, -1 = same as md */
    int pad;         /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen;     /* >= 0, SALT_DIGEST or SALT_MAX */
    EVP_MD_CTX *mdctx;
} BSig;

static void *
sig_newctx(void *provctx, const char *propq)
{
    BSig *s = OPENSSL_zalloc(sizeof(*s));
    if (s != NULL) {
        s->md = -1;
        s->mgf1 = -1;
        s->pad = RSA_PKCS1_PADDING;
        s->saltlen = SALT_DIGEST;
    }
    return s;
}

static void
sig_freectx(void *ctx)
{
    BSig *s = ctx;
    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->mdctx);
    OPENSSL_free(s);
}

static void *
sig_dupctx(void *ctx)
{
    BSig *s = ctx, *d = OPENSSL_memdup(s, sizeof(*s));
    if (d == NULL)
        return NULL;
    d->mdctx = NULL;
    if (s->mdctx != NULL) {
        if ((d->mdctx = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(d->mdctx, s->mdctx)) {
            sig_freectx(d);
            return NULL;
        }
    }
    return d;
}

/* A name that a string parameter may hold, and the value it stands for. */
typedef struct {
    const char *name;
    int value;
} NamedInt;

static const NamedInt pad_names[] = {
    {OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
    {OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING},
    {NULL, 0},
};

static const NamedInt salt_names[] = {
    {OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST, SALT_DIGEST},
    {OSSL_PKEY_RSA_PSS_SALT_LEN_MAX, SALT_MAX},
    {OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO, SALT_MAX},
    {NULL, 0},
};

/* OpenSSL passes the padding and the salt length either as a UTF-8 string or as
 * an int. A string found in *names* gives its value; any other string is read
 * as a decimal number in [0, max_number] (max_number < 0: no number allowed).
 * An int is handed back as it is, with *from_int* set, for the caller to check. */
static int
get_name_or_int(const OSSL_PARAM *p, const NamedInt *names, long max_number, int *out,
                int *from_int)
{
    *from_int = p->data_type != OSSL_PARAM_UTF8_STRING;
    if (*from_int)
        return OSSL_PARAM_get_int(p, out);
    const char *v = p->data;
    if (v == NULL)
        return 0;
    for (const NamedInt *n = names; n->name != NULL; n++) {
        if (strcmp(v, n->name) == 0) {
            *out = n->value;
            return 1;
        }
    }
    char *end = NULL;
    long l = strtol(v, &end, 10);
    if (end == v || *end != '\0' || l < 0 || l > max_number)
        return 0;
    *out = (int)l;
    return 1;
}

static int
set_pad(BSig *s, const OSSL_PARAM *p)
{
    int pad = 0, from_int;
    if (!get_name_or_int(p, pad_names, -1, &pad, &from_int))
        return 0;
    if (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING)
        return 0;  /* raw RSA, X9.31 ... are never offered */
    s->pad = pad;
    return 1;
}

static int
set_saltlen(BSig *s, const OSSL_PARAM *p)
{
    int salt = 0, from_int;
    if (!get_name_or_int(p, salt_names, 1024, &salt, &from_int))
        return 0;
    if (from_int) {
        if (salt == RSA_PSS_SALTLEN_DIGEST)
            salt = SALT_DIGEST;
        else if (salt == RSA_PSS_SALTLEN_MAX || salt == RSA_PSS_SALTLEN_AUTO)
            salt = SALT_MAX;
        else if (salt < 0)
            return 0;
    }
    s->saltlen = salt;
    return 1;
}

static int
sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    BSig *s = ctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL
        && !set_pad(s, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL
        && !set_saltlen(s, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const char *name = NULL;
        int i;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || (i = digest_index(name)) < 0)
            return 0;
        s->mgf1 = i;
    }
    return 1;
}

static const OSSL_PARAM rsa_sig_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_sig_settable[] = {OSSL_PARAM_END};

static const OSSL_PARAM *
sig_rsa_settable(void *ctx, void *provctx)
{
    return rsa_sig_settable;
}
static const OSSL_PARAM *
sig_ec_settable(void *ctx, void *provctx)
{
    return ec_sig_settable;
}

static int
sig_digest_sign_init(void *ctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    BSig *s = ctx;
    BKey *k = provkey;
    int md;
    if (k == NULL || k->signer == NULL)
        return 0;  /* public-only key */
    if ((md = digest_index(mdname != NULL ? mdname : "SHA256")) < 0)
        return 0;
    s->key = k;
    s->md = md;
    s->mgf1 = -1;
    s->pad = RSA_PKCS1_PADDING;
    s->saltlen = SALT_DIGEST;
    if (s->mdctx == NULL && (s->mdctx = EVP_MD_CTX_new()) == NULL)
        return 0;
    if (!EVP_DigestInit_ex2(s->mdctx, g_digests[md].md, NULL))
        return 0;
    return sig_set_ctx_params(s, params);
}

static int
sig_digest_sign_update(void *ctx, const unsigned char *data, size_t len)
{
    BSig *s = ctx;
    return s->mdctx != NULL && EVP_DigestUpdate(s->mdctx, data, len);
}

/* The C side of the Python call: hashing is done, this asks the signer. */
static int
call_signer(BSig *s, const unsigned char *digest, size_t dlen, unsigned char *sig,
            size_t *siglen, size_t sigsize)
{
    BKey *k = s->key;
    size_t maxsize = key_max_size(k);
    int ok = 0;

    if (atomic_load(&g_shutdown) || !Py_IsInitialized() || INTERPRETER_FINALIZING()) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "cpsbridge: interpreter shutting down");
        return 0;
    }
    const char *padding = NULL;
    int salt = 0;
    int mgf1 = s->mgf1 >= 0 ? s->mgf1 : s->md;
    if (k->type == KT_RSA) {
        if (s->pad == RSA_PKCS1_PSS_PADDING) {
            size_t emlen = (size_t)((k->bits - 1 + 7) / 8);
            size_t hlen = g_digests[s->md].size;
            padding = "pss";
            /* emlen - hlen - 2 below must not wrap (a key too small for the digest) */
            if (emlen < hlen + 2) {
                ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                               "cpsbridge: key too small for PSS with this digest");
                return 0;
            }
            if (s->saltlen == SALT_DIGEST)
                salt = (int)hlen;
            else if (s->saltlen == SALT_MAX)
                salt = (int)(emlen - hlen - 2);
            else
                salt = s->saltlen;
            if (emlen < hlen + (size_t)salt + 2) {
                ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                               "cpsbridge: PSS salt too long for the key");
                return 0;
            }
        } else {
            padding = "pkcs1";
        }
    }

    PyGILState_STATE gst = PyGILState_Ensure();
    ERR_set_mark();
    PyObject *res = PyObject_CallFunction(
        k->signer, "sy#ziz", g_digests[s->md].py_name, (const char *)digest, (Py_ssize_t)dlen,
        padding, salt, padding != NULL && strcmp(padding, "pss") == 0
                           ? g_digests[mgf1].py_name : NULL);
    const char *why = NULL;
    if (res == NULL) {
        why = "the signer raised an exception";
    } else if (!PyBytes_Check(res)) {
        why = "the signer did not return bytes";
        PyErr_SetString(PyExc_TypeError, "bridge signer must return bytes");
    } else {
        Py_ssize_t n = PyBytes_GET_SIZE(res);
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(res);
        if (n <= 0 || (size_t)n > maxsize || (size_t)n > sigsize) {
            why = "the signer returned a signature of the wrong size";
            PyErr_Format(PyExc_ValueError, "signature of %zd bytes, expected at most %zu",
                         n, maxsize < sigsize ? maxsize : sigsize);
        } else if (k->type == KT_RSA && sigsize < maxsize) {
            /* an RSA signature is written at full modulus size (zero-padded
             * below): the caller's buffer must hold all of it, whatever the
             * signer returned */
            why = "the signature buffer is smaller than the key size";
            PyErr_Format(PyExc_ValueError, "signature buffer of %zu bytes, the key needs %zu",
                         sigsize, maxsize);
        } else if (k->type == KT_RSA) {
            /* some tokens strip leading zero bytes: put them back */
            memset(sig, 0, maxsize - (size_t)n);
            memcpy(sig + (maxsize - (size_t)n), data, (size_t)n);
            *siglen = maxsize;
            ok = 1;
        } else {
            memcpy(sig, data, (size_t)n);
            *siglen = (size_t)n;
            ok = 1;
        }
    }
    Py_XDECREF(res);
    if (!ok) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        Py_XSETREF(t_error, value);
    } else {
        atomic_fetch_add(&g_signatures, 1);
    }
    ERR_pop_to_mark();  /* whatever the signer's PKCS#11 module left behind */
    PyGILState_Release(gst);
    if (!ok)
        ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "cpsbridge: %s", why);
    return ok;
}

static int
sig_digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    BSig *s = ctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (s->key == NULL || s->mdctx == NULL)
        return 0;
    if (sig == NULL) {
        *siglen = key_max_size(s->key);
        return 1;
    }
    if (!EVP_DigestFinal_ex(s->mdctx, digest, &dlen))
        return 0;
    return call_signer(s, digest, dlen, sig, siglen, sigsize);
}

static int
sig_digest_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                const unsigned char *tbs, size_t tbslen)
{
    BSig *s = ctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (s->key == NULL)
        return 0;
    if (sig == NULL) {
        *siglen = key_max_size(s->key);
        return 1;
    }
    if (!EVP_Digest(tbs, tbslen, digest, &dlen, g_digests[s->md].md, NULL))
        return 0;
    return call_signer(s, digest, dlen, sig, siglen, sigsize);
}

static const OSSL_DISPATCH rsa_sig_fns[] = {
    FN(OSSL_FUNC_SIGNATURE_NEWCTX, sig_newctx),
    FN(OSSL_FUNC_SIGNATURE_FREECTX, sig_freectx),
    FN(OSSL_FUNC_SIGNATURE_DUPCTX, sig_dupctx),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, sig_digest_sign_init),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, sig_digest_sign_update),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, sig_digest_sign_final),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN, sig_digest_sign),
    FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, sig_set_ctx_params),
    FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, sig_rsa_settable),
    {0, NULL},
};
static const OSSL_DISPATCH ec_sig_fns[] = {
    FN(OSSL_FUNC_SIGNATURE_NEWCTX, sig_newctx),
    FN(OSSL_FUNC_SIGNATURE_FREECTX, sig_freectx),
    FN(OSSL_FUNC_SIGNATURE_DUPCTX, sig_dupctx),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, sig_digest_sign_init),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, sig_digest_sign_update),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, sig_digest_sign_final),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN, sig_digest_sign),
    FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, sig_set_ctx_params),
    FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, sig_ec_settable),
    {0, NULL},
};

/* ------------------------------------------------------------------------ */
/* provider                                                                 */

static const OSSL_ALGORITHM keymgmt_algs[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", PROV_PROPS, rsa_keymgmt_fns,
     "RSA key whose private operations call back into Python"},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", PROV_PROPS, ec_keymgmt_fns,
     "EC key whose private operations call back into Python"},
    {NULL, NULL, NULL, NULL},
};
static const OSSL_ALGORITHM signature_algs[] = {
    {RSA_SIG_NAME, PROV_PROPS, rsa_sig_fns, "RSA signature through a Python signer"},
    {EC_SIG_NAME, PROV_PROPS, ec_sig_fns, "ECDSA signature through a Python signer"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *
prov_query(void *provctx, int operation_id, int *no_cache)
{
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return keymgmt_algs;
    case OSSL_OP_SIGNATURE:
        return signature_algs;
    }
    return NULL;
}

static const OSSL_DISPATCH prov_fns[] = {
    FN(OSSL_FUNC_PROVIDER_QUERY_OPERATION, prov_query),
    {0, NULL},
};

static int
prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
          const OSSL_DISPATCH **out, void **provctx)
{
    *out = prov_fns;
    *provctx = (void *)handle;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Python functions                                                         */

static PyObject *BridgeError;  /* _bridge.Error(RuntimeError) */

static PyObject *
set_ossl_error(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    PyErr_Format(BridgeError, "%s%s%s", what, buf[0] ? ": " : "", buf);
    return NULL;
}

/*
 * OpenSSL 3.0's method query cache matches an un-qualified lookup (no
 * provider) with an entry cached for one provider. When the first fetch of
 * "EC" / "RSA" key management after a cache flush is OpenSSL's own
 * provider-specific fetch for our signature (EVP_DigestSignInit), later
 * generic fetches get this provider's key management: libssl then drops the
 * NIST curves from new contexts' supported groups (TLS 1.2 with an ECDSA
 * server fails with "no shared cipher"). Fetching the generic entries right
 * after loading keeps them in the cache. A later cache flush (over 500
 * cached queries, or another provider loaded) can expose the problem again:
 * generic_keymgmt_provider() lets tests and diagnostics check it.
 */
static void
prime_generic_fetches(void)
{
    static const char *names[] = {"RSA", "EC"};
    ERR_set_mark();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(NULL, names[i], NULL);
        EVP_KEYMGMT_free(km);
    }
    ERR_pop_to_mark();
}

/* Name of the provider a generic (un-qualified) fetch of key management *name* gives. */
static PyObject *
py_generic_keymgmt_provider(PyObject *self, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(NULL, name, NULL);
    if (km == NULL) {
        ERR_clear_error();
        Py_RETURN_NONE;
    }
    PyObject *r = PyUnicode_FromString(OSSL_PROVIDER_get0_name(EVP_KEYMGMT_get0_provider(km)));
    EVP_KEYMGMT_free(km);
    return r;
}

static int
ensure_provider(void)
{
    if (g_provider_loaded)
        return 1;
    /* Load the default provider (and the algorithms libssl will ask for)
     * before ours, so that un-qualified fetches keep finding the default
     * implementations first. */
    for (int i = 0; i < N_DIGESTS; i++) {
        if (g_digests[i].md == NULL
            && (g_digests[i].md = EVP_MD_fetch(NULL, g_digests[i].ossl_name, NULL)) == NULL)
            return set_ossl_error("cannot fetch digest") != NULL;
    }
    const char *names[] = {"RSA", "EC", "RSA-PSS"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(NULL, names[i], NULL);
        EVP_KEYMGMT_free(km);
        EVP_SIGNATURE *sg = EVP_SIGNATURE_fetch(NULL, i == 1 ? "ECDSA" : "RSA", NULL);
        EVP_SIGNATURE_free(sg);
    }
    ERR_clear_error();
    if (!OSSL_PROVIDER_add_builtin(NULL, PROV_NAME, prov_init))
        return set_ossl_error("OSSL_PROVIDER_add_builtin failed") != NULL;
    if ((g_provider = OSSL_PROVIDER_load(NULL, PROV_NAME)) == NULL)
        return set_ossl_error("OSSL_PROVIDER_load failed") != NULL;
    g_provider_loaded = 1;
    prime_generic_fetches();
    return 1;
}

static void
key_capsule_free(PyObject *cap)
{
    EVP_PKEY *pkey = PyCapsule_GetPointer(cap, "cpsbridge.key");
    EVP_PKEY_free(pkey);
}

static EVP_PKEY *
get_key(PyObject *cap)
{
    return PyCapsule_GetPointer(cap, "cpsbridge.key");
}

/* new_key(certificate_der, signer) -> key capsule */
static PyObject *
py_new_key(PyObject *self, PyObject *args)
{
    const unsigned char *der;
    Py_ssize_t derlen;
    PyObject *signer;
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char *pub = NULL;
    PyObject *result = NULL;
    const char *type;
    char group[64]; /* the param builder keeps a pointer to it until to_param */

    if (!PyArg_ParseTuple(args, "y#O:new_key", &der, &derlen, &signer))
        return NULL;
    if (!PyCallable_Check(signer))
        return PyErr_Format(PyExc_TypeError, "signer must be callable");
    if (!ensure_provider())
        return NULL;
    const unsigned char *p = der;
    if ((x = d2i_X509(NULL, &p, derlen)) == NULL)
        return set_ossl_error("cannot parse the certificate");
    EVP_PKEY *cert_key = X509_get0_pubkey(x);
    if (cert_key == NULL) {
        set_ossl_error("cannot read the certificate's public key");
        goto end;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL)
        goto oom;
    if (EVP_PKEY_is_a(cert_key, "RSA")) {
        type = "RSA";
        if (!EVP_PKEY_get_bn_param(cert_key, OSSL_PKEY_PARAM_RSA_N, &n)
            || !EVP_PKEY_get_bn_param(cert_key, OSSL_PKEY_PARAM_RSA_E, &e)
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
            set_ossl_error("cannot read the RSA public key");
            goto end;
        }
    } else if (EVP_PKEY_is_a(cert_key, "EC")) {
        size_t publen = 0;
        type = "EC";
        if (!EVP_PKEY_get_utf8_string_param(cert_key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof(group), NULL)
            || ec_bits_for_group(group) == 0) {
            PyErr_SetString(BridgeError, "unsupported EC curve (P-256, P-384, P-521 only)");
            goto end;
        }
        if (!EVP_PKEY_get_octet_string_param(cert_key, OSSL_PKEY_PARAM_PUB_KEY, NULL, 0,
                                             &publen)
            || (pub = OPENSSL_malloc(publen)) == NULL
            || !EVP_PKEY_get_octet_string_param(cert_key, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                publen, &publen)
            || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0)
            || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen)) {
            set_ossl_error("cannot read the EC public key");
            goto end;
        }
    } else {
        PyErr_SetString(BridgeError, "the certificate's key is neither RSA nor EC");
        goto end;
    }
    PyObject *ref = signer;
    if (!OSSL_PARAM_BLD_push_octet_string(bld, SIGNER_PARAM, &ref, sizeof(ref))
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto oom;
    if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, type, PROV_PROPS)) == NULL
        || EVP_PKEY_fromdata_init(pctx) <= 0) {
        set_ossl_error("cannot use the bridge provider");
        goto end;
    }
    /* km_import takes the key's reference to the signer */
    if (EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0) {
        /* The keydata, if any, was freed with its reference; nothing else to undo. */
        pkey = NULL;
        set_ossl_error("cannot build the bridge key");
        goto end;
    }
    result = PyCapsule_New(pkey, "cpsbridge.key", key_capsule_free);
    if (result == NULL)
        EVP_PKEY_free(pkey);
    goto end;
oom:
    PyErr_NoMemory();
end:
    ERR_clear_error();
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    BN_free(n);
    BN_free(e);
    OPENSSL_free(pub);
    X509_free(x);
    return result;
}

/* The SSL_CTX* behind an ssl.SSLContext: the first field after PyObject_HEAD
 * of _ssl._SSLContext, used only after the type check and an options
 * cross-check. */
typedef struct {
    PyObject_HEAD
    SSL_CTX *ctx;
} PySSLContextHead;

static SSL_CTX *
get_ssl_ctx(PyObject *obj)
{
    if (g_sslcontext_type == NULL
        || !PyObject_TypeCheck(obj, (PyTypeObject *)g_sslcontext_type)) {
        PyErr_SetString(PyExc_TypeError, "expected an ssl.SSLContext");
        return NULL;
    }
    SSL_CTX *ctx = ((PySSLContextHead *)obj)->ctx;
    if (ctx == NULL) {
        PyErr_SetString(BridgeError, "SSLContext without SSL_CTX");
        return NULL;
    }
    PyObject *opts = PyObject_GetAttrString(obj, "options");
    if (opts == NULL)
        return NULL;
    unsigned long long py_opts = PyLong_AsUnsignedLongLong(opts);
    Py_DECREF(opts);
    if (PyErr_Occurred())
        return NULL;
    int ok = (uint64_t)py_opts == (uint64_t)SSL_CTX_get_options(ctx);
    /* A second, independent cross-check: flip an option through Python and
     * watch it change in the SSL_CTX we hold. */
    if (ok) {
        uint64_t before = SSL_CTX_get_options(ctx);
        PyObject *v = PyLong_FromUnsignedLongLong(py_opts ^ SSL_OP_NO_TICKET);
        ok = v != NULL && PyObject_SetAttrString(obj, "options", v) == 0;
        Py_XDECREF(v);
        if (ok) {
            ok = (SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) != (before & SSL_OP_NO_TICKET);
            /* restore (setting options can only add in some versions: clear) */
            if (before & SSL_OP_NO_TICKET)
                SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            else
                SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
        }
        if (PyErr_Occurred())
            PyErr_Clear();
    }
    if (!ok) {
        PyErr_SetString(BridgeError,
                        "the ssl module's SSLContext layout or OpenSSL differs from this "
                        "extension's; refusing to touch it");
        return NULL;
    }
    return ctx;
}

/* install(sslcontext, key, certificate_der, chain_ders, client_sigalgs or None) */
static PyObject *
py_install(PyObject *self, PyObject *args)
{
    PyObject *pyctx, *cap, *chain;
    const unsigned char *der;
    Py_ssize_t derlen;
    const char *sigalgs = NULL;
    if (!PyArg_ParseTuple(args, "OOy#O|z:install", &pyctx, &cap, &der, &derlen, &chain,
                          &sigalgs))
        return NULL;
    EVP_PKEY *pkey = get_key(cap);
    if (pkey == NULL)
        return NULL;
    SSL_CTX *ctx = get_ssl_ctx(pyctx);
    if (ctx == NULL)
        return NULL;
    PyObject *seq = PySequence_Fast(chain, "chain must be a sequence of DER bytes");
    if (seq == NULL)
        return NULL;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, derlen);
    if (x == NULL) {
        Py_DECREF(seq);
        return set_ossl_error("cannot parse the certificate");
    }
    ERR_clear_error();
    int ok = SSL_CTX_use_certificate(ctx, x) == 1;
    X509_free(x);
    if (!ok) {
        Py_DECREF(seq);
        return set_ossl_error("SSL_CTX_use_certificate failed");
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        Py_DECREF(seq);
        return set_ossl_error("the key does not match the certificate");
    }
    SSL_CTX_clear_chain_certs(ctx);
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        char *cd;
        Py_ssize_t cl;
        if (PyBytes_AsStringAndSize(item, &cd, &cl) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        p = (const unsigned char *)cd;
        X509 *c = d2i_X509(NULL, &p, cl);
        if (c == NULL || !SSL_CTX_add0_chain_cert(ctx, c)) {
            X509_free(c);
            Py_DECREF(seq);
            return set_ossl_error("cannot add a chain certificate");
        }
    }
    Py_DECREF(seq);
    if (sigalgs != NULL && SSL_CTX_set1_client_sigalgs_list(ctx, sigalgs) != 1)
        return set_ossl_error("SSL_CTX_set1_client_sigalgs_list failed");
    ERR_clear_error();
    Py_RETURN_NONE;
}

/* digest_sign(key, digest_name, data, padding, salt_length) -> signature
 * padding: "pkcs1" / "pss" / None; salt_length: -1 = digest length.
 * The same EVP path libssl takes, without TLS: for tests and benchmarks. */
static PyObject *
py_digest_sign(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *mdname, *padding = NULL;
    const unsigned char *data;
    Py_ssize_t dlen;
    int salt = -1;
    if (!PyArg_ParseTuple(args, "Osy#|zi:digest_sign", &cap, &mdname, &data, &dlen, &padding,
                          &salt))
        return NULL;
    EVP_PKEY *pkey = get_key(cap);
    if (pkey == NULL)
        return NULL;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    PyObject *result = NULL;
    int ok;
    Py_XSETREF(t_error, NULL);
    Py_BEGIN_ALLOW_THREADS
    ok = mctx != NULL && EVP_DigestSignInit_ex(mctx, &pctx, mdname, NULL, NULL, pkey, NULL) > 0;
    if (ok && padding != NULL && strcmp(padding, "pss") == 0)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) > 0;
    else if (ok && padding != NULL && strcmp(padding, "pkcs1") == 0)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    ok = ok && EVP_DigestSign(mctx, NULL, &siglen, data, (size_t)dlen) > 0
        && (sig = OPENSSL_malloc(siglen)) != NULL
        && EVP_DigestSign(mctx, sig, &siglen, data, (size_t)dlen) > 0;
    Py_END_ALLOW_THREADS
    if (ok) {
        result = PyBytes_FromStringAndSize((const char *)sig, (Py_ssize_t)siglen);
        ERR_clear_error();
    } else if (t_error != NULL) {
        ERR_clear_error();
        PyObject *err = t_error;
        t_error = NULL;
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    } else {
        set_ossl_error("digest sign failed");
    }
    OPENSSL_free(sig);
    EVP_MD_CTX_free(mctx);
    return result;
}

static PyObject *
py_take_error(PyObject *self, PyObject *noargs)
{
    PyObject *err = t_error;
    t_error = NULL;
    if (err == NULL)
        Py_RETURN_NONE;
    return err;
}

static PyObject *
py_shutdown(PyObject *self, PyObject *noargs)
{
    atomic_store(&g_shutdown, 1);
    Py_RETURN_NONE;
}

static PyObject *
py_stats(PyObject *self, PyObject *noargs)
{
    return Py_BuildValue("{s:l,s:l,s:i}", "live_keys", atomic_load(&g_live_keys),
                         "signatures", atomic_load(&g_signatures),
                         "provider_loaded", g_provider_loaded);
}

static PyObject *
py_error_queue_empty(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(ERR_peek_error() == 0);
}

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

/* Paths gathered under dl_iterate_phdr, which holds the dynamic linker's lock:
 * no Python call may run there (an allocation can start the garbage collector,
 * whose finalizers may import or load a library: dlopen would then wait on the
 * lock this thread holds). */
#define MAX_OPENSSL_LIBS 16
typedef struct {
    int n;
    int overflow;
    char *names[MAX_OPENSSL_LIBS];
} LibList;

static int
collect_lib(struct dl_phdr_info *info, size_t size, void *data)
{
    LibList *libs = data;
    const char *name = info->dlpi_name;
    if (name == NULL || name[0] == '\0')
        return 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "libssl.so", 9) == 0 || strncmp(base, "libcrypto.so", 12) == 0) {
        if (libs->n >= MAX_OPENSSL_LIBS || (libs->names[libs->n] = strdup(name)) == NULL) {
            libs->overflow = 1;
            return 1;
        }
        libs->n++;
    }
    return 0;
}

/* Paths of every libssl / libcrypto shared object loaded in the process. */
static PyObject *
py_loaded_openssl(PyObject *self, PyObject *noargs)
{
    LibList libs = {0, 0, {NULL}};
    PyObject *list = NULL;
    dl_iterate_phdr(collect_lib, &libs);
    if (libs.overflow) {
        PyErr_SetString(BridgeError, "too many libssl/libcrypto objects loaded, or out of memory");
        goto end;
    }
    if ((list = PyList_New(0)) == NULL)
        goto end;
    for (int i = 0; i < libs.n; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(libs.names[i]);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_CLEAR(list);
            goto end;
        }
        Py_DECREF(s);
    }
end:
    for (int i = 0; i < libs.n; i++)
        free(libs.names[i]);
    return list;
}

static PyObject *
py_error_queue_dump(PyObject *self, PyObject *noargs)
{
    PyObject *list = PyList_New(0);
    unsigned long e;
    const char *file, *func, *data;
    int line, flags;
    if (list == NULL)
        return NULL;
    /* peek only: the queue is not modified */
    for (int i = 0; (e = ERR_peek_error_all(&file, &line, &func, &data, &flags)) != 0 && i < 1; i++) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        PyObject *s = PyUnicode_FromString(buf);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

static PyMethodDef bridge_methods[] = {
    {"openssl_version_number", openssl_version_number, METH_NOARGS,
     "OPENSSL_VERSION_NUMBER of the libcrypto this extension runs with."},
    {"openssl_version", openssl_version, METH_NOARGS,
     "Version text of the libcrypto this extension runs with."},
    {"loaded_openssl", py_loaded_openssl, METH_NOARGS,
     "Paths of the libssl/libcrypto shared objects loaded in this process."},
    {"new_key", py_new_key, METH_VARARGS,
     "new_key(certificate_der, signer) -> key: a bridge key for the certificate's public key."},
    {"install", py_install, METH_VARARGS,
     "install(sslcontext, key, certificate_der, chain_ders, client_sigalgs=None)."},
    {"digest_sign", py_digest_sign, METH_VARARGS,
     "digest_sign(key, digest, data, padding=None, salt_length=-1) -> signature."},
    {"take_error", py_take_error, METH_NOARGS,
     "The exception of this thread's last failing signer call (cleared), or None."},
    {"shutdown", py_shutdown, METH_NOARGS,
     "Stop calling into Python (interpreter exit)."},
    {"stats", py_stats, METH_NOARGS, "Counters: live keys, signatures made."},
    {"generic_keymgmt_provider", py_generic_keymgmt_provider, METH_O,
     "Provider an un-qualified fetch of this key management name gives."},
    {"error_queue_empty", py_error_queue_empty, METH_NOARGS,
     "True when this thread's OpenSSL error queue is empty."},
    {"error_queue_peek", py_error_queue_dump, METH_NOARGS,
     "The first error of this thread's OpenSSL error queue (list of 0 or 1 text)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bridge_module = {
    PyModuleDef_HEAD_INIT, "cps_middleware._bridge",
    "Native OpenSSL 3 key bridge of cps-middleware.", -1, bridge_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__bridge(void)
{
    PyObject *m = PyModule_Create(&bridge_module);
    if (m == NULL)
        return NULL;
    BridgeError = PyErr_NewException("cps_middleware._bridge.Error", PyExc_RuntimeError, NULL);
    if (BridgeError == NULL || PyModule_AddObjectRef(m, "Error", BridgeError) < 0)
        goto fail;
    PyObject *ssl_mod = PyImport_ImportModule("_ssl");
    if (ssl_mod == NULL)
        goto fail;
    g_sslcontext_type = PyObject_GetAttrString(ssl_mod, "_SSLContext");
    Py_DECREF(ssl_mod);
    if (g_sslcontext_type == NULL || !PyType_Check(g_sslcontext_type))
        goto fail;
    if (PyModule_AddStringConstant(m, "PROVIDER_NAME", PROV_NAME) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

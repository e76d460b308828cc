/*
 * cps_middleware._verify.parse_certificate — the batch validator's DER walk
 * over one X.509 certificate, in native code.
 *
 * This is a line-by-line port of the reference implementation in Python,
 * cps_middleware/validation/_der.py (_parse_certificate_py and its helpers):
 * same facts in the same tuple, same strict-DER refusals, same reason text.
 * A property test feeds both the same mutated certificates and requires the
 * same answer, so the Python walk stays the specification.
 *
 * Why native: the walk cost ~18 µs per holder certificate in Python, a third
 * of an RSA-4096 signature check, and the validator's one-core goal is 0.8 ×
 * `openssl speed`.
 *
 * Every byte read goes through at(), which stops the walk with
 * "truncated DER" where Python would raise IndexError (parse_certificate
 * turns IndexError into that same reason). Slices are clamped as Python
 * clamps them. Errors unwind with longjmp to parse_certificate, which owns
 * every allocation (the Walk is on the heap, only its pointer is local).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "dercert.h"

#define MAX_KINDS 16
#define MAX_PARSED 64

/* The tables of _der.py, handed over once by set_der_tables(). */
static struct {
    int ready;
    int n_kinds;
    unsigned char kind_oid[MAX_KINDS][16];
    int kind_len[MAX_KINDS];
    int kind_val[MAX_KINDS];
    int n_parsed; /* raw OIDs of the extensions cryptography parses */
    unsigned char parsed_oid[MAX_PARSED][32];
    int parsed_len[MAX_PARSED];
} tables;

typedef struct {
    Py_ssize_t s, e;
} Span;

typedef struct {
    Span *v;
    Py_ssize_t n, cap;
} Spans;

typedef struct {
    const unsigned char *b;
    Py_ssize_t n; /* len(der) */
    jmp_buf jb;
    const char *err; /* DerError reason (static text) */
    PyObject *errobj; /* or a formatted reason */
    int pyerr;        /* a Python exception is set (MemoryError ...) */
    Spans eku, pol, check, oids;
} Walk;

static void
die(Walk *w, const char *why)
{
    w->err = why;
    longjmp(w->jb, 1);
}

static void
die_py(Walk *w)
{
    w->pyerr = 1;
    longjmp(w->jb, 1);
}

static inline int
at(Walk *w, Py_ssize_t i)
{
    if (i < 0 || i >= w->n)
        die(w, "truncated DER");
    return w->b[i];
}

static void
push(Walk *w, Spans *a, Py_ssize_t s, Py_ssize_t e)
{
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap ? a->cap * 2 : 16;
        Span *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) {
            PyErr_NoMemory();
            die_py(w);
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n].s = s;
    a->v[a->n].e = e;
    a->n++;
}

/* Python's b[s:e] bounds. */
static inline Py_ssize_t
clamp(Walk *w, Py_ssize_t i)
{
    return i < 0 ? 0 : (i > w->n ? w->n : i);
}

/* der[s:s+len(lit)] == lit, with Python's clamping. */
static inline int
slice_is(Walk *w, Py_ssize_t s, const char *lit, Py_ssize_t len)
{
    return s >= 0 && s + len <= w->n && memcmp(w->b + s, lit, (size_t)len) == 0;
}

/* der[s:e].isdigit() for e = min(e, len): non-empty and ASCII digits only. */
static int
isdigits(Walk *w, Py_ssize_t s, Py_ssize_t e)
{
    s = clamp(w, s);
    e = clamp(w, e);
    if (e <= s)
        return 0;
    for (Py_ssize_t k = s; k < e; k++)
        if (w->b[k] < '0' || w->b[k] > '9')
            return 0;
    return 1;
}

/* _tlv: one TLV header at i inside [i, end) -> tag, content start, content end. */
static int
tlv(Walk *w, Py_ssize_t i, Py_ssize_t end, Py_ssize_t *cs, Py_ssize_t *ce)
{
    const unsigned char *b = w->b;
    if (i + 2 > end)
        die(w, "truncated DER");
    int tag = b[i];
    if ((tag & 0x1F) == 0x1F)
        die(w, "high tag numbers are not used in certificates");
    Py_ssize_t n = b[i + 1], e;
    i += 2;
    if (n < 0x80) {
        e = i + n;
    }
    else if (n == 0x81) {
        if (i + 1 > end)
            die(w, "truncated DER length");
        n = b[i];
        if (n < 0x80)
            die(w, "non-minimal DER length");
        i += 1;
        e = i + n;
    }
    else if (n == 0x82) {
        if (i + 2 > end)
            die(w, "truncated DER length");
        n = ((Py_ssize_t)b[i] << 8) | b[i + 1];
        if (n < 0x100)
            die(w, "non-minimal DER length");
        i += 2;
        e = i + n;
    }
    else if (n == 0x83) {
        if (i + 3 > end)
            die(w, "truncated DER length");
        n = ((Py_ssize_t)b[i] << 16) | ((Py_ssize_t)b[i + 1] << 8) | b[i + 2];
        if (n < 0x10000)
            die(w, "non-minimal DER length");
        i += 3;
        e = i + n;
    }
    else {
        die(w, "indefinite or oversized DER length");
    }
    if (e > end)
        die(w, "DER length runs past its container");
    *cs = i;
    *ce = e;
    return tag;
}

/* _time: UTCTime / GeneralizedTime -> 15 ASCII bytes YYYYMMDDHHMMSSZ. */
static void
get_time(Walk *w, int tag, Py_ssize_t s, Py_ssize_t e, char out[15])
{
    const unsigned char *v = w->b + s;
    if (tag == 0x17 && e - s == 13) {
        if (!(isdigits(w, s, s + 12) && v[12] == 0x5A))
            die(w, "bad UTCTime");
        out[0] = v[0] >= 0x35 ? '1' : '2';
        out[1] = v[0] >= 0x35 ? '9' : '0';
        memcpy(out + 2, v, 13);
        return;
    }
    if (tag == 0x18 && e - s == 15) {
        if (!(isdigits(w, s, s + 14) && v[14] == 0x5A) || memcmp(v, "0000", 4) == 0)
            die(w, "bad GeneralizedTime");
        memcpy(out, v, 15);
        return;
    }
    die(w, "bad time encoding");
}

/* integer(): DER INTEGER contents -> int; empty and non-minimal refused. */
static PyObject *
integer(Walk *w, Py_ssize_t s, Py_ssize_t e, const char *empty, const char *nonminimal)
{
    s = clamp(w, s);
    e = clamp(w, e);
    if (e <= s)
        die(w, empty);
    const unsigned char *v = w->b + s;
    if (e - s > 1 && ((v[0] == 0 && v[1] < 0x80) || (v[0] == 0xFF && v[1] >= 0x80)))
        die(w, nonminimal);
    PyObject *r = _PyLong_FromByteArray(v, (size_t)(e - s), 0, 1);
    if (!r)
        die_py(w);
    return r;
}

static void
oid_list(Walk *w, Py_ssize_t s, Py_ssize_t e, Spans *out)
{
    out->n = 0;
    while (s < e) {
        Py_ssize_t cs, ce;
        if (tlv(w, s, e, &cs, &ce) != 0x06)
            die(w, "expected an OID");
        push(w, out, cs, ce);
        s = ce;
    }
}

static void
policies(Walk *w, Py_ssize_t s, Py_ssize_t e, Spans *out)
{
    Py_ssize_t ps, pe, os_, oe;
    if (tlv(w, s, e, &s, &e) != 0x30)
        die(w, "bad certificatePolicies");
    out->n = 0;
    while (s < e) {
        if (tlv(w, s, e, &ps, &pe) != 0x30)
            die(w, "bad PolicyInformation");
        if (tlv(w, ps, pe, &os_, &oe) != 0x06)
            die(w, "bad policy OID");
        push(w, out, os_, oe);
        s = pe;
    }
}

static long
key_usage(Walk *w, Py_ssize_t s, Py_ssize_t e)
{
    const unsigned char *b = w->b;
    int tag = tlv(w, s, e, &s, &e);
    if (tag != 0x03 || e - s < 1 || e - s > 3 || b[s] > 7 || (e - s == 1 && b[s]))
        die(w, "bad keyUsage");
    if (e - s > 1 && (b[e - 1] & ((1 << b[s]) - 1)))
        die(w, "bad keyUsage (non-zero padding bits)");
    long bits = 0;
    for (Py_ssize_t k = 0; s + 1 + k < e; k++)
        for (int j = 0; j < 8; j++)
            if (b[s + 1 + k] & (0x80 >> j))
                bits |= 1L << (k * 8 + j);
    return bits;
}

static void
basic_constraints(Walk *w, Py_ssize_t s, Py_ssize_t e, int *ca, long *plen)
{
    const unsigned char *b = w->b;
    Py_ssize_t cs, ce;
    if (tlv(w, s, e, &s, &e) != 0x30)
        die(w, "bad basicConstraints");
    *ca = 0;
    *plen = -1;
    if (s < e) {
        int tag = tlv(w, s, e, &cs, &ce);
        if (tag == 0x01) {
            if (ce - cs != 1 || (b[cs] != 0 && b[cs] != 0xFF))
                die(w, "bad BOOLEAN");
            *ca = b[cs] == 0xFF;
            s = ce;
            if (s < e)
                tag = tlv(w, s, e, &cs, &ce);
        }
        if (s < e) {
            if (tag != 0x02 || ce - cs < 1 || ce - cs > 4 || (b[cs] & 0x80))
                die(w, "bad pathLenConstraint");
            if (ce - cs > 1 && b[cs] == 0 && b[cs + 1] < 0x80)
                die(w, "non-minimal pathLenConstraint");
            long v = 0;
            for (Py_ssize_t k = cs; k < ce; k++)
                v = (v << 8) | b[k];
            *plen = v;
            s = ce;
        }
        if (s != e)
            die(w, "trailing data in basicConstraints");
    }
}

/* _aki: the keyIdentifier span, or s = -1 when absent. */
static void
aki_slow(Walk *w, Py_ssize_t s, Py_ssize_t e, Span *out)
{
    Py_ssize_t cs, ce;
    if (tlv(w, s, e, &s, &e) != 0x30)
        die(w, "bad authorityKeyIdentifier");
    out->s = -1;
    if (s < e && tlv(w, s, e, &cs, &ce) == 0x80) {
        out->s = cs;
        out->e = ce;
    }
}

static void
octets(Walk *w, Py_ssize_t s, Py_ssize_t e, Span *out)
{
    Py_ssize_t end = e;
    if (tlv(w, s, e, &s, &e) != 0x04 || e != end)
        die(w, "bad OCTET STRING");
    out->s = s;
    out->e = e;
}

static int
kind_of(const unsigned char *oid, Py_ssize_t len)
{
    for (int k = 0; k < tables.n_kinds; k++)
        if (tables.kind_len[k] == len && memcmp(tables.kind_oid[k], oid, (size_t)len) == 0)
            return tables.kind_val[k];
    return 0;
}

static int
parsed_by_cryptography(const unsigned char *oid, Py_ssize_t len)
{
    for (int k = 0; k < tables.n_parsed; k++)
        if (tables.parsed_len[k] == len && memcmp(tables.parsed_oid[k], oid, (size_t)len) == 0)
            return 1;
    return 0;
}

static const unsigned char *sort_base; /* the GIL is held: one walk at a time */

static int
span_cmp(const void *pa, const void *pb)
{
    const Span *a = pa, *b = pb;
    Py_ssize_t la = a->e - a->s, lb = b->e - b->s;
    if (la != lb)
        return la < lb ? -1 : 1;
    return memcmp(sort_base + a->s, sort_base + b->s, (size_t)la);
}

/* Two extensions with the same OID? Pairwise for the usual handful, sorted beyond. */
static int
has_duplicate(Walk *w, Spans *a)
{
    if (a->n <= 32) {
        for (Py_ssize_t x = 0; x < a->n; x++)
            for (Py_ssize_t y = x + 1; y < a->n; y++) {
                Span p = a->v[x], q = a->v[y];
                if (p.e - p.s == q.e - q.s &&
                    memcmp(w->b + p.s, w->b + q.s, (size_t)(p.e - p.s)) == 0)
                    return 1;
            }
        return 0;
    }
    sort_base = w->b;
    qsort(a->v, (size_t)a->n, sizeof *a->v, span_cmp);
    for (Py_ssize_t x = 1; x < a->n; x++)
        if (span_cmp(&a->v[x - 1], &a->v[x]) == 0)
            return 1;
    return 0;
}

/* What the walk found, as offsets into the certificate (s = -1: absent). */
typedef struct {
    Py_ssize_t tbs_s, te, sigalg_e, ss, se;
    Py_ssize_t serial_s, serial_e;
    Span issuer, subject, spki, aki, ski, critical, san, nc, crldp;
    char nb[15], na[15];
    long ku, plen;
    int ca, has_eku, has_pol;
    long present, critmask;
} Facts;

static void
walk(Walk *w, Facts *f)
{
    Py_ssize_t end = w->n, s, e, ts, te, i, n, cs, ce;
    int tag;
    if (at(w, 0) == 0x30 && at(w, 1) == 0x82 && at(w, 4) == 0x30 && at(w, 5) == 0x82) {
        e = 4 + ((at(w, 2) << 8) | at(w, 3));
        n = (at(w, 6) << 8) | at(w, 7);
        if (e != end || n < 0x100)
            die(w, "not a DER certificate (outer SEQUENCE)");
        s = 4;
        ts = 8;
        te = 8 + n;
        if (te > e)
            die(w, "DER length runs past its container");
    }
    else {
        tag = tlv(w, 0, end, &s, &e);
        if (tag != 0x30 || e != end)
            die(w, "not a DER certificate (outer SEQUENCE)");
        tag = tlv(w, s, e, &ts, &te);
        if (tag != 0x30)
            die(w, "bad tbsCertificate");
    }
    f->tbs_s = s;
    f->te = te;
    n = at(w, te + 1);
    if (at(w, te) != 0x30 || n >= 0x80)
        die(w, "bad signatureAlgorithm");
    Py_ssize_t ae = te + 2 + n;
    f->sigalg_e = clamp(w, ae);
    Py_ssize_t ss, se;
    tag = tlv(w, ae, e, &ss, &se);
    if (tag != 0x03 || se != e || ss >= se || at(w, ss) != 0)
        die(w, "bad signatureValue");
    f->ss = ss + 1;
    f->se = se;

    /* tbsCertificate */
    i = ts;
    int version = 0;
    if (at(w, i) == 0xA0) {
        if (!slice_is(w, i + 1, "\x03\x02\x01", 3) || (at(w, i + 4) != 1 && at(w, i + 4) != 2))
            die(w, "bad version");
        version = at(w, i + 4);
        i += 5;
    }
    n = at(w, i + 1);
    if (at(w, i) != 0x02 || n == 0 || n > 21)
        die(w, "bad serialNumber");
    i += 2 + n;
    f->serial_s = i - n;
    f->serial_e = i;
    /* integer() runs here in Python: check it now, build the int at the end */
    Py_DECREF(integer(w, i - n, i, "empty serialNumber", "non-minimal serialNumber"));
    Py_ssize_t sigalg_len = f->sigalg_e - te;
    ce = i + sigalg_len;
    if (clamp(w, ce) - clamp(w, i) != sigalg_len ||
        memcmp(w->b + clamp(w, i), w->b + te, (size_t)sigalg_len) != 0)
        die(w, "inner and outer signature algorithms differ");
    i = ce;
    if (tlv(w, i, te, &cs, &ce) != 0x30)
        die(w, "bad issuer");
    f->issuer.s = i;
    f->issuer.e = ce;
    i = ce;
    /* Validity: two 13-byte UTCTimes in a 30 1E is the usual case. */
    if (slice_is(w, i, "\x30\x1e\x17\x0d", 4) && slice_is(w, i + 17, "\x17\x0d", 2)) {
        Py_ssize_t b1 = i + 4, b2 = i + 19;
        if (!(isdigits(w, b1, b1 + 12) && at(w, b1 + 12) == 0x5A && isdigits(w, b2, b2 + 12) &&
              at(w, b2 + 12) == 0x5A))
            die(w, "bad UTCTime");
        get_time(w, 0x17, b1, b1 + 13, f->nb);
        get_time(w, 0x17, b2, b2 + 13, f->na);
        i += 32;
    }
    else {
        Py_ssize_t vs, ve, ce2;
        if (tlv(w, i, te, &vs, &ve) != 0x30)
            die(w, "bad validity");
        tag = tlv(w, vs, ve, &cs, &ce);
        get_time(w, tag, cs, ce, f->nb);
        tag = tlv(w, ce, ve, &cs, &ce2);
        get_time(w, tag, cs, ce2, f->na);
        if (ce2 != ve)
            die(w, "bad validity");
        i = ve;
    }
    if (tlv(w, i, te, &cs, &ce) != 0x30)
        die(w, "bad subject");
    f->subject.s = i;
    f->subject.e = ce;
    i = ce;
    if (tlv(w, i, te, &cs, &ce) != 0x30)
        die(w, "bad subjectPublicKeyInfo");
    f->spki.s = i;
    f->spki.e = ce;
    i = ce;

    f->ku = -1;
    f->ca = 0;
    f->plen = -1;
    f->has_eku = f->has_pol = 0;
    f->aki.s = f->ski.s = f->critical.s = f->san.s = f->nc.s = f->crldp.s = -1;
    f->present = f->critmask = 0;
    while (i < te) {
        tag = tlv(w, i, te, &cs, &ce);
        if (tag == 0x81 || tag == 0x82) { /* issuer/subject unique IDs */
            i = ce;
            continue;
        }
        if (tag != 0xA3 || version != 2 || ce != te)
            die(w, "bad extensions");
        Py_ssize_t xs, xe;
        tag = tlv(w, cs, ce, &xs, &xe);
        if (tag != 0x30 || xe != ce || xs == xe)
            die(w, "bad extensions");
        w->oids.n = 0;
        while (xs < xe) {
            /* Extension ::= SEQUENCE { OID, critical BOOLEAN DEFAULT FALSE, OCTET STRING } */
            Py_ssize_t es, ee, vs, ve;
            if (at(w, xs) != 0x30)
                die(w, "bad extension");
            n = at(w, xs + 1);
            if (n < 0x80) {
                es = xs + 2;
                ee = es + n;
                if (ee > xe)
                    die(w, "extension runs past its container");
            }
            else {
                tlv(w, xs, xe, &es, &ee);
            }
            n = at(w, es + 1);
            if (at(w, es) != 0x06 || n >= 0x80)
                die(w, "bad extension OID");
            Py_ssize_t oe = es + 2 + n;
            Py_ssize_t os_ = clamp(w, es + 2), oend = clamp(w, oe);
            push(w, &w->oids, os_, oend);
            int crit = 0;
            if (at(w, oe) == 0x01) {
                if (!slice_is(w, oe + 1, "\x01\xff", 2)) /* DER: FALSE is omitted */
                    die(w, "bad critical flag");
                crit = 1;
                oe += 3;
            }
            /* extnValue OCTET STRING: must fill the rest of the extension */
            n = at(w, oe + 1);
            if (n < 0x80) {
                vs = oe + 2;
            }
            else if (n == 0x81) {
                vs = oe + 3;
                n = at(w, oe + 2);
                if (n < 0x80)
                    die(w, "non-minimal DER length");
            }
            else if (n == 0x82) {
                vs = oe + 4;
                n = (at(w, oe + 2) << 8) | at(w, oe + 3);
                if (n < 0x100)
                    die(w, "non-minimal DER length");
            }
            else {
                die(w, "bad extension value");
            }
            ve = vs + n;
            if (at(w, oe) != 0x04 || ve != ee)
                die(w, "bad extension value");
            const unsigned char *oid = w->b + os_;
            Py_ssize_t oid_len = oend - os_;
            int kind = kind_of(oid, oid_len);
            f->present |= 1L << kind;
            if (crit)
                f->critmask |= 1L << kind;
            if (kind != 4 && kind != 7 && parsed_by_cryptography(oid, oid_len))
                push(w, &w->check, xs, ee);
            switch (kind) {
            case 0:
                if (crit && f->critical.s < 0) {
                    f->critical.s = os_;
                    f->critical.e = oend;
                }
                break;
            case 1:
                f->ku = key_usage(w, vs, ve);
                break;
            case 2:
                basic_constraints(w, vs, ve, &f->ca, &f->plen);
                break;
            case 3:
                /* AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier OPTIONAL, ... } */
                if (at(w, vs) == 0x30 && at(w, vs + 1) < 0x80 && at(w, vs + 1) == ve - vs - 2 &&
                    at(w, vs + 2) == 0x80) {
                    n = at(w, vs + 3);
                    if (n >= 0x80 || vs + 4 + n > ve)
                        die(w, "bad authorityKeyIdentifier");
                    f->aki.s = vs + 4;
                    f->aki.e = vs + 4 + n;
                }
                else {
                    aki_slow(w, vs, ve, &f->aki);
                }
                break;
            case 4:
                if (at(w, vs) == 0x04 && at(w, vs + 1) < 0x80 && at(w, vs + 1) == ve - vs - 2) {
                    f->ski.s = vs + 2;
                    f->ski.e = ve;
                }
                else {
                    octets(w, vs, ve, &f->ski);
                }
                break;
            case 5:
                policies(w, vs, ve, &w->pol);
                f->has_pol = 1;
                break;
            case 6: {
                Py_ssize_t ls, le;
                if (tlv(w, vs, ve, &ls, &le) != 0x30)
                    die(w, "bad extKeyUsage");
                oid_list(w, ls, le, &w->eku);
                f->has_eku = 1;
                break;
            }
            case 7:
                f->san.s = vs;
                f->san.e = ve;
                break;
            case 8:
                f->nc.s = vs;
                f->nc.e = ve;
                break;
            case 9:
                f->crldp.s = vs;
                f->crldp.e = ve;
                break;
            default:
                break;
            }
            xs = ee;
        }
        if (has_duplicate(w, &w->oids))
            die(w, "duplicate extension");
        i = ce;
    }
}

static PyObject *
bytes_of(Walk *w, Py_ssize_t s, Py_ssize_t e)
{
    PyObject *r = PyBytes_FromStringAndSize((const char *)w->b + s, e - s);
    if (!r)
        die_py(w);
    return r;
}

static PyObject *
checked(Walk *w, PyObject *x)
{
    if (!x)
        die_py(w);
    return x;
}

static PyObject *
span_or_none(Walk *w, Span x)
{
    if (x.s < 0)
        Py_RETURN_NONE;
    return bytes_of(w, x.s, x.e);
}

static PyObject *
spans_tuple(Walk *w, Spans *a)
{
    PyObject *t = PyTuple_New(a->n);
    if (!t)
        die_py(w);
    for (Py_ssize_t k = 0; k < a->n; k++) {
        PyObject *x = PyBytes_FromStringAndSize((const char *)w->b + a->v[k].s,
                                                a->v[k].e - a->v[k].s);
        if (!x) {
            Py_DECREF(t);
            die_py(w);
        }
        PyTuple_SET_ITEM(t, k, x);
    }
    return t;
}

/* The facts as the tuple _der.parse_certificate returns (F_* order). */
static PyObject *
build(Walk *w, Facts *f)
{
    PyObject *t = PyTuple_New(23); /* slots start NULL: dropping it half-filled is safe */
    if (!t)
        return NULL;
    if (setjmp(w->jb)) {
        Py_DECREF(t);
        return NULL;
    }
#define SET(k, x) PyTuple_SET_ITEM(t, k, (x))
    SET(0, bytes_of(w, f->tbs_s, f->te));
    SET(1, bytes_of(w, f->te, f->sigalg_e));
    SET(2, bytes_of(w, f->ss, f->se));
    SET(3, integer(w, f->serial_s, f->serial_e, "", ""));
    SET(4, span_or_none(w, f->issuer));
    SET(5, span_or_none(w, f->subject));
    SET(6, checked(w, PyBytes_FromStringAndSize(f->nb, 15)));
    SET(7, checked(w, PyBytes_FromStringAndSize(f->na, 15)));
    SET(8, span_or_none(w, f->spki));
    SET(9, checked(w, PyLong_FromLong(f->ku)));
    SET(10, PyBool_FromLong(f->ca));
    SET(11, checked(w, PyLong_FromLong(f->plen)));
    SET(12, f->has_eku ? spans_tuple(w, &w->eku) : Py_NewRef(Py_None));
    SET(13, f->has_pol ? spans_tuple(w, &w->pol) : Py_NewRef(Py_None));
    SET(14, span_or_none(w, f->aki));
    SET(15, span_or_none(w, f->ski));
    SET(16, span_or_none(w, f->critical));
    SET(17, span_or_none(w, f->san));
    SET(18, span_or_none(w, f->nc));
    SET(19, spans_tuple(w, &w->check));
    SET(20, checked(w, PyLong_FromLong(f->present)));
    SET(21, checked(w, PyLong_FromLong(f->critmask)));
    SET(22, span_or_none(w, f->crldp));
#undef SET
    return t;
}

PyObject *
dercert_parse(PyObject *self, PyObject *arg)
{
    if (!tables.ready) {
        PyErr_SetString(PyExc_RuntimeError, "set_der_tables() was not called");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Walk *w = calloc(1, sizeof *w);
    Facts *f = calloc(1, sizeof *f);
    PyObject *result = NULL;
    if (!w || !f) {
        PyErr_NoMemory();
        goto done;
    }
    w->b = view.buf;
    w->n = view.len;
    if (setjmp(w->jb) == 0) {
        walk(w, f);
        result = build(w, f);
    }
    else if (!w->pyerr) {
        result = PyUnicode_FromString(w->err);
    }
done:
    if (w) {
        free(w->eku.v);
        free(w->pol.v);
        free(w->check.v);
        free(w->oids.v);
    }
    free(w);
    free(f);
    PyBuffer_Release(&view);
    return result;
}

PyObject *
dercert_set_tables(PyObject *self, PyObject *args)
{
    PyObject *kinds, *parsed;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &kinds, &PyFrozenSet_Type, &parsed))
        return NULL;
    if (PyDict_GET_SIZE(kinds) > MAX_KINDS) {
        PyErr_SetString(PyExc_ValueError, "too many extension kinds");
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int k = 0;
    while (PyDict_Next(kinds, &pos, &key, &value)) {
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) > 16 || !PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "kinds: raw OID bytes (<= 16) -> int");
            return NULL;
        }
        long v = PyLong_AsLong(value);
        if (v < 1 || v > 30) {
            PyErr_SetString(PyExc_ValueError, "kinds: values 1..30");
            return NULL;
        }
        memcpy(tables.kind_oid[k], PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
        tables.kind_len[k] = (int)PyBytes_GET_SIZE(key);
        tables.kind_val[k] = (int)v;
        k++;
    }
    tables.n_kinds = k;
    if (PySet_GET_SIZE(parsed) > MAX_PARSED) {
        PyErr_SetString(PyExc_ValueError, "too many parsed extensions");
        return NULL;
    }
    PyObject *it = PyObject_GetIter(parsed), *oid;
    if (!it)
        return NULL;
    k = 0;
    while ((oid = PyIter_Next(it))) {
        if (!PyBytes_Check(oid) || PyBytes_GET_SIZE(oid) > 32) {
            Py_DECREF(oid);
            Py_DECREF(it);
            PyErr_SetString(PyExc_TypeError, "parsed: raw OID bytes (<= 32)");
            return NULL;
        }
        memcpy(tables.parsed_oid[k], PyBytes_AS_STRING(oid), (size_t)PyBytes_GET_SIZE(oid));
        tables.parsed_len[k] = (int)PyBytes_GET_SIZE(oid);
        k++;
        Py_DECREF(oid);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    tables.n_parsed = k;
    tables.ready = 1;
    Py_RETURN_NONE;
}

/* --- check_name: a Name's RDNs, OIDs and strings readable (_der.check_name) --- */

static const char *
check_oid(const unsigned char *v, Py_ssize_t n)
{
    if (n == 0 || (v[n - 1] & 0x80))
        return "bad OBJECT IDENTIFIER";
    unsigned char prev = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (v[k] == 0x80 && !(prev & 0x80))
            return "non-minimal OBJECT IDENTIFIER";
        prev = v[k];
    }
    return NULL;
}

static int
printable(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr(" '()+,-./:=?", c) != NULL);
}

/* 1: decodes; 0: does not; -1: another Python error. */
static int
decodes(PyObject *u)
{
    if (u) {
        Py_DECREF(u);
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* _check_string: NULL when fine, else a reason (str) or NULL with an error set. */
static PyObject *
check_string(int tag, const unsigned char *v, Py_ssize_t n, int *bad)
{
    int ok = 1;
    *bad = 0;
    if (tag == 0x0C) {
        ok = decodes(PyUnicode_DecodeUTF8((const char *)v, n, "strict"));
    }
    else if (tag == 0x13) {
        for (Py_ssize_t k = 0; k < n; k++)
            if (!printable(v[k])) {
                *bad = 1;
                return PyUnicode_FromString("bad PrintableString");
            }
    }
    else if (tag == 0x16 || tag == 0x1A || tag == 0x14 || tag == 0x12) {
        for (Py_ssize_t k = 0; k < n; k++)
            if (v[k] >= 0x80)
                ok = 0;
        if (ok && tag == 0x12)
            for (Py_ssize_t k = 0; k < n; k++)
                if (v[k] != ' ' && (v[k] < '0' || v[k] > '9')) {
                    *bad = 1;
                    return PyUnicode_FromString("bad NumericString");
                }
    }
    else if (tag == 0x1E) {
        if (n % 2) {
            *bad = 1;
            return PyUnicode_FromString("bad BMPString");
        }
        int order = 1;
        ok = decodes(PyUnicode_DecodeUTF16((const char *)v, n, "strict", &order));
    }
    else if (tag == 0x1C) {
        if (n % 4) {
            *bad = 1;
            return PyUnicode_FromString("bad UniversalString");
        }
        int order = 1;
        ok = decodes(PyUnicode_DecodeUTF32((const char *)v, n, "strict", &order));
    }
    else if (tag == 0x03) {
        if (n == 0 || v[0]) {
            *bad = 1;
            return PyUnicode_FromString("bad BIT STRING in a name");
        }
    }
    else {
        *bad = 1;
        return PyUnicode_FromFormat("an attribute value of tag 0x%x in a name", tag);
    }
    if (ok < 0)
        return NULL;
    if (!ok) {
        *bad = 1;
        return PyUnicode_FromFormat("a string of tag 0x%x that does not decode in a name", tag);
    }
    return NULL;
}

/* check_name(name) -> None | str: the reason the Name is not readable. The
 * Python version's memo of readable RDNs is only a shortcut: not needed here. */
PyObject *
dercert_check_name(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Walk *w = calloc(1, sizeof *w);
    PyObject *result = NULL;
    if (!w) {
        PyErr_NoMemory();
        goto done;
    }
    w->b = view.buf;
    w->n = view.len;
    if (setjmp(w->jb) == 0) {
        const unsigned char *b = w->b;
        Py_ssize_t s, e, rs, re_, as_, ae, os_, oe, vs, ve;
        int tag = tlv(w, 0, w->n, &s, &e);
        if (tag != 0x30 || e != w->n)
            die(w, "bad Name");
        while (s < e) {
            tag = tlv(w, s, e, &rs, &re_);
            if (tag != 0x31 || rs == re_)
                die(w, "bad RelativeDistinguishedName");
            while (rs < re_) {
                if (tlv(w, rs, re_, &as_, &ae) != 0x30)
                    die(w, "bad AttributeTypeAndValue");
                if (tlv(w, as_, ae, &os_, &oe) != 0x06)
                    die(w, "bad attribute type");
                const char *why = check_oid(b + os_, oe - os_);
                if (why)
                    die(w, why);
                tag = tlv(w, oe, ae, &vs, &ve);
                if (ve != ae)
                    die(w, "bad AttributeTypeAndValue");
                int bad;
                PyObject *reason = check_string(tag, b + vs, ve - vs, &bad);
                if (reason || bad) {
                    result = reason;
                    goto done;
                }
                if (PyErr_Occurred())
                    goto done;
                rs = ae;
            }
            s = re_;
        }
        result = Py_NewRef(Py_None);
    }
    else if (!w->pyerr) {
        result = PyUnicode_FromString(w->err);
    }
done:
    free(w);
    PyBuffer_Release(&view);
    return result;
}

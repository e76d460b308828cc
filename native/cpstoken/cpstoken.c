/* CPS test token: PKCS#11 entry points.
 *
 * Configuration: the environment variable CPS_TEST_CARDS_DIR names a directory
 * with one sub-directory per card (slot order = sorted names; rescanned by
 * C_GetSlotList(NULL list) and C_WaitForSlotEvent, so cards created later
 * appear, with the next free slot ID):
 *     <card-id>/softhsm2.conf   SoftHSM config, directories.tokendir = <card dir>/tokens
 *     <card-id>/tokens/         one initialised SoftHSM token
 *     <card-id>/card.state      key=value lines; the card exists once this file does
 * CPS_TEST_TOKEN_DEBUG=1 traces to stderr. Unset CPS_TEST_CARDS_DIR: no slots.
 *
 * card.state keys (missing ones take the default in brackets):
 *   label [card id]  serial [card id]  manufacturer [ANS]  generation [CPS3]
 *   model [IAS ECC, ChipDoc for CPS4]  present [1]  insertions [0]
 *   pin_tries_max [3]  pin_tries_left [max]  puk_tries_max [10]  puk_tries_left [max]
 *   latency_ms [0]  mechanisms [empty = all; comma list of CKM_ names or 0x hex]
 *   pin_pad [0]  pad_pin [what the simulated PIN pad types]  softhsm_module [usual paths]
 *   pad_auto_login [0; with pin_pad, C_OpenSession logs in through the pad]
 *   reader [empty; else the slot description: the PC/SC reader the card is "in"]
 *
 * Every call is forwarded to the card's own SoftHSM instance (softhsm.c); this
 * file adds what a CPS card does and SoftHSM does not:
 *   - user PIN / PUK (SO PIN) try counters in card.state, shared by every process
 *     (flock): a wrong PIN spends a try and returns CKR_PIN_INCORRECT, a counter
 *     at 0 returns CKR_PIN_LOCKED without asking SoftHSM, a right PIN restores
 *     it; C_InitPIN (SO, i.e. unblocking with the PUK) restores the user counter;
 *     C_SetPIN counts the old PIN against the user or, in an SO session, the PUK
 *     counter. Token flags COUNT_LOW / FINAL_TRY / LOCKED follow the counters.
 *   - removal: present=0 -> slot without token, CKR_TOKEN_NOT_PRESENT for token
 *     calls, CKR_DEVICE_REMOVED on sessions opened before (their SoftHSM
 *     sessions are closed, which logs out); after re-insertion (insertions
 *     changed) those handles answer CKR_SESSION_HANDLE_INVALID. C_CloseSession
 *     on such a handle returns CKR_OK (cleanup never fails).
 *   - latency_ms before C_Sign/C_SignFinal/C_SignRecover/C_Decrypt/C_DecryptFinal
 *     (not for length queries), one operation at a time per card.
 *   - mechanism allow-list: C_GetMechanismList filtered, C_GetMechanismInfo and
 *     the *Init / wrap / unwrap / derive calls answer CKR_MECHANISM_INVALID for
 *     others; key generation stays open (fixtures make keys through us).
 *   - C_GetTokenInfo label/serial/manufacturer/model from the state; slot
 *     description = reader, else "CPS test reader <card-id>" (space-padded to
 *     64 bytes, as PKCS#11 wants); pin_pad=1 sets
 *     CKF_PROTECTED_AUTHENTICATION_PATH and C_Login(NULL PIN) uses pad_pin.
 * Our session handles are ours: SoftHSM instances number theirs independently,
 * and a handle must stay invalid after the card comes back. Thread-safe with or
 * without locking arguments to C_Initialize (SoftHSM runs with OS locking).
 * After fork() the child starts afresh on its first call (parent sessions
 * invalid, C_Initialize answers CKR_OK once), as the ANS module does.
 */
#include "cpstoken.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LIB_VERSION_MAJOR 1
#define LIB_VERSION_MINOR 0

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* cards array, sessions, init state */
static int g_initialized;
static int g_child_fresh; /* forked child, no call made yet */
static volatile int g_forked;
static char g_cards_dir[CPS_PATH_MAX];
static cps_card *g_cards[CPS_MAX_CARDS];
static int g_ncards;
static int g_debug = -1;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

void cps_debug(const char *fmt, ...)
{
    if (g_debug < 0) {
        const char *e = getenv("CPS_TEST_TOKEN_DEBUG");
        g_debug = e && *e && strcmp(e, "0") != 0;
    }
    if (!g_debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cpstoken[%d]: ", (int)getpid());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ------------------------------------------------------------------ sessions */

typedef struct sess {
    CK_SESSION_HANDLE h;
    cps_card *card;
    CK_SESSION_HANDLE inner;
    unsigned long insertions;
    unsigned long epoch;
    struct sess *next;
} sess;

#define NBUCKETS 1024
static sess *g_sessions[NBUCKETS];
static CK_SESSION_HANDLE g_next_handle = 1;

static sess **bucket(CK_SESSION_HANDLE h) { return &g_sessions[h % NBUCKETS]; }

static sess *sess_find_locked(CK_SESSION_HANDLE h)
{
    for (sess *s = *bucket(h); s; s = s->next)
        if (s->h == h)
            return s;
    return NULL;
}

/* 1 when the handle was there (and is now gone), 0 when it was not. */
static int sess_remove_locked(CK_SESSION_HANDLE h)
{
    for (sess **pp = bucket(h); *pp; pp = &(*pp)->next) {
        if ((*pp)->h == h) {
            sess *dead = *pp;
            *pp = dead->next;
            free(dead);
            return 1;
        }
    }
    return 0;
}

static void sess_drop_all_locked(cps_card *only)
{
    for (int b = 0; b < NBUCKETS; b++) {
        sess **pp = &g_sessions[b];
        while (*pp) {
            if (!only || (*pp)->card == only) {
                sess *dead = *pp;
                *pp = dead->next;
                free(dead);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
}

/* ------------------------------------------------------------------- cards */

/* Writer-preferring, so that closing the sessions of a pulled card is not
 * starved by threads that keep signing. */
static void ops_init(cps_card *c)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->ops, &a);
    pthread_rwlockattr_destroy(&a);
}

static cps_card *card_new(const char *id)
{
    cps_card *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (snprintf(c->id, sizeof c->id, "%s", id) >= (int)sizeof c->id ||
        snprintf(c->dir, sizeof c->dir, "%s/%s", g_cards_dir, id) >= (int)sizeof c->dir ||
        snprintf(c->state_path, sizeof c->state_path, "%s/card.state", c->dir) >= (int)sizeof c->state_path ||
        snprintf(c->conf_path, sizeof c->conf_path, "%s/softhsm2.conf", c->dir) >= (int)sizeof c->conf_path) {
        free(c);
        return NULL; /* path too long */
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->busy, NULL);
    ops_init(c);
    c->fd = -1;
    c->dl_fd = -1;
    return c;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    cps_card *c;
    char *name;
} claim;

static void card_take_state_locked(cps_card *c, int report_as_new)
{
    cps_state_refresh(c);
    c->seen_present = c->st.valid && c->st.present;
    c->seen_insertions = c->st.insertions;
    /* a card put in after start-up is an event; one there at start-up is not */
    c->ev_present = report_as_new ? 0 : c->seen_present;
    c->ev_insertions = c->st.insertions;
}

/* Adds cards whose card.state appeared since the last scan. Caller holds g_lock.
 * With claims (and g_scan_lock held), a new card takes the struct of a dead one
 * (see rescan_cards): the caller renames it once g_lock is released. */
static int scan_cards_locked(int report_as_new, claim *claims)
{
    int nclaims = 0;
    if (!g_cards_dir[0])
        return 0;
    DIR *d = opendir(g_cards_dir);
    if (!d)
        return 0;
    char *names[CPS_MAX_CARDS];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < CPS_MAX_CARDS) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= 256)
            continue;
        int known = 0;
        for (int i = 0; i < g_ncards && !known; i++)
            known = !g_cards[i]->dead && strcmp(g_cards[i]->id, e->d_name) == 0;
        if (known)
            continue;
        char path[CPS_PATH_MAX];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s/card.state", g_cards_dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        char *name = strdup(e->d_name);
        if (name) /* qsort's strcmp must not meet NULL */
            names[n++] = name;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    for (int i = 0; i < n; i++) {
        cps_card *spare = NULL;
        for (int j = 0; claims && j < g_ncards && !spare; j++)
            if (g_cards[j]->dead == 1)
                spare = g_cards[j];
        if (spare) {
            spare->dead = 2; /* claimed */
            claims[nclaims].c = spare;
            claims[nclaims++].name = names[i];
            continue;
        }
        if (names[i] && g_ncards < CPS_MAX_CARDS) {
            cps_card *c = card_new(names[i]);
            if (c) {
                c->slot_id = (CK_SLOT_ID)g_ncards;
                pthread_mutex_lock(&c->mu);
                card_take_state_locked(c, report_as_new);
                pthread_mutex_unlock(&c->mu);
                g_cards[g_ncards++] = c;
                cps_debug("slot %lu: card %s", c->slot_id, c->id);
            }
        }
        free(names[i]);
    }
    return nclaims;
}

/* Slot IDs in sorted card-name order. Caller holds g_lock. */
static int sorted_cards_locked(cps_card **out)
{
    int n = g_ncards;
    memcpy(out, g_cards, sizeof(cps_card *) * (size_t)n);
    for (int i = 1; i < n; i++) { /* insertion sort: a handful of cards */
        cps_card *x = out[i];
        int j = i - 1;
        while (j >= 0 && strcmp(out[j]->id, x->id) > 0) {
            out[j + 1] = out[j];
            j--;
        }
        out[j + 1] = x;
    }
    return n;
}

/* Cards come and go by the thousand in a test run (CpsTestCard.create/destroy):
 * a card whose directory is gone gives back its state fd and finalises its
 * SoftHSM instance, and its struct, slot and loaded instance serve the next new
 * card (C_Initialize again with that card's configuration). Memory and fds
 * stay bounded by the number of cards present at once. Lock order:
 * g_scan_lock, then c->ops, then c->mu, then g_lock. */
static pthread_mutex_t g_scan_lock = PTHREAD_MUTEX_INITIALIZER;

static void reap_gone_cards(void)
{
    cps_card *cards[CPS_MAX_CARDS];
    pthread_mutex_lock(&g_lock);
    int n = g_ncards;
    memcpy(cards, g_cards, sizeof(cps_card *) * (size_t)n);
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < n; i++) {
        cps_card *c = cards[i];
        struct stat sb;
        if (c->dead || stat(c->state_path, &sb) == 0)
            continue;
        pthread_rwlock_wrlock(&c->ops);
        pthread_mutex_lock(&c->mu);
        if (stat(c->state_path, &sb) != 0) {
            cps_softhsm_finalize(c); /* closes its sessions; the library stays loaded */
            cps_state_close(c);
            c->close_pending = c->reload_pending = 0;
            c->seen_present = 0;
            c->epoch++; /* sessions opened on it are invalid for good */
            pthread_mutex_lock(&g_lock);
            c->dead = 1;
            pthread_mutex_unlock(&g_lock);
            cps_debug("slot %lu: card %s gone, slot free", c->slot_id, c->id);
        }
        pthread_mutex_unlock(&c->mu);
        pthread_rwlock_unlock(&c->ops);
    }
}

static void revive_card(cps_card *c, const char *id, int report_as_new)
{
    pthread_rwlock_wrlock(&c->ops);
    pthread_mutex_lock(&c->mu);
    int ok = snprintf(c->id, sizeof c->id, "%s", id) < (int)sizeof c->id &&
             snprintf(c->dir, sizeof c->dir, "%s/%s", g_cards_dir, id) < (int)sizeof c->dir &&
             snprintf(c->state_path, sizeof c->state_path, "%s/card.state", c->dir) < (int)sizeof c->state_path &&
             snprintf(c->conf_path, sizeof c->conf_path, "%s/softhsm2.conf", c->dir) < (int)sizeof c->conf_path;
    c->known = c->lost = c->replaced = 0;
    c->epoch++;
    if (ok)
        card_take_state_locked(c, report_as_new);
    pthread_mutex_lock(&g_lock);
    c->dead = ok ? 0 : 1;
    pthread_mutex_unlock(&g_lock);
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&c->ops);
    cps_debug("slot %lu: card %s (slot reused)", c->slot_id, id);
}

/* Reaps gone cards, then adds new ones (into freed slots first). No lock held. */
static void rescan_cards(int report_as_new)
{
    claim claims[CPS_MAX_CARDS];
    pthread_mutex_lock(&g_scan_lock);
    reap_gone_cards();
    pthread_mutex_lock(&g_lock);
    int n = scan_cards_locked(report_as_new, claims);
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < n; i++) {
        revive_card(claims[i].c, claims[i].name, report_as_new);
        free(claims[i].name);
    }
    pthread_mutex_unlock(&g_scan_lock);
}

/* Re-reads the state; notices a removal / re-insertion since this process last
 * looked. The SoftHSM sessions must then be closed (which logs the token out),
 * as pulling a real card does, but not while another thread is inside SoftHSM
 * with one of them: card_enter() does it under the write side of c->ops.
 * Caller holds c->mu. */
static void card_refresh_locked(cps_card *c)
{
    cps_state_refresh(c);
    if (c->replaced) {
        cps_debug("card %s: new card files", c->id);
        c->replaced = 0;
        c->epoch++;
        if (c->f && c->inner_init)
            c->close_pending = c->reload_pending = 1;
    }
    int present = c->st.valid && c->st.present;
    if (present != c->seen_present || (present && c->st.insertions != c->seen_insertions)) {
        cps_debug("card %s: %s (insertions %lu)", c->id, present ? "inserted" : "removed", c->st.insertions);
        if (c->f && c->inner_init)
            c->close_pending = 1;
        c->seen_present = present;
        c->seen_insertions = c->st.insertions;
    }
}

/* Before any call into the card's SoftHSM: holds c->ops for reading (released
 * by card_leave), with the state fresh and the sessions of a pulled card
 * closed. Lock order: c->ops, then c->mu, then g_lock. */
static void card_enter(cps_card *c)
{
    for (;;) {
        pthread_rwlock_rdlock(&c->ops);
        pthread_mutex_lock(&c->mu);
        card_refresh_locked(c);
        int pending = c->close_pending || c->reload_pending;
        pthread_mutex_unlock(&c->mu);
        if (!pending)
            return;
        pthread_rwlock_unlock(&c->ops);
        pthread_rwlock_wrlock(&c->ops);
        pthread_mutex_lock(&c->mu);
        if (c->close_pending && c->f && c->inner_init)
            c->f->C_CloseAllSessions(c->inner_slot);
        if (c->reload_pending)
            cps_softhsm_finalize(c); /* initialised again, on the new token, by the next call */
        c->close_pending = c->reload_pending = 0;
        pthread_mutex_unlock(&c->mu);
        pthread_rwlock_unlock(&c->ops);
    }
}

static void card_leave(cps_card *c) { pthread_rwlock_unlock(&c->ops); }

static int card_present_locked(cps_card *c) { return !c->dead && c->st.valid && c->st.present; }

static int mech_allowed(const cps_state *st, CK_MECHANISM_TYPE m)
{
    if (st->n_mechs < 0)
        return 1;
    for (int i = 0; i < st->n_mechs; i++)
        if (st->mechs[i] == m)
            return 1;
    return 0;
}

/* ------------------------------------------------------- init, fork, entry */

static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_lock); }
static void atfork_child(void)
{
    pthread_mutex_init(&g_lock, NULL);
    pthread_mutex_init(&cps_env_lock, NULL);
    for (int i = 0; i < g_ncards; i++) {
        pthread_mutex_init(&g_cards[i]->mu, NULL);
        pthread_mutex_init(&g_cards[i]->busy, NULL);
        ops_init(g_cards[i]);
    }
    g_forked = 1;
}
static void register_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* First call in a forked child: the parent's sessions, state locks (flock is
 * shared through inherited descriptors) and SoftHSM instances are not ours. */
static void child_reset(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_forked) {
        sess_drop_all_locked(NULL);
        for (int i = 0; i < g_ncards; i++) {
            cps_card *c = g_cards[i];
            cps_state_close(c);
            cps_softhsm_abandon(c);
        }
        g_child_fresh = g_initialized;
        g_forked = 0;
        cps_debug("forked child: state reset");
    }
    pthread_mutex_unlock(&g_lock);
}

static CK_RV enter(void)
{
    if (g_forked)
        child_reset();
    pthread_mutex_lock(&g_lock);
    CK_RV rv = g_initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
    g_child_fresh = 0;
    pthread_mutex_unlock(&g_lock);
    return rv;
}

#define ENTER()                          \
    do {                                 \
        CK_RV enter_rv_ = enter();       \
        if (enter_rv_ != CKR_OK)         \
            return enter_rv_;            \
    } while (0)

static cps_card *slot_card(CK_SLOT_ID slot)
{
    pthread_mutex_lock(&g_lock);
    cps_card *c = slot < (CK_SLOT_ID)g_ncards ? g_cards[slot] : NULL;
    pthread_mutex_unlock(&g_lock);
    return c;
}

/* The card of a slot, present and with its SoftHSM loaded. On success c->ops
 * is read-held and c->mu held: release both with slot_done(). */
static CK_RV slot_ready(CK_SLOT_ID slot, cps_card **out)
{
    cps_card *c = slot_card(slot);
    if (!c)
        return CKR_SLOT_ID_INVALID;
    card_enter(c);
    pthread_mutex_lock(&c->mu);
    CK_RV rv = card_present_locked(c) ? cps_softhsm_load(c) : CKR_TOKEN_NOT_PRESENT;
    if (rv != CKR_OK) {
        pthread_mutex_unlock(&c->mu);
        card_leave(c);
        return rv;
    }
    *out = c;
    return CKR_OK;
}

static void slot_done(cps_card *c)
{
    pthread_mutex_unlock(&c->mu);
    card_leave(c);
}

typedef struct {
    cps_card *c;
    CK_SESSION_HANDLE inner;
    CK_FUNCTION_LIST_PTR f;
    unsigned long latency_ms;
} sref;

/* Resolves one of our session handles. On success c->ops is read-held (release
 * with card_leave(s->c) after the SoftHSM call); keep_lock: c->mu held too
 * (for operations that must read the state consistently with the call). */
static CK_RV session_get(CK_SESSION_HANDLE h, sref *out, int keep_lock)
{
    pthread_mutex_lock(&g_lock);
    sess *s = sess_find_locked(h);
    sess copy;
    if (s)
        copy = *s;
    pthread_mutex_unlock(&g_lock);
    if (!s)
        return CKR_SESSION_HANDLE_INVALID;
    cps_card *c = copy.card;
    card_enter(c);
    pthread_mutex_lock(&c->mu);
    /* Look again now that c->ops is held: C_CloseAllSessions (write side of
     * c->ops) may have closed the session since the copy was taken. SoftHSM
     * 2.6 never reuses a session handle, but a module that does (any library
     * softhsm_module names) would give copy.inner to the next session opened. */
    pthread_mutex_lock(&g_lock);
    s = sess_find_locked(h);
    int gone = !s || s->inner != copy.inner || s->card != c;
    pthread_mutex_unlock(&g_lock);
    CK_RV rv = CKR_OK;
    if (gone || c->epoch != copy.epoch) /* closed, or its card was replaced / deleted */
        rv = CKR_SESSION_HANDLE_INVALID;
    else if (!card_present_locked(c))
        rv = CKR_DEVICE_REMOVED;
    else if (c->st.insertions != copy.insertions || c->epoch != copy.epoch || !c->f || !c->inner_init)
        rv = CKR_SESSION_HANDLE_INVALID; /* opened before the card was pulled */
    if (rv == CKR_OK) {
        out->c = c;
        out->inner = copy.inner;
        out->f = c->f;
        out->latency_ms = c->st.latency_ms;
    }
    if (rv != CKR_OK || !keep_lock)
        pthread_mutex_unlock(&c->mu);
    if (rv != CKR_OK)
        card_leave(c);
    return rv;
}

static void pad(CK_UTF8CHAR *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n > cap)
        n = cap;
    memset(dst, ' ', cap);
    memcpy(dst, src, n);
}

/* -------------------------------------------------------- general purpose */

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);

CPS_EXPORT CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
    pthread_once(&g_atfork_once, register_atfork);
    if (g_forked)
        child_reset();
    if (pInitArgs) {
        CK_C_INITIALIZE_ARGS *a = pInitArgs;
        int given = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) + (a->LockMutex != NULL) +
                    (a->UnlockMutex != NULL);
        if (a->pReserved || (given != 0 && given != 4))
            return CKR_ARGUMENTS_BAD;
        /* Either way we lock with pthreads, which is what the OS locking flag asks for. */
    }
    pthread_mutex_lock(&g_lock);
    if (g_initialized) {
        /* a forked child re-initialising (python-pkcs11, the ANS module's habit) */
        CK_RV rv = g_child_fresh ? CKR_OK : CKR_CRYPTOKI_ALREADY_INITIALIZED;
        g_child_fresh = 0;
        pthread_mutex_unlock(&g_lock);
        return rv;
    }
    const char *dir = getenv("CPS_TEST_CARDS_DIR");
    char want[CPS_PATH_MAX] = "";
    if (dir && *dir) {
        char *real = realpath(dir, NULL);
        snprintf(want, sizeof want, "%s", real ? real : dir);
        free(real);
    }
    if (strcmp(want, g_cards_dir) != 0) {
        /* another cards directory than last time: forget the old cards (their
         * SoftHSM copies stay loaded, unused) so that slot IDs start afresh */
        g_ncards = 0;
        snprintf(g_cards_dir, sizeof g_cards_dir, "%s", want);
    }
    scan_cards_locked(0, NULL);
    g_initialized = 1;
    g_child_fresh = 0;
    pthread_mutex_unlock(&g_lock);
    cps_debug("initialised: %d card(s) in %s", g_ncards, g_cards_dir[0] ? g_cards_dir : "(CPS_TEST_CARDS_DIR unset)");
    return CKR_OK;
}

CPS_EXPORT CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
    if (pReserved)
        return CKR_ARGUMENTS_BAD;
    if (g_forked)
        child_reset();
    pthread_mutex_lock(&g_lock);
    if (!g_initialized) {
        pthread_mutex_unlock(&g_lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    g_initialized = 0;
    g_child_fresh = 0;
    sess_drop_all_locked(NULL);
    int n = g_ncards;
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < n; i++) {
        cps_card *c = g_cards[i];
        pthread_rwlock_wrlock(&c->ops);
        pthread_mutex_lock(&c->mu);
        cps_softhsm_finalize(c);
        cps_state_close(c);
        c->seen_present = 0;
        c->close_pending = c->reload_pending = 0;
        pthread_mutex_unlock(&c->mu);
        pthread_rwlock_unlock(&c->ops);
    }
    return CKR_OK;
}

CPS_EXPORT CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
    ENTER();
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    memset(pInfo, 0, sizeof *pInfo);
    pInfo->cryptokiVersion.major = 2;
    pInfo->cryptokiVersion.minor = 40;
    pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "cps-middleware");
    pad(pInfo->libraryDescription, sizeof pInfo->libraryDescription, "CPS test token (SoftHSM)");
    pInfo->libraryVersion.major = LIB_VERSION_MAJOR;
    pInfo->libraryVersion.minor = LIB_VERSION_MINOR;
    return CKR_OK;
}

/* ---------------------------------------------------- slots and tokens */

CPS_EXPORT CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
    ENTER();
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    cps_card *cards[CPS_MAX_CARDS];
    /* Only the size query rescans: between it and the second call the list must not grow. */
    if (!pSlotList)
        rescan_cards(1);
    pthread_mutex_lock(&g_lock);
    int n = sorted_cards_locked(cards);
    pthread_mutex_unlock(&g_lock);
    CK_SLOT_ID ids[CPS_MAX_CARDS];
    CK_ULONG m = 0;
    for (int i = 0; i < n; i++) {
        cps_card *c = cards[i];
        if (tokenPresent) {
            pthread_mutex_lock(&c->mu);
            card_refresh_locked(c);
            int present = card_present_locked(c);
            pthread_mutex_unlock(&c->mu);
            if (!present)
                continue;
        }
        ids[m++] = c->slot_id;
    }
    if (!pSlotList) {
        *pulCount = m;
        return CKR_OK;
    }
    if (*pulCount < m) {
        *pulCount = m;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(pSlotList, ids, sizeof(CK_SLOT_ID) * m);
    *pulCount = m;
    return CKR_OK;
}

CPS_EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
    ENTER();
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    cps_card *c = slot_card(slotID);
    if (!c)
        return CKR_SLOT_ID_INVALID;
    pthread_mutex_lock(&c->mu);
    card_refresh_locked(c);
    int present = card_present_locked(c);
    char desc[300];
    if (c->st.valid && c->st.reader[0])
        snprintf(desc, sizeof desc, "%s", c->st.reader); /* the card "is in" that PC/SC reader */
    else
        snprintf(desc, sizeof desc, "CPS test reader %s", c->id);
    pthread_mutex_unlock(&c->mu);
    memset(pInfo, 0, sizeof *pInfo);
    pad(pInfo->slotDescription, sizeof pInfo->slotDescription, desc);
    pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "cps-middleware");
    pInfo->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | (present ? CKF_TOKEN_PRESENT : 0);
    pInfo->hardwareVersion.major = 1;
    pInfo->firmwareVersion.major = 1;
    return CKR_OK;
}

#define PIN_FLAGS                                                                                 \
    (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED | CKF_SO_PIN_COUNT_LOW | \
     CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_LOCKED | CKF_PROTECTED_AUTHENTICATION_PATH)

static CK_FLAGS counter_flags(int left, int max, CK_FLAGS low, CK_FLAGS final, CK_FLAGS locked)
{
    if (left <= 0)
        return locked;
    if (left == 1)
        return final | (max > 1 ? low : 0);
    return left < max ? low : 0;
}

CPS_EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
    ENTER();
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    cps_card *c;
    CK_RV rv = slot_ready(slotID, &c);
    if (rv != CKR_OK)
        return rv;
    /* SoftHSM rereads its token file here, and another SoftHSM process may be
     * rewriting it (a PIN check) or holding its own lock on it: SoftHSM then
     * answers CKR_TOKEN_NOT_RECOGNIZED (seen with 4 processes). Card processes
     * take turns on these calls and on PIN checks (LOCK_EX on card.state). */
    int turn = cps_state_lock_token(c) == 0;
    rv = c->f->C_GetTokenInfo(c->inner_slot, pInfo);
    if (turn)
        cps_state_unlock(c);
    if (rv == CKR_OK) {
        const cps_state *st = &c->st;
        pad(pInfo->label, sizeof pInfo->label, st->label);
        pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, st->manufacturer);
        pad(pInfo->model, sizeof pInfo->model, st->model);
        pad(pInfo->serialNumber, sizeof pInfo->serialNumber, st->serial);
        pInfo->flags &= ~(CK_FLAGS)PIN_FLAGS;
        pInfo->flags |= counter_flags(st->pin_tries_left, st->pin_tries_max, CKF_USER_PIN_COUNT_LOW,
                                      CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
        pInfo->flags |= counter_flags(st->puk_tries_left, st->puk_tries_max, CKF_SO_PIN_COUNT_LOW,
                                      CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
        if (st->pin_pad)
            pInfo->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
        if (st->generation[0]) {
            /* what the ANS module reports for a CPS3 (cards/profiles.py): not SoftHSM's */
            pInfo->flags &= (CK_FLAGS)(PIN_FLAGS);
            pInfo->flags |= CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED |
                            CKF_TOKEN_INITIALIZED;
            pInfo->ulMinPinLen = 4;
            pInfo->ulMaxPinLen = 8;
            pInfo->hardwareVersion.major = pInfo->hardwareVersion.minor = 0;
            pInfo->firmwareVersion.major = pInfo->firmwareVersion.minor = 0;
        }
    }
    slot_done(c);
    return rv;
}

CPS_EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                                    CK_ULONG_PTR pulCount)
{
    ENTER();
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    cps_card *c;
    CK_RV rv = slot_ready(slotID, &c);
    if (rv != CKR_OK)
        return rv;
    CK_ULONG n = 0;
    CK_MECHANISM_TYPE *all = NULL;
    rv = c->f->C_GetMechanismList(c->inner_slot, NULL, &n);
    if (rv == CKR_OK) {
        all = calloc(n ? n : 1, sizeof *all);
        rv = all ? c->f->C_GetMechanismList(c->inner_slot, all, &n) : CKR_HOST_MEMORY;
    }
    if (rv == CKR_OK) {
        CK_ULONG m = 0;
        for (CK_ULONG i = 0; i < n; i++)
            if (mech_allowed(&c->st, all[i]))
                all[m++] = all[i];
        if (pMechanismList && *pulCount < m)
            rv = CKR_BUFFER_TOO_SMALL;
        else if (pMechanismList)
            memcpy(pMechanismList, all, sizeof *all * m);
        *pulCount = m;
    }
    free(all);
    slot_done(c);
    return rv;
}

CPS_EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
    ENTER();
    cps_card *c;
    CK_RV rv = slot_ready(slotID, &c);
    if (rv != CKR_OK)
        return rv;
    rv = mech_allowed(&c->st, type) ? c->f->C_GetMechanismInfo(c->inner_slot, type, pInfo)
                                    : CKR_MECHANISM_INVALID;
    /* a card does its key operations in hardware (as the ANS module says for
     * CKM_RSA_PKCS; pkcs11-tool --test skips signatures without CKF_HW) */
    if (rv == CKR_OK && pInfo && c->st.n_mechs >= 0)
        pInfo->flags |= CKF_HW;
    slot_done(c);
    return rv;
}

CPS_EXPORT CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
    ENTER();
    cps_card *c;
    CK_RV rv = slot_ready(slotID, &c);
    if (rv != CKR_OK)
        return rv;
    /* The SO PIN is the unblocking code (PUK): its counter is honoured as in
     * C_Login(CKU_SO); a blocked PUK refuses without wiping the token. */
    if (cps_state_lock_ex(c) != 0) {
        slot_done(c);
        return CKR_DEVICE_ERROR;
    }
    int left = c->st.puk_tries_left, max = c->st.puk_tries_max;
    if (left <= 0) {
        rv = CKR_PIN_LOCKED;
    } else if (cps_state_set_int(c, "puk_tries_left", left - 1) != 0) {
        rv = CKR_DEVICE_ERROR;
    } else {
        rv = c->f->C_InitToken(c->inner_slot, pPin, ulPinLen, pLabel);
        if (rv == CKR_PIN_INCORRECT) {
            if (left - 1 <= 0)
                rv = CKR_PIN_LOCKED;
        } else {
            cps_state_set_int(c, "puk_tries_left", rv == CKR_OK ? max : left);
        }
    }
    cps_state_unlock(c);
    slot_done(c);
    return rv;
}

/* ---------------------------------------------------------------- PINs */

enum { WHO_USER, WHO_SO };

/* Runs one PIN verification against a try counter, like the card does: a
 * locked counter refuses without asking SoftHSM; a wrong PIN spends a try; a
 * right one restores the counter. The state file stays locked (flock EX, and
 * c->mu for this process's threads) for the whole check, so that two
 * processes cannot both spend the last try. */
typedef CK_RV (*pin_call)(sref *s, void *ctx);

static CK_RV counted(CK_SESSION_HANDLE h, int who, pin_call call, void *ctx)
{
    sref s;
    CK_RV rv = session_get(h, &s, 1);
    if (rv != CKR_OK)
        return rv;
    cps_card *c = s.c;
    if (cps_state_lock_ex(c) != 0) {
        pthread_mutex_unlock(&c->mu);
        card_leave(c);
        return CKR_DEVICE_ERROR;
    }
    const char *left_key = who == WHO_USER ? "pin_tries_left" : "puk_tries_left";
    int left = who == WHO_USER ? c->st.pin_tries_left : c->st.puk_tries_left;
    int max = who == WHO_USER ? c->st.pin_tries_max : c->st.puk_tries_max;
    if (!card_present_locked(c)) {
        rv = CKR_DEVICE_REMOVED;
    } else if (left <= 0) {
        rv = CKR_PIN_LOCKED;
    } else if (cps_state_set_int(c, left_key, left - 1) != 0) {
        /* As a card does, spend the try before checking the PIN: if the counter
         * cannot be written, the PIN is not checked at all (fail closed). */
        rv = CKR_DEVICE_ERROR;
    } else {
        rv = call(&s, ctx);
        if (rv == CKR_PIN_INCORRECT) {
            cps_debug("card %s: %s wrong, %d tries left", c->id, left_key, left - 1);
            /* the wrong PIN that blocks the counter: CKR_PIN_LOCKED, as the ANS
             * module and OpenSC answer (the card says 69 83) */
            if (left - 1 <= 0)
                rv = CKR_PIN_LOCKED;
        } else {
            /* right PIN: full counter again; any other outcome spent no try */
            if (cps_state_set_int(c, left_key, rv == CKR_OK ? max : left) != 0 && rv == CKR_OK)
                rv = CKR_DEVICE_ERROR;
        }
    }
    cps_state_unlock(c);
    pthread_mutex_unlock(&c->mu);
    card_leave(c);
    return rv;
}

typedef struct {
    CK_USER_TYPE user;
    CK_UTF8CHAR_PTR pin;
    CK_ULONG len;
} login_ctx;

static CK_RV do_login(sref *s, void *p)
{
    login_ctx *l = p;
    CK_UTF8CHAR_PTR pin = l->pin;
    CK_ULONG len = l->len;
    if (!pin && s->c->st.pin_pad) {
        /* the simulated PIN pad: the holder "types" the PIN stored in the state */
        if (!s->c->st.pad_pin[0])
            return CKR_FUNCTION_CANCELED;
        pin = (CK_UTF8CHAR_PTR)s->c->st.pad_pin;
        len = strlen(s->c->st.pad_pin);
    }
    return s->f->C_Login(s->inner, l->user, pin, len);
}

CPS_EXPORT CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    ENTER();
    login_ctx l = {userType, pPin, ulPinLen};
    int who = userType == CKU_SO ? WHO_SO : WHO_USER; /* CKU_CONTEXT_SPECIFIC checks the user PIN */
    return counted(hSession, who, do_login, &l);
}

typedef struct {
    CK_UTF8CHAR_PTR old_pin, new_pin;
    CK_ULONG old_len, new_len;
} setpin_ctx;

static CK_RV do_setpin(sref *s, void *p)
{
    setpin_ctx *x = p;
    return s->f->C_SetPIN(s->inner, x->old_pin, x->old_len, x->new_pin, x->new_len);
}

CPS_EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,
                          CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen)
{
    ENTER();
    sref s;
    CK_RV rv = session_get(hSession, &s, 0);
    if (rv != CKR_OK)
        return rv;
    CK_SESSION_INFO info;
    rv = s.f->C_GetSessionInfo(s.inner, &info);
    card_leave(s.c);
    if (rv != CKR_OK)
        return rv;
    /* the old PIN is verified like a login: by the SO PIN (PUK) counter in an SO session */
    setpin_ctx x = {pOldPin, pNewPin, ulOldLen, ulNewLen};
    return counted(hSession, info.state == CKS_RW_SO_FUNCTIONS ? WHO_SO : WHO_USER, do_setpin, &x);
}

CPS_EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    ENTER();
    sref s;
    CK_RV rv = session_get(hSession, &s, 1);
    if (rv != CKR_OK)
        return rv;
    cps_card *c = s.c;
    rv = s.f->C_InitPIN(s.inner, pPin, ulPinLen);
    /* unblocking: a new user PIN set by the SO (PUK) restores the user counter */
    if (rv == CKR_OK && cps_state_lock_ex(c) == 0) {
        if (c->st.pin_tries_left != c->st.pin_tries_max)
            cps_state_set_int(c, "pin_tries_left", c->st.pin_tries_max);
        cps_state_unlock(c);
    }
    pthread_mutex_unlock(&c->mu);
    card_leave(c);
    return rv;
}

/* ------------------------------------------------------------- sessions */

CPS_EXPORT CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                               CK_SESSION_HANDLE_PTR phSession)
{
    ENTER();
    if (!phSession)
        return CKR_ARGUMENTS_BAD;
    sess *s = calloc(1, sizeof *s);
    if (!s)
        return CKR_HOST_MEMORY;
    cps_card *c;
    CK_RV rv = slot_ready(slotID, &c);
    if (rv != CKR_OK) {
        free(s);
        return rv;
    }
    /* SoftHSM does not call notification callbacks; ours would need a trampoline */
    int turn = cps_state_lock_token(c) == 0; /* see C_GetTokenInfo */
    rv = c->f->C_OpenSession(c->inner_slot, flags, pApplication, NULL, &s->inner);
    if (turn)
        cps_state_unlock(c);
    if (rv == CKR_OK) {
        s->card = c;
        s->insertions = c->st.insertions;
        s->epoch = c->epoch;
        pthread_mutex_lock(&g_lock);
        s->h = g_next_handle++;
        s->next = *bucket(s->h);
        *bucket(s->h) = s;
        pthread_mutex_unlock(&g_lock);
        *phSession = s->h;
    } else {
        free(s);
    }
    int pad_now = rv == CKR_OK && c->st.pin_pad && c->st.pad_auto_login;
    slot_done(c);
    if (pad_now) {
        /* pad_auto_login: the reader asks for the PIN on its keypad as soon as an
         * application opens the card (browsers that never send C_Login(NULL)
         * themselves, e.g. Chromium, whose own PIN dialog a headless run cannot
         * answer). Counted like any login; a failure leaves a public session. */
        CK_SESSION_INFO info;
        if (C_GetSessionInfo(*phSession, &info) == CKR_OK && (info.state == CKS_RO_PUBLIC_SESSION || info.state == CKS_RW_PUBLIC_SESSION))
            cps_debug("card %s: PIN pad login on open: 0x%lx", c->id, (unsigned long)C_Login(*phSession, CKU_USER, NULL, 0));
    }
    return rv;
}

static int forget_session(CK_SESSION_HANDLE h)
{
    pthread_mutex_lock(&g_lock);
    int removed = sess_remove_locked(h);
    pthread_mutex_unlock(&g_lock);
    return removed;
}

CPS_EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
    ENTER();
    sref s;
    CK_RV rv = session_get(hSession, &s, 0);
    if (rv == CKR_SESSION_HANDLE_INVALID) {
        int known = forget_session(hSession);
        /* a session the card's removal already closed: closing it again is harmless */
        return known ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
    }
    if (rv == CKR_DEVICE_REMOVED) {
        forget_session(hSession);
        return CKR_OK;
    }
    if (rv != CKR_OK)
        return rv;
    /* Only the thread that takes the handle out of the table closes the inner
     * session: a second close of the same inner handle (two threads closing one
     * session) could otherwise close a session opened meanwhile under a reused
     * handle (not SoftHSM 2.6, which never reuses one; see session_get). */
    if (!forget_session(hSession)) {
        card_leave(s.c);
        return CKR_SESSION_HANDLE_INVALID;
    }
    rv = s.f->C_CloseSession(s.inner);
    card_leave(s.c);
    return rv == CKR_SESSION_HANDLE_INVALID ? CKR_OK : rv;
}

CPS_EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
    ENTER();
    cps_card *c = slot_card(slotID);
    if (!c)
        return CKR_SLOT_ID_INVALID;
    pthread_rwlock_wrlock(&c->ops);
    pthread_mutex_lock(&c->mu);
    pthread_mutex_lock(&g_lock);
    sess_drop_all_locked(c);
    pthread_mutex_unlock(&g_lock);
    if (c->f && c->inner_init)
        c->f->C_CloseAllSessions(c->inner_slot);
    c->close_pending = 0;
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&c->ops);
    return CKR_OK;
}

CPS_EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
    ENTER();
    sref s;
    CK_RV rv = session_get(hSession, &s, 0);
    if (rv != CKR_OK)
        return rv;
    rv = s.f->C_GetSessionInfo(s.inner, pInfo);
    if (rv == CKR_OK)
        pInfo->slotID = s.c->slot_id;
    card_leave(s.c);
    return rv;
}

/* ----------------------------------------------- plain forwarding (generated) */

#define FWD(name, params, args)                          \
    CPS_EXPORT CK_RV name params                         \
    {                                                    \
        ENTER();                                         \
        sref s;                                          \
        CK_RV rv = session_get(hSession, &s, 0);         \
        if (rv != CKR_OK)                                \
            return rv;                                   \
        rv = s.f->name args;                             \
        card_leave(s.c);                                 \
        return rv;                                       \
    }

/* Operations whose mechanism must be in the card's allow-list. */
#define FWD_MECH(name, params, args)                                \
    CPS_EXPORT CK_RV name params                                    \
    {                                                               \
        ENTER();                                                    \
        if (!pMechanism)                                            \
            return CKR_ARGUMENTS_BAD;                               \
        sref s;                                                     \
        CK_RV rv = session_get(hSession, &s, 1);                    \
        if (rv != CKR_OK)                                           \
            return rv;                                              \
        int ok = mech_allowed(&s.c->st, pMechanism->mechanism);     \
        pthread_mutex_unlock(&s.c->mu);                             \
        rv = ok ? s.f->name args : CKR_MECHANISM_INVALID;           \
        card_leave(s.c);                                            \
        return rv;                                                  \
    }

/* Private-key operations: a real card takes 100-500 ms and does one at a time.
 * A call that only asks for the output length (NULL buffer) is not delayed. */
#define FWD_SLOW(name, params, args, outbuf)                           \
    CPS_EXPORT CK_RV name params                                       \
    {                                                                  \
        ENTER();                                                       \
        sref s;                                                        \
        CK_RV rv = session_get(hSession, &s, 0);                       \
        if (rv != CKR_OK)                                              \
            return rv;                                                 \
        if (!s.latency_ms || !(outbuf)) {                              \
            rv = s.f->name args;                                       \
        } else {                                                       \
            pthread_mutex_lock(&s.c->busy);                            \
            struct timespec ts = {(time_t)(s.latency_ms / 1000),       \
                                  (long)(s.latency_ms % 1000) * 1000000L}; \
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)         \
                ;                                                      \
            rv = s.f->name args;                                       \
            pthread_mutex_unlock(&s.c->busy);                          \
        }                                                              \
        card_leave(s.c);                                               \
        return rv;                                                     \
    }

FWD(C_GetOperationState, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen),
    (s.inner, pOperationState, pulOperationStateLen))
FWD(C_SetOperationState,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen,
     CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey),
    (s.inner, pOperationState, ulOperationStateLen, hEncryptionKey, hAuthenticationKey))
FWD(C_Logout, (CK_SESSION_HANDLE hSession), (s.inner))
FWD(C_CreateObject,
    (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject),
    (s.inner, pTemplate, ulCount, phObject))
FWD(C_CopyObject,
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
     CK_OBJECT_HANDLE_PTR phNewObject),
    (s.inner, hObject, pTemplate, ulCount, phNewObject))
FWD(C_DestroyObject, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject), (s.inner, hObject))
FWD(C_GetObjectSize, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize),
    (s.inner, hObject, pulSize))
FWD(C_GetAttributeValue,
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
    (s.inner, hObject, pTemplate, ulCount))
FWD(C_SetAttributeValue,
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
    (s.inner, hObject, pTemplate, ulCount))
FWD(C_FindObjectsInit, (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
    (s.inner, pTemplate, ulCount))
FWD(C_FindObjects,
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
     CK_ULONG_PTR pulObjectCount),
    (s.inner, phObject, ulMaxObjectCount, pulObjectCount))
FWD(C_FindObjectsFinal, (CK_SESSION_HANDLE hSession), (s.inner))

FWD_MECH(C_EncryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey),
         (s.inner, pMechanism, hKey))
FWD(C_Encrypt,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData,
     CK_ULONG_PTR pulEncryptedDataLen),
    (s.inner, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen))
FWD(C_EncryptUpdate,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
     CK_ULONG_PTR pulEncryptedPartLen),
    (s.inner, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen))
FWD(C_EncryptFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen),
    (s.inner, pLastEncryptedPart, pulLastEncryptedPartLen))
FWD_MECH(C_DecryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey),
         (s.inner, pMechanism, hKey))
FWD_SLOW(C_Decrypt,
         (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData,
          CK_ULONG_PTR pulDataLen),
         (s.inner, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen), pData)
FWD(C_DecryptUpdate,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
     CK_ULONG_PTR pulPartLen),
    (s.inner, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))
FWD_SLOW(C_DecryptFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen),
         (s.inner, pLastPart, pulLastPartLen), pLastPart)
FWD_MECH(C_DigestInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism), (s.inner, pMechanism))
FWD(C_Digest,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen),
    (s.inner, pData, ulDataLen, pDigest, pulDigestLen))
FWD(C_DigestUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen), (s.inner, pPart, ulPartLen))
FWD(C_DigestKey, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey), (s.inner, hKey))
FWD(C_DigestFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen),
    (s.inner, pDigest, pulDigestLen))
FWD_MECH(C_SignInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey),
         (s.inner, pMechanism, hKey))
FWD_SLOW(C_Sign,
         (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
          CK_ULONG_PTR pulSignatureLen),
         (s.inner, pData, ulDataLen, pSignature, pulSignatureLen), pSignature)
FWD(C_SignUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen), (s.inner, pPart, ulPartLen))
FWD_SLOW(C_SignFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen),
         (s.inner, pSignature, pulSignatureLen), pSignature)
FWD_MECH(C_SignRecoverInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey),
         (s.inner, pMechanism, hKey))
FWD_SLOW(C_SignRecover,
         (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
          CK_ULONG_PTR pulSignatureLen),
         (s.inner, pData, ulDataLen, pSignature, pulSignatureLen), pSignature)
FWD_MECH(C_VerifyInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey),
         (s.inner, pMechanism, hKey))
FWD(C_Verify,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen),
    (s.inner, pData, ulDataLen, pSignature, ulSignatureLen))
FWD(C_VerifyUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen), (s.inner, pPart, ulPartLen))
FWD(C_VerifyFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen),
    (s.inner, pSignature, ulSignatureLen))
FWD_MECH(C_VerifyRecoverInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey),
         (s.inner, pMechanism, hKey))
FWD(C_VerifyRecover,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData,
     CK_ULONG_PTR pulDataLen),
    (s.inner, pSignature, ulSignatureLen, pData, pulDataLen))
FWD(C_DigestEncryptUpdate,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
     CK_ULONG_PTR pulEncryptedPartLen),
    (s.inner, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen))
FWD(C_DecryptDigestUpdate,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
     CK_ULONG_PTR pulPartLen),
    (s.inner, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))
FWD(C_SignEncryptUpdate,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
     CK_ULONG_PTR pulEncryptedPartLen),
    (s.inner, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen))
FWD(C_DecryptVerifyUpdate,
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
     CK_ULONG_PTR pulPartLen),
    (s.inner, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))
/* Key generation is not restricted: fixtures create the card's keys through the module. */
FWD(C_GenerateKey,
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
     CK_OBJECT_HANDLE_PTR phKey),
    (s.inner, pMechanism, pTemplate, ulCount, phKey))
FWD(C_GenerateKeyPair,
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPublicKeyTemplate,
     CK_ULONG ulPublicKeyAttributeCount, CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
     CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey),
    (s.inner, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount, pPrivateKeyTemplate,
     ulPrivateKeyAttributeCount, phPublicKey, phPrivateKey))
FWD_MECH(C_WrapKey,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
          CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen),
         (s.inner, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen))
FWD_MECH(C_UnwrapKey,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey,
          CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount,
          CK_OBJECT_HANDLE_PTR phKey),
         (s.inner, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, phKey))
FWD_MECH(C_DeriveKey,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,
          CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey),
         (s.inner, pMechanism, hBaseKey, pTemplate, ulAttributeCount, phKey))
FWD(C_SeedRandom, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen), (s.inner, pSeed, ulSeedLen))
FWD(C_GenerateRandom, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen),
    (s.inner, RandomData, ulRandomLen))

CPS_EXPORT CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE hSession)
{
    ENTER();
    return CKR_FUNCTION_NOT_PARALLEL;
}

CPS_EXPORT CK_RV C_CancelFunction(CK_SESSION_HANDLE hSession)
{
    ENTER();
    return CKR_FUNCTION_NOT_PARALLEL;
}

/* ------------------------------------------------------------ slot events */

/* A slot whose presence or insertion count changed since the last report; -1 if none. */
static long next_event(void)
{
    cps_card *cards[CPS_MAX_CARDS];
    rescan_cards(1);
    pthread_mutex_lock(&g_lock);
    int n = sorted_cards_locked(cards);
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < n; i++) {
        cps_card *c = cards[i];
        pthread_mutex_lock(&c->mu);
        card_refresh_locked(c);
        int present = card_present_locked(c);
        int changed = present != c->ev_present || (present && c->st.insertions != c->ev_insertions);
        if (changed) {
            c->ev_present = present;
            c->ev_insertions = c->st.insertions;
        }
        pthread_mutex_unlock(&c->mu);
        if (changed)
            return (long)c->slot_id;
    }
    return -1;
}

CPS_EXPORT CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
    ENTER();
    if (!pSlot || pReserved)
        return CKR_ARGUMENTS_BAD;
    for (;;) {
        long slot = next_event();
        if (slot >= 0) {
            *pSlot = (CK_SLOT_ID)slot;
            return CKR_OK;
        }
        if (flags & CKF_DONT_BLOCK)
            return CKR_NO_EVENT;
        struct timespec ts = {0, 50 * 1000000L}; /* state files are polled: no notification across processes */
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&g_lock);
        int alive = g_initialized;
        pthread_mutex_unlock(&g_lock);
        if (!alive)
            return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
}

/* ---------------------------------------------------------- function list */

static CK_FUNCTION_LIST g_functions = {
    {2, 40},
    C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo,
    C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession,
    C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout,
    C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue,
    C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate,
    C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest,
    C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal,
    C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal,
    C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate, C_SignEncryptUpdate,
    C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,
    C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent,
};

CPS_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (!ppFunctionList)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &g_functions;
    return CKR_OK;
}

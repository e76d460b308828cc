/* CPS test token: a PKCS#11 module that forwards to SoftHSM and behaves like a
 * CPS card (PIN/PUK try counters that lock, card removal, latency, mechanism
 * allow-list, ANS-like token info). Shared declarations of the three files:
 *   state.c    card.state: read under flock(LOCK_SH), counters changed in place under LOCK_EX
 *   softhsm.c  one private SoftHSM instance per card
 *   cpstoken.c the PKCS#11 entry points, slots, sessions, fork handling
 */
#ifndef CPSTOKEN_H
#define CPSTOKEN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

/* Debian's libp11-kit-dev: a complete, standalone Cryptoki 2.40 header. */
#include <p11-kit-1/p11-kit/pkcs11.h>

/* protected: exported, but our own function list binds to our functions even if
 * another PKCS#11 module sits earlier in the global symbol scope */
#define CPS_EXPORT __attribute__((visibility("protected")))
#define CPS_HIDDEN __attribute__((visibility("hidden")))

#define CPS_MAX_CARDS 256
#define CPS_MAX_MECHS 128
#define CPS_STATE_MAX 16384
#define CPS_PATH_MAX 4096

typedef struct {
    int valid; /* the file exists and was read */
    char label[33];
    char serial[17];
    char manufacturer[33];
    char model[17];
    char generation[16];
    int present;
    unsigned long insertions;
    int pin_tries_max, pin_tries_left;
    int puk_tries_max, puk_tries_left;
    unsigned long latency_ms;
    int n_mechs; /* -1: every mechanism */
    CK_MECHANISM_TYPE mechs[CPS_MAX_MECHS];
    int pin_pad;
    int pad_auto_login;        /* pin_pad: log in through the pad at C_OpenSession */
    char pad_pin[65];
    char softhsm_module[CPS_PATH_MAX];
    char reader[65]; /* slot description when set (a PC/SC reader name) */
} cps_state;

typedef struct cps_card {
    char id[256];
    char dir[CPS_PATH_MAX];
    char state_path[CPS_PATH_MAX];
    char conf_path[CPS_PATH_MAX];
    CK_SLOT_ID slot_id;

    /* mu guards everything below except busy; held across a PIN check so that
     * threads of one process take turns (flock does not order threads). */
    pthread_mutex_t mu;
    /* serialises private-key operations when latency_ms > 0, like one card chip */
    pthread_mutex_t busy;
    /* read-held around every call into the card's SoftHSM, write-held to close
     * its sessions when the card was pulled (SoftHSM frees a session that
     * another thread may be using) */
    pthread_rwlock_t ops;
    int close_pending;
    int reload_pending; /* new card files: restart the SoftHSM instance (it never rescans) */

    int dead; /* its directory is gone: resources given back, struct free for the next new card */
    int fd;          /* card.state, opened O_RDWR; -1 when closed */
    int known;       /* the state file was opened once */
    int lost;        /* ... and then vanished (deleted, or replaced by another file) */
    int replaced;    /* a new state file: a new card under the same name */
    unsigned long epoch; /* bumped when replaced: sessions from before are invalid */
    char raw[CPS_STATE_MAX];
    size_t raw_len;
    cps_state st;

    /* what this process last saw, to notice a removal / re-insertion */
    int seen_present;
    unsigned long seen_insertions;
    /* what C_WaitForSlotEvent last reported */
    int ev_present;
    unsigned long ev_insertions;

    /* the card's own SoftHSM instance */
    void *dl;
    int dl_fd;                 /* memfd holding the copy (kept open: its /proc name must stay unique) */
    CK_FUNCTION_LIST_PTR f;
    CK_FUNCTION_LIST own_list; /* SoftHSM's list rebound to the copy (softhsm.c) */
    int inner_init;
    CK_SLOT_ID inner_slot;
} cps_card;

/* state.c — every function expects c->mu held */
CPS_HIDDEN void cps_state_defaults(cps_card *c, cps_state *st);
CPS_HIDDEN int cps_state_refresh(cps_card *c);            /* 0 ok (st.valid says if the file exists) */
CPS_HIDDEN int cps_state_lock_ex(cps_card *c);            /* flock EX + re-read; 0 ok */
CPS_HIDDEN int cps_state_lock_token(cps_card *c);         /* flock EX without re-reading */
CPS_HIDDEN void cps_state_unlock(cps_card *c);
CPS_HIDDEN int cps_state_set_int(cps_card *c, const char *key, long value); /* under lock_ex */
CPS_HIDDEN void cps_state_close(cps_card *c);
CPS_HIDDEN int cps_state_parse_mech(const char *s, CK_MECHANISM_TYPE *out);

/* softhsm.c — expects c->mu held */
CPS_HIDDEN CK_RV cps_softhsm_load(cps_card *c);      /* loads + initialises this card's instance */
CPS_HIDDEN void cps_softhsm_finalize(cps_card *c);   /* C_Finalize on the instance (kept loaded) */
CPS_HIDDEN void cps_softhsm_abandon(cps_card *c);    /* forked child: forget the instance without calling it */
CPS_HIDDEN extern pthread_mutex_t cps_env_lock;

CPS_HIDDEN void cps_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

/* One private SoftHSM instance per card.
 *
 * SoftHSM 2.6 keeps its state in process-wide singletons, reads SOFTHSM2_CONF
 * only in C_Initialize and never rescans its token directory afterwards, so
 * one instance can serve only the cards it saw at start-up. Each card gets its
 * own copy of libsofthsm2.so instead: the file is copied into a memfd and
 * dlopen()ed (RTLD_LOCAL) from /proc/self/fd/N. A distinct file is a distinct
 * object for the dynamic linker, with its own globals; its dependencies
 * (libcrypto, libstdc++, libc) stay shared, which they tolerate.
 *
 * dlmopen(LM_ID_NEWLM) was tried first: every namespace gets its own libc,
 * libstdc++ and libcrypto, the static TLS block runs out after 11 namespaces
 * in a small C program (fewer inside Python), and the process crashed at exit
 * in OPENSSL_cleanup when the application had not called C_Finalize.
 */
#include "cpstoken.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

pthread_mutex_t cps_env_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const default_paths[] = {
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    NULL,
};

static int copy_fd(int src, int dst, off_t size)
{
    off_t off = 0;
    while (off < size) {
        ssize_t n = sendfile(dst, src, &off, (size_t)(size - off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
    }
    return 0;
}

/* A private copy of the library, as an fd that stays open (its /proc/self/fd/N
 * name identifies the loaded object; a reused number would alias it). */
static int private_copy(const char *path)
{
    int src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return -1;
    struct stat st;
    int fd = -1;
    if (fstat(src, &st) == 0) {
        fd = memfd_create("cpstoken-softhsm", MFD_CLOEXEC);
        if (fd < 0) {
            /* no memfd: an unlinked temporary file works the same way */
            char tmpl[] = "/tmp/cpstoken-softhsm-XXXXXX";
            fd = mkostemp(tmpl, O_CLOEXEC);
            if (fd >= 0)
                unlink(tmpl);
        }
        if (fd >= 0 && copy_fd(src, fd, st.st_size) != 0) {
            close(fd);
            fd = -1;
        }
    }
    close(src);
    return fd;
}

/* True when some PKCS#11 entry point is in the process's global scope (the
 * executable, its dependencies, objects loaded RTLD_GLOBAL). dlsym(RTLD_DEFAULT)
 * cannot tell: called from this module it searches the module's own local scope
 * too, so it always found our own C_GetFunctionList and every copy was loaded
 * RTLD_DEEPBIND. The handle of the main program searches the global scope only. */
static int pkcs11_in_global_scope(void)
{
    void *global = dlopen(NULL, RTLD_LAZY);
    if (!global)
        return 1; /* cannot tell: keep the copy on its own symbols */
    int found = dlsym(global, "C_GetFunctionList") != NULL || dlsym(global, "C_Initialize") != NULL;
    dlclose(global);
    return found;
}

/* Every entry of *list taken from the copy itself (dlsym on its handle searches
 * the copy first), whatever the global scope holds. */
static void rebind_list(void *dl, CK_FUNCTION_LIST *list)
{
#define CPS_REBIND(name)                          \
    do {                                          \
        void *sym = dlsym(dl, #name);             \
        if (sym)                                  \
            list->name = (CK_##name)sym;          \
    } while (0)
    CPS_REBIND(C_Initialize); CPS_REBIND(C_Finalize); CPS_REBIND(C_GetInfo);
    CPS_REBIND(C_GetFunctionList); CPS_REBIND(C_GetSlotList); CPS_REBIND(C_GetSlotInfo);
    CPS_REBIND(C_GetTokenInfo); CPS_REBIND(C_GetMechanismList); CPS_REBIND(C_GetMechanismInfo);
    CPS_REBIND(C_InitToken); CPS_REBIND(C_InitPIN); CPS_REBIND(C_SetPIN);
    CPS_REBIND(C_OpenSession); CPS_REBIND(C_CloseSession); CPS_REBIND(C_CloseAllSessions);
    CPS_REBIND(C_GetSessionInfo); CPS_REBIND(C_GetOperationState); CPS_REBIND(C_SetOperationState);
    CPS_REBIND(C_Login); CPS_REBIND(C_Logout); CPS_REBIND(C_CreateObject);
    CPS_REBIND(C_CopyObject); CPS_REBIND(C_DestroyObject); CPS_REBIND(C_GetObjectSize);
    CPS_REBIND(C_GetAttributeValue); CPS_REBIND(C_SetAttributeValue); CPS_REBIND(C_FindObjectsInit);
    CPS_REBIND(C_FindObjects); CPS_REBIND(C_FindObjectsFinal); CPS_REBIND(C_EncryptInit);
    CPS_REBIND(C_Encrypt); CPS_REBIND(C_EncryptUpdate); CPS_REBIND(C_EncryptFinal);
    CPS_REBIND(C_DecryptInit); CPS_REBIND(C_Decrypt); CPS_REBIND(C_DecryptUpdate);
    CPS_REBIND(C_DecryptFinal); CPS_REBIND(C_DigestInit); CPS_REBIND(C_Digest);
    CPS_REBIND(C_DigestUpdate); CPS_REBIND(C_DigestKey); CPS_REBIND(C_DigestFinal);
    CPS_REBIND(C_SignInit); CPS_REBIND(C_Sign); CPS_REBIND(C_SignUpdate);
    CPS_REBIND(C_SignFinal); CPS_REBIND(C_SignRecoverInit); CPS_REBIND(C_SignRecover);
    CPS_REBIND(C_VerifyInit); CPS_REBIND(C_Verify); CPS_REBIND(C_VerifyUpdate);
    CPS_REBIND(C_VerifyFinal); CPS_REBIND(C_VerifyRecoverInit); CPS_REBIND(C_VerifyRecover);
    CPS_REBIND(C_DigestEncryptUpdate); CPS_REBIND(C_DecryptDigestUpdate);
    CPS_REBIND(C_SignEncryptUpdate); CPS_REBIND(C_DecryptVerifyUpdate); CPS_REBIND(C_GenerateKey);
    CPS_REBIND(C_GenerateKeyPair); CPS_REBIND(C_WrapKey); CPS_REBIND(C_UnwrapKey);
    CPS_REBIND(C_DeriveKey); CPS_REBIND(C_SeedRandom); CPS_REBIND(C_GenerateRandom);
    CPS_REBIND(C_GetFunctionStatus); CPS_REBIND(C_CancelFunction); CPS_REBIND(C_WaitForSlotEvent);
#undef CPS_REBIND
}

static CK_RV load_library(cps_card *c)
{
    const char *candidates[2] = {c->st.softhsm_module, NULL};
    const char *const *paths = c->st.softhsm_module[0] ? candidates : default_paths;
    for (; *paths; paths++) {
        if (access(*paths, R_OK) != 0)
            continue;
        int fd = private_copy(*paths);
        if (fd < 0) {
            cps_debug("cannot copy %s: %s", *paths, strerror(errno));
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
        /* SoftHSM's function list refers to its C_* symbols by name (interposable).
         * If some PKCS#11 module is in the global scope (ours loaded RTLD_GLOBAL,
         * an executable linked with one, or libp11-kit, which Chromium links),
         * those names bind to it: our own C_Initialize would call itself.
         * RTLD_DEEPBIND is not the cure: SoftHSM then calls libc's free() on
         * memory from the program's allocator (Chromium's PartitionAlloc, a
         * preloaded malloc) and the process aborts. The copy is loaded plainly
         * and its list rebuilt from dlsym(copy), which finds the copy's own. */
        void *dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            cps_debug("dlopen %s (copy of %s): %s", name, *paths, dlerror());
            close(fd);
            continue;
        }
        CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
        CK_FUNCTION_LIST_PTR f = NULL;
        if (!gfl || gfl(&f) != CKR_OK || !f) {
            cps_debug("%s: no PKCS#11 function list", *paths);
            dlclose(dl);
            close(fd);
            continue;
        }
        if (pkcs11_in_global_scope()) {
            c->own_list = *f;
            rebind_list(dl, &c->own_list);
            f = &c->own_list;
        }
        c->dl = dl;
        c->dl_fd = fd;
        c->f = f;
        cps_debug("card %s: SoftHSM copy of %s loaded", c->id, *paths);
        return CKR_OK;
    }
    return CKR_DEVICE_ERROR;
}

static CK_RV find_inner_slot(cps_card *c)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CK_RV rv = c->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK)
        return rv;
    if (n == 0)
        return CKR_DEVICE_ERROR;
    c->inner_slot = slots[0];
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (c->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && (ti.flags & CKF_TOKEN_INITIALIZED)) {
            c->inner_slot = slots[i];
            break;
        }
    }
    return CKR_OK;
}

CK_RV cps_softhsm_load(cps_card *c)
{
    if (c->f && c->inner_init)
        return CKR_OK;
    if (!c->dl) {
        CK_RV rv = load_library(c);
        if (rv != CKR_OK)
            return rv;
    }
    /* SoftHSM reads SOFTHSM2_CONF in C_Initialize only: point it at this card
     * for that call. OS locking makes the instance safe for concurrent callers. */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    pthread_mutex_lock(&cps_env_lock);
    const char *prev = getenv("SOFTHSM2_CONF");
    char *saved = prev ? strdup(prev) : NULL;
    setenv("SOFTHSM2_CONF", c->conf_path, 1);
    /* SoftHSM reads its token file here; another process may be rewriting it
     * during a PIN check (see C_GetTokenInfo in cpstoken.c) */
    int turn = cps_state_lock_token(c) == 0;
    CK_RV rv = c->f->C_Initialize(&args);
    if (saved) {
        setenv("SOFTHSM2_CONF", saved, 1);
        free(saved);
    } else {
        unsetenv("SOFTHSM2_CONF");
    }
    pthread_mutex_unlock(&cps_env_lock);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
        rv = CKR_OK;
    if (rv != CKR_OK) {
        if (turn)
            cps_state_unlock(c);
        cps_debug("card %s: SoftHSM C_Initialize: 0x%lx", c->id, rv);
        return CKR_DEVICE_ERROR;
    }
    c->inner_init = 1;
    rv = find_inner_slot(c);
    if (turn)
        cps_state_unlock(c);
    if (rv != CKR_OK) {
        cps_debug("card %s: no SoftHSM slot: 0x%lx", c->id, rv);
        c->f->C_Finalize(NULL);
        c->inner_init = 0;
        return CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

void cps_softhsm_finalize(cps_card *c)
{
    if (c->f && c->inner_init)
        c->f->C_Finalize(NULL);
    c->inner_init = 0;
}

void cps_softhsm_abandon(cps_card *c)
{
    /* After fork() the parent's instance may hold locks taken by threads that
     * do not exist here: leave it alone (leaked) and load a fresh copy. Its fd
     * stays open so that its /proc/self/fd name is never reused. */
    c->dl = NULL;
    c->f = NULL;
    c->inner_init = 0;
    c->dl_fd = -1;
}

/* card.state: key=value lines shared by every process using the card.
 * Readers take flock(LOCK_SH); writers (this module for the PIN/PUK counters,
 * cps_middleware.testing._tokenstate for the rest) take LOCK_EX and rewrite the
 * file in place, so the inode never changes while a process holds it open. */
#include "cpstoken.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mechnames.h"

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

void cps_state_defaults(cps_card *c, cps_state *st)
{
    memset(st, 0, sizeof *st);
    copy_field(st->label, sizeof st->label, c->id);
    copy_field(st->serial, sizeof st->serial, c->id);
    strcpy(st->manufacturer, "ANS");
    strcpy(st->generation, "CPS3");
    st->present = 1;
    st->pin_tries_max = 3;
    st->pin_tries_left = -1;
    st->puk_tries_max = 10;
    st->puk_tries_left = -1;
    st->n_mechs = -1;
}

int cps_state_parse_mech(const char *s, CK_MECHANISM_TYPE *out)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s + 2, &end, 16);
        if (errno || end == s + 2 || *end)
            return -1;
        *out = v;
        return 0;
    }
    for (size_t i = 0; i < sizeof cps_mech_names / sizeof cps_mech_names[0]; i++) {
        if (strcmp(cps_mech_names[i].name, s) == 0) {
            *out = cps_mech_names[i].value;
            return 0;
        }
    }
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static void parse_mechs(cps_state *st, char *v)
{
    st->n_mechs = 0;
    int any = 0;
    for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        any = 1;
        CK_MECHANISM_TYPE m;
        if (cps_state_parse_mech(tok, &m) != 0) {
            cps_debug("card.state: unknown mechanism %s ignored", tok);
            continue;
        }
        if (st->n_mechs < CPS_MAX_MECHS)
            st->mechs[st->n_mechs++] = m;
    }
    if (!any)
        st->n_mechs = -1; /* empty list: every mechanism */
}

static void parse(cps_card *c, cps_state *st)
{
    char buf[CPS_STATE_MAX + 1];
    memcpy(buf, c->raw, c->raw_len);
    buf[c->raw_len] = 0;
    cps_state_defaults(c, st);
    int model_set = 0;
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq)
            continue;
        *eq = 0;
        char *k = trim(line), *v = eq + 1;
        size_t vn = strlen(v);
        if (vn && v[vn - 1] == '\r')
            v[vn - 1] = 0;
        if (!strcmp(k, "label"))
            copy_field(st->label, sizeof st->label, v);
        else if (!strcmp(k, "serial"))
            copy_field(st->serial, sizeof st->serial, v);
        else if (!strcmp(k, "manufacturer"))
            copy_field(st->manufacturer, sizeof st->manufacturer, v);
        else if (!strcmp(k, "model")) {
            copy_field(st->model, sizeof st->model, v);
            model_set = st->model[0] != 0;
        } else if (!strcmp(k, "generation"))
            copy_field(st->generation, sizeof st->generation, trim(v));
        else if (!strcmp(k, "present"))
            st->present = atoi(v) != 0;
        else if (!strcmp(k, "insertions"))
            st->insertions = strtoul(v, NULL, 10);
        else if (!strcmp(k, "pin_tries_max"))
            st->pin_tries_max = atoi(v);
        else if (!strcmp(k, "pin_tries_left"))
            st->pin_tries_left = atoi(v);
        else if (!strcmp(k, "puk_tries_max"))
            st->puk_tries_max = atoi(v);
        else if (!strcmp(k, "puk_tries_left"))
            st->puk_tries_left = atoi(v);
        else if (!strcmp(k, "latency_ms"))
            st->latency_ms = strtoul(v, NULL, 10);
        else if (!strcmp(k, "mechanisms"))
            parse_mechs(st, v);
        else if (!strcmp(k, "pin_pad"))
            st->pin_pad = atoi(v) != 0;
        else if (!strcmp(k, "pad_auto_login"))
            st->pad_auto_login = atoi(v) != 0;
        else if (!strcmp(k, "pad_pin"))
            copy_field(st->pad_pin, sizeof st->pad_pin, v);
        else if (!strcmp(k, "softhsm_module"))
            copy_field(st->softhsm_module, sizeof st->softhsm_module, trim(v));
        else if (!strcmp(k, "reader"))
            copy_field(st->reader, sizeof st->reader, v);
    }
    if (!model_set)
        strcpy(st->model, strcmp(st->generation, "CPS4") == 0 ? "ChipDoc" : "IAS ECC");
    if (st->pin_tries_max < 1)
        st->pin_tries_max = 1;
    if (st->puk_tries_max < 1)
        st->puk_tries_max = 1;
    if (st->pin_tries_left < 0 || st->pin_tries_left > st->pin_tries_max)
        st->pin_tries_left = st->pin_tries_max;
    if (st->puk_tries_left < 0 || st->puk_tries_left > st->puk_tries_max)
        st->puk_tries_left = st->puk_tries_max;
    st->valid = 1;
}

static int open_fd(cps_card *c)
{
    if (c->fd >= 0) {
        /* a state file replaced or deleted behind our back: follow the path again */
        struct stat a;
        if (fstat(c->fd, &a) == 0 && a.st_nlink > 0)
            return 0;
        close(c->fd);
        c->fd = -1;
        c->lost = 1;
    }
    c->fd = open(c->state_path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0)
        c->fd = open(c->state_path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        c->lost = c->known;
        return -1;
    }
    if (c->lost) /* the card directory was deleted and made again (CpsTestCard.destroy/create) */
        c->replaced = 1;
    c->lost = 0;
    c->known = 1;
    return 0;
}

static ssize_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t r = pread(fd, buf + n, cap - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    return (ssize_t)n;
}

static void absorb(cps_card *c, const char *buf, size_t n)
{
    if (c->st.valid && n == c->raw_len && memcmp(buf, c->raw, n) == 0)
        return; /* unchanged: keep the parsed copy */
    memcpy(c->raw, buf, n);
    c->raw_len = n;
    parse(c, &c->st);
}

int cps_state_refresh(cps_card *c)
{
    char buf[CPS_STATE_MAX];
    if (open_fd(c) != 0) {
        c->st.valid = 0;
        c->raw_len = 0;
        return 0;
    }
    while (flock(c->fd, LOCK_SH) != 0)
        if (errno != EINTR)
            return -1;
    ssize_t n = read_all(c->fd, buf, sizeof buf);
    flock(c->fd, LOCK_UN);
    if (n < 0)
        return -1;
    absorb(c, buf, (size_t)n);
    return 0;
}

int cps_state_lock_ex(cps_card *c)
{
    char buf[CPS_STATE_MAX];
    if (open_fd(c) != 0)
        return -1;
    while (flock(c->fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return -1;
    ssize_t n = read_all(c->fd, buf, sizeof buf);
    if (n < 0) {
        flock(c->fd, LOCK_UN);
        return -1;
    }
    absorb(c, buf, (size_t)n);
    return 0;
}

int cps_state_lock_token(cps_card *c)
{
    if (open_fd(c) != 0)
        return -1;
    while (flock(c->fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

void cps_state_unlock(cps_card *c)
{
    if (c->fd >= 0)
        flock(c->fd, LOCK_UN);
}

/* Replace "key=..." (or append it) in the raw text and rewrite the file in place:
 * comments, unknown keys and the order of lines survive. */
int cps_state_set_int(cps_card *c, const char *key, long value)
{
    char out[CPS_STATE_MAX];
    size_t o = 0, klen = strlen(key);
    int done = 0;
    const char *p = c->raw, *end = c->raw + c->raw_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (!done && len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            int w = snprintf(out + o, sizeof out - o, "%s=%ld\n", key, value);
            if (w < 0 || (size_t)w >= sizeof out - o)
                return -1;
            o += (size_t)w;
            done = 1;
        } else {
            if (o + len + 1 >= sizeof out)
                return -1;
            memcpy(out + o, p, len);
            o += len;
            if (!nl)
                out[o++] = '\n';
        }
        p += len;
    }
    if (!done) {
        int w = snprintf(out + o, sizeof out - o, "%s=%ld\n", key, value);
        if (w < 0 || (size_t)w >= sizeof out - o)
            return -1;
        o += (size_t)w;
    }
    if (ftruncate(c->fd, 0) != 0)
        return -1;
    size_t done_bytes = 0;
    while (done_bytes < o) {
        ssize_t w = pwrite(c->fd, out + done_bytes, o - done_bytes, (off_t)done_bytes);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done_bytes += (size_t)w;
    }
    absorb(c, out, o);
    return 0;
}

void cps_state_close(cps_card *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->raw_len = 0;
    c->st.valid = 0;
}

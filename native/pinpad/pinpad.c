/*
 * cps_middleware/_ifdpinpad.so — a pcscd reader driver (IFD handler) for the
 * test bench: a virtual reader *with a PIN pad*.
 *
 * Cards connect to it exactly as to vsmartcard's vpcd (the card is a TCP
 * client of 127.0.0.1:<port>; messages are a big-endian uint16 length and
 * the bytes; one-byte messages 00/01/02/04 are power off/on/reset/get ATR;
 * longer ones are APDUs answered with the response), so every virtual card
 * of cps_middleware.testing works in it unchanged.
 *
 * What vpcd lacks and this reader adds is PC/SC part 10 secure PIN entry,
 * as a CCID PIN-pad reader does it: CM_IOCTL_GET_FEATURE_REQUEST lists
 * FEATURE_VERIFY_PIN_DIRECT and FEATURE_IFD_PIN_PROPERTIES; a
 * VERIFY_PIN_DIRECT request (PIN_VERIFY_STRUCTURE) makes the reader "read
 * the keypad", insert the digits into the APDU template as the structure
 * says (ASCII, BCD or binary; bit or byte positions; left or right
 * justified; optional PIN length field), send the APDU to the card and
 * return the card's answer — so the middleware (OpenSC, the ANS module)
 * never sees the PIN, as with a real PIN pad. No key typed: 64 00 (timeout);
 * cancel key: 64 01; too few or too many digits: 64 03 (PC/SC part 10).
 *
 * The keypad is the person at the reader, who lives in the test with the
 * virtual card: the reader asks the card's connection with the two-byte
 * message 10 <timeout seconds> and gets back the keys typed (ASCII digits,
 * empty for none before the timeout, 1B for the cancel key). vpcd never sends
 * a two-byte message and an APDU has at least four, so nothing else changes.
 *
 * reader.conf: DEVICENAME "<anything>:<port>" (or CHANNELID <port>), one
 * reader per entry. The digits are wiped from memory once sent.
 *
 * The few pcsc-lite IFD handler types and constants are written here (they
 * are the stable ABI of pcsc-lite's ifdhandler.h / reader.h) so that building
 * the package needs no pcsc-lite headers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef unsigned long DWORD;
typedef DWORD *PDWORD;
typedef DWORD *LPDWORD;
typedef unsigned char UCHAR;
typedef UCHAR *PUCHAR;
typedef char *LPSTR;
typedef long RESPONSECODE;
typedef struct {
    DWORD Protocol;
    DWORD Length;
} SCARD_IO_HEADER, *PSCARD_IO_HEADER;

#define IFD_SUCCESS 0
#define IFD_ERROR_TAG 600
#define IFD_ERROR_POWER_ACTION 608
#define IFD_COMMUNICATION_ERROR 612
#define IFD_NOT_SUPPORTED 614
#define IFD_ICC_PRESENT 615
#define IFD_ICC_NOT_PRESENT 616
#define IFD_ERROR_INSUFFICIENT_BUFFER 618
#define IFD_POWER_UP 500
#define IFD_POWER_DOWN 501
#define IFD_RESET 502
#define TAG_IFD_ATR 0x0303
#define TAG_IFD_SLOT_THREAD_SAFE 0x0FAC
#define TAG_IFD_THREAD_SAFE 0x0FAD
#define TAG_IFD_SLOTS_NUMBER 0x0FAE
#define TAG_IFD_SIMULTANEOUS_ACCESS 0x0FAF

#define SCARD_CTL_CODE(code) (0x42000000 + (code))
#define CM_IOCTL_GET_FEATURE_REQUEST SCARD_CTL_CODE(3400)
#define FEATURE_VERIFY_PIN_DIRECT 0x06
#define FEATURE_IFD_PIN_PROPERTIES 0x0A
#define CLASS2_IOCTL_MAGIC 0x330000
#define IOCTL_FEATURE(f) SCARD_CTL_CODE((f) + CLASS2_IOCTL_MAGIC)

#define MAX_READERS 8
#define MAX_ATR 33
#define DEFAULT_TIMEOUT 30 /* seconds, when bTimerOut is 0 */
#define MAX_DIGITS 16

enum { CTRL_OFF = 0, CTRL_ON = 1, CTRL_RESET = 2, CTRL_ATR = 4, CTRL_KEYPAD = 0x10 };

struct reader {
    int used;
    DWORD lun;
    unsigned short port;
    int listen_fd;
    int fd; /* the card's connection, -1 when no card */
    unsigned char atr[MAX_ATR];
    size_t atr_len;
    pthread_mutex_t lock;
};

static struct reader readers[MAX_READERS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static struct reader *
find(DWORD lun)
{
    for (int k = 0; k < MAX_READERS; k++)
        if (readers[k].used && readers[k].lun == lun)
            return &readers[k];
    return NULL;
}

static void
drop_card(struct reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->atr_len = 0;
}

/* --- the vpcd wire protocol ------------------------------------------------- */

static int
send_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int
recv_all(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int
send_msg(struct reader *r, const unsigned char *p, size_t n)
{
    unsigned char head[2] = {(unsigned char)(n >> 8), (unsigned char)n};
    if (n > 0xFFFF || send_all(r->fd, head, 2) < 0 || send_all(r->fd, p, n) < 0) {
        drop_card(r);
        return -1;
    }
    return 0;
}

/* The answer into buf (cap bytes); its length, or -1 (the card is gone). */
static long
recv_msg(struct reader *r, unsigned char *buf, size_t cap)
{
    unsigned char head[2];
    if (recv_all(r->fd, head, 2) < 0) {
        drop_card(r);
        return -1;
    }
    size_t n = ((size_t)head[0] << 8) | head[1];
    if (n > cap) {
        drop_card(r);
        return -1;
    }
    if (recv_all(r->fd, buf, n) < 0) {
        drop_card(r);
        return -1;
    }
    return (long)n;
}

static long
exchange(struct reader *r, const unsigned char *cmd, size_t n, unsigned char *buf, size_t cap)
{
    if (r->fd < 0 || send_msg(r, cmd, n) < 0)
        return -1;
    return recv_msg(r, buf, cap);
}

/* --- the IFD handler ---------------------------------------------------------- */

static RESPONSECODE
open_reader(DWORD lun, unsigned short port)
{
    pthread_mutex_lock(&table_lock);
    struct reader *r = find(lun);
    if (!r)
        for (int k = 0; k < MAX_READERS && !r; k++)
            if (!readers[k].used)
                r = &readers[k];
    if (!r) {
        pthread_mutex_unlock(&table_lock);
        return IFD_COMMUNICATION_ERROR;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0) {
        if (fd >= 0)
            close(fd);
        pthread_mutex_unlock(&table_lock);
        return IFD_COMMUNICATION_ERROR;
    }
    memset(r, 0, sizeof *r);
    r->used = 1;
    r->lun = lun;
    r->port = port;
    r->listen_fd = fd;
    r->fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_unlock(&table_lock);
    return IFD_SUCCESS;
}

RESPONSECODE
IFDHCreateChannel(DWORD Lun, DWORD Channel)
{
    if (Channel == 0 || Channel > 0xFFFF)
        return IFD_COMMUNICATION_ERROR;
    return open_reader(Lun, (unsigned short)Channel);
}

RESPONSECODE
IFDHCreateChannelByName(DWORD Lun, LPSTR DeviceName)
{
    const char *colon = DeviceName ? strrchr(DeviceName, ':') : NULL;
    char *end;
    unsigned long port = strtoul(colon ? colon + 1 : "", &end, 0);
    if (!colon || *end || port == 0 || port > 0xFFFF)
        return IFD_COMMUNICATION_ERROR;
    return open_reader(Lun, (unsigned short)port);
}

RESPONSECODE
IFDHCloseChannel(DWORD Lun)
{
    pthread_mutex_lock(&table_lock);
    struct reader *r = find(Lun);
    if (r) {
        pthread_mutex_lock(&r->lock);
        drop_card(r);
        close(r->listen_fd);
        r->used = 0;
        pthread_mutex_unlock(&r->lock);
        pthread_mutex_destroy(&r->lock);
    }
    pthread_mutex_unlock(&table_lock);
    return IFD_SUCCESS;
}

static int
present(struct reader *r)
{
    if (r->fd < 0) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return 0;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        r->fd = fd;
        return 1;
    }
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0) {
        unsigned char c;
        /* readable with nothing to read while idle: the card left */
        if ((p.revents & (POLLHUP | POLLERR)) ||
            recv(r->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
            drop_card(r);
            return 0;
        }
    }
    return 1;
}

RESPONSECODE
IFDHICCPresence(DWORD Lun)
{
    struct reader *r = find(Lun);
    if (!r)
        return IFD_COMMUNICATION_ERROR;
    pthread_mutex_lock(&r->lock);
    int yes = present(r);
    pthread_mutex_unlock(&r->lock);
    return yes ? IFD_ICC_PRESENT : IFD_ICC_NOT_PRESENT;
}

RESPONSECODE
IFDHPowerICC(DWORD Lun, DWORD Action, PUCHAR Atr, PDWORD AtrLength)
{
    struct reader *r = find(Lun);
    if (!r)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc = IFD_SUCCESS;
    pthread_mutex_lock(&r->lock);
    unsigned char ctrl;
    if (Action == IFD_POWER_DOWN) {
        ctrl = CTRL_OFF;
        if (r->fd >= 0)
            send_msg(r, &ctrl, 1);
        r->atr_len = 0;
        if (AtrLength)
            *AtrLength = 0;
    }
    else if (Action == IFD_POWER_UP || Action == IFD_RESET) {
        ctrl = Action == IFD_POWER_UP ? CTRL_ON : CTRL_RESET;
        unsigned char get = CTRL_ATR;
        long n;
        if (!present(r) || send_msg(r, &ctrl, 1) < 0 ||
            (n = exchange(r, &get, 1, r->atr, MAX_ATR)) <= 0) {
            rc = IFD_ERROR_POWER_ACTION;
        }
        else {
            r->atr_len = (size_t)n;
            if (Atr && AtrLength) {
                memcpy(Atr, r->atr, r->atr_len);
                *AtrLength = r->atr_len;
            }
        }
    }
    else {
        rc = IFD_NOT_SUPPORTED;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

RESPONSECODE
IFDHGetCapabilities(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
{
    struct reader *r = find(Lun);
    if (!r || !Length || !Value)
        return IFD_COMMUNICATION_ERROR;
    switch (Tag) {
    case TAG_IFD_ATR:
        pthread_mutex_lock(&r->lock);
        if (*Length < r->atr_len) {
            pthread_mutex_unlock(&r->lock);
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        }
        memcpy(Value, r->atr, r->atr_len);
        *Length = r->atr_len;
        pthread_mutex_unlock(&r->lock);
        return IFD_SUCCESS;
    case TAG_IFD_SLOTS_NUMBER:
        *Length = 1;
        Value[0] = 1;
        return IFD_SUCCESS;
    case TAG_IFD_SIMULTANEOUS_ACCESS:
        *Length = 1;
        Value[0] = MAX_READERS;
        return IFD_SUCCESS;
    case TAG_IFD_THREAD_SAFE:
    case TAG_IFD_SLOT_THREAD_SAFE:
        *Length = 1;
        Value[0] = 0;
        return IFD_SUCCESS;
    default:
        return IFD_ERROR_TAG;
    }
}

RESPONSECODE
IFDHSetCapabilities(DWORD Lun, DWORD Tag, DWORD Length, PUCHAR Value)
{
    return IFD_NOT_SUPPORTED;
}

RESPONSECODE
IFDHSetProtocolParameters(DWORD Lun, DWORD Protocol, UCHAR Flags, UCHAR PTS1, UCHAR PTS2,
                          UCHAR PTS3)
{
    return IFD_SUCCESS;
}

RESPONSECODE
IFDHTransmitToICC(DWORD Lun, SCARD_IO_HEADER SendPci, PUCHAR TxBuffer, DWORD TxLength,
                  PUCHAR RxBuffer, PDWORD RxLength, PSCARD_IO_HEADER RecvPci)
{
    struct reader *r = find(Lun);
    if (!r || !RxLength)
        return IFD_COMMUNICATION_ERROR;
    unsigned char buf[0x10000];
    pthread_mutex_lock(&r->lock);
    long n = exchange(r, TxBuffer, TxLength, buf, sizeof buf);
    pthread_mutex_unlock(&r->lock);
    if (n < 0) {
        *RxLength = 0;
        return IFD_COMMUNICATION_ERROR;
    }
    if ((DWORD)n > *RxLength) {
        *RxLength = 0;
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    }
    memcpy(RxBuffer, buf, (size_t)n);
    *RxLength = (DWORD)n;
    if (RecvPci)
        RecvPci->Protocol = SendPci.Protocol;
    return IFD_SUCCESS;
}

/* --- secure PIN entry (PC/SC part 10) ----------------------------------------- */

static void
put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Write the low `nbits` of v at bit offset `bit` (MSB first) of data[0..len). */
static int
put_bits(unsigned char *data, size_t len, size_t bit, unsigned nbits, unsigned v)
{
    if (bit + nbits > len * 8)
        return -1;
    for (unsigned k = 0; k < nbits; k++) {
        size_t at = bit + k;
        unsigned char mask = (unsigned char)(0x80 >> (at % 8));
        if (v & (1u << (nbits - 1 - k)))
            data[at / 8] |= mask;
        else
            data[at / 8] &= (unsigned char)~mask;
    }
    return 0;
}

static RESPONSECODE
status_word(PUCHAR out, DWORD cap, LPDWORD returned, unsigned char sw1, unsigned char sw2)
{
    if (cap < 2)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    out[0] = sw1;
    out[1] = sw2;
    *returned = 2;
    return IFD_SUCCESS;
}

static RESPONSECODE
verify_pin(struct reader *r, const unsigned char *in, DWORD in_len, PUCHAR out, DWORD cap,
           LPDWORD returned)
{
    if (in_len < 19)
        return IFD_COMMUNICATION_ERROR;
    unsigned timeout = in[0] ? in[0] : DEFAULT_TIMEOUT;
    unsigned fmt = in[2], block = in[3], lenfmt = in[4];
    unsigned max_digits = in[5], min_digits = in[6]; /* wPINMaxExtraDigit, little endian */
    uint32_t data_len = in[15] | (uint32_t)in[16] << 8 | (uint32_t)in[17] << 16 |
                        (uint32_t)in[18] << 24;
    if (data_len != in_len - 19 || data_len < 5 || data_len > 261)
        return IFD_COMMUNICATION_ERROR;
    unsigned char apdu[261];
    memcpy(apdu, in + 19, data_len);
    unsigned char *data = apdu + 5; /* the command data field */
    size_t dlen = data_len - 5;

    /* the person at the reader types the PIN */
    unsigned char ask[2] = {CTRL_KEYPAD, (unsigned char)(timeout > 255 ? 255 : timeout)};
    unsigned char keys[64];
    long n = exchange(r, ask, 2, keys, sizeof keys);
    if (n < 0)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc;
    if (n == 0) {
        rc = status_word(out, cap, returned, 0x64, 0x00); /* timeout */
        goto wipe;
    }
    if (n == 1 && keys[0] == 0x1B) {
        rc = status_word(out, cap, returned, 0x64, 0x01); /* cancel key */
        goto wipe;
    }
    for (long k = 0; k < n; k++)
        if (keys[k] < '0' || keys[k] > '9')
            return IFD_COMMUNICATION_ERROR;
    if ((min_digits && (unsigned)n < min_digits) || (max_digits && (unsigned)n > max_digits) ||
        n > MAX_DIGITS) {
        rc = status_word(out, cap, returned, 0x64, 0x03); /* too short / too long */
        goto wipe;
    }

    /* bmFormatString: b7 units (1 bytes, 0 bits), b6-3 PIN position, b2 right
     * justify, b1-0 format (0 binary, 1 BCD, 2 ASCII) */
    unsigned per = (fmt & 3) == 2 ? 8 : 4;
    size_t pos = ((fmt >> 3) & 0x0F) * ((fmt & 0x80) ? 8 : 1);
    size_t pin_bits = (size_t)n * per;
    size_t block_bits = (size_t)(block & 0x0F) * 8;
    if ((fmt & 4) && block_bits > pin_bits)
        pos += block_bits - pin_bits;
    /* no PIN block in the template (bmPINBlockString b3-0 = 0): the PIN is
     * the block; the reader makes room for it and sets Lc, as CCID readers do */
    if (!(block & 0x0F)) {
        size_t need = (pos + pin_bits + 7) / 8;
        if (need > dlen) {
            if (5 + need > sizeof apdu) {
                rc = IFD_COMMUNICATION_ERROR;
                goto wipe;
            }
            memset(data + dlen, 0, need - dlen);
            dlen = need;
            data_len = (uint32_t)(5 + dlen);
            apdu[4] = (unsigned char)dlen;
        }
    }
    for (long k = 0; k < n; k++) {
        unsigned d = keys[k] - '0';
        if (put_bits(data, dlen, pos + (size_t)k * per, per, per == 8 ? '0' + d : d) < 0) {
            rc = IFD_COMMUNICATION_ERROR;
            goto wipe;
        }
    }
    /* bmPINBlockString b7-4: bits of a PIN length field; bmPINLengthFormat:
     * b4 units (1 bytes, 0 bits), b3-0 its position */
    if (block >> 4) {
        size_t lpos = (lenfmt & 0x0F) * ((lenfmt & 0x10) ? 8 : 1);
        if (put_bits(data, dlen, lpos, block >> 4, (unsigned)n) < 0) {
            rc = IFD_COMMUNICATION_ERROR;
            goto wipe;
        }
    }
    unsigned char resp[258];
    long m = exchange(r, apdu, data_len, resp, sizeof resp);
    if (m < 0) {
        rc = IFD_COMMUNICATION_ERROR;
        goto wipe;
    }
    if ((DWORD)m > cap) {
        rc = IFD_ERROR_INSUFFICIENT_BUFFER;
        goto wipe;
    }
    memcpy(out, resp, (size_t)m);
    *returned = (DWORD)m;
    rc = IFD_SUCCESS;
wipe:
    explicit_bzero(keys, sizeof keys);
    explicit_bzero(apdu, sizeof apdu);
    return rc;
}

RESPONSECODE
IFDHControl(DWORD Lun, DWORD dwControlCode, PUCHAR TxBuffer, DWORD TxLength, PUCHAR RxBuffer,
            DWORD RxLength, LPDWORD pdwBytesReturned)
{
    struct reader *r = find(Lun);
    if (!r || !pdwBytesReturned)
        return IFD_COMMUNICATION_ERROR;
    *pdwBytesReturned = 0;
    if (dwControlCode == CM_IOCTL_GET_FEATURE_REQUEST) {
        if (RxLength < 12)
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        RxBuffer[0] = FEATURE_VERIFY_PIN_DIRECT;
        RxBuffer[1] = 4;
        put_be32(RxBuffer + 2, IOCTL_FEATURE(FEATURE_VERIFY_PIN_DIRECT));
        RxBuffer[6] = FEATURE_IFD_PIN_PROPERTIES;
        RxBuffer[7] = 4;
        put_be32(RxBuffer + 8, IOCTL_FEATURE(FEATURE_IFD_PIN_PROPERTIES));
        *pdwBytesReturned = 12;
        return IFD_SUCCESS;
    }
    if (dwControlCode == IOCTL_FEATURE(FEATURE_IFD_PIN_PROPERTIES)) {
        if (RxLength < 4)
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        /* wLcdLayout 0 (no display), bEntryValidationCondition 02 (OK key), bTimeOut2 0 */
        RxBuffer[0] = RxBuffer[1] = 0;
        RxBuffer[2] = 0x02;
        RxBuffer[3] = 0;
        *pdwBytesReturned = 4;
        return IFD_SUCCESS;
    }
    if (dwControlCode == IOCTL_FEATURE(FEATURE_VERIFY_PIN_DIRECT)) {
        pthread_mutex_lock(&r->lock);
        RESPONSECODE rc = r->fd < 0 ? IFD_ICC_NOT_PRESENT
                                    : verify_pin(r, TxBuffer, TxLength, RxBuffer, RxLength,
                                                 pdwBytesReturned);
        pthread_mutex_unlock(&r->lock);
        return rc;
    }
    return IFD_NOT_SUPPORTED;
}

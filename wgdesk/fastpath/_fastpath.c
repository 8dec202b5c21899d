/*
 * wgdesk.fastpath._fastpath — the compiled transport-data path under the Python engine.
 *
 * Only "seal or open these packets with this keypair" and the system calls around it live here;
 * every decision (which peer, which keypair, timers, rekeys, drops and their reasons) is taken by
 * wgdesk.proto.Device, which calls in once per run of packets, not once per packet. The
 * pure-Python path (wgdesk.proto alone) is the reference; tests/fastpath/test_differential.py
 * checks that both give byte-identical output.
 *
 * Types:
 *   Aead(key)        ChaCha20-Poly1305 through OpenSSL's EVP (no cipher is written here), the
 *                    drop-in for cryptography's ChaCha20Poly1305 in a keypair; wipe() frees the
 *                    contexts (OpenSSL cleanses their key material).
 *   ReplayWindow()   RFC 6479 window of 8128 counters, the same algorithm as proto/replay.py.
 *   Packets(cap)     a batch: one arena, each packet with room for the WireGuard header in front
 *                    and padding + tag behind, so sealing and opening work in place.
 *   Run              a range of a Packets after seal() (datagrams) or open() (IP packets); it is
 *                    valid only until the batch is refilled (generation check).
 * Functions:
 *   tun_read, tun_write (vnet header: TSO/USO superframes split here with checksums; TCP runs
 *   coalesced on write), udp_recv (UDP GRO split), udp_send (UDP GSO), seal, open.
 * With the offload flags off (the portable path, as macOS and Windows run it) every read, write,
 * recv and send is one packet per system call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <pthread.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define HEADROOM 16            /* type, receiver, counter in front of a plaintext */
#define TAILROOM 32            /* up to 15 bytes of padding and the 16-byte tag */
#define TAG_LEN 16
#define MAX_FRAME 65535
#define VNET_HDR_LEN 10
#define TRANSPORT_MIN 32       /* header + tag: a keepalive */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000
#define MAX_IOV 1024

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5

/* REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1 */
#define REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13))

/* Packet states (a slot's status). */
enum {
    ST_PLAIN = 0,     /* an IP packet from the TUN, not sealed */
    ST_SEALED = 1,    /* a transport datagram ready to send */
    ST_RAW = 2,       /* a datagram from UDP, not opened */
    ST_EXPIRED = 3,   /* counter at or past Reject-After-Messages */
    ST_BADTAG = 4,    /* did not authenticate */
    ST_REPLAYED = 5,  /* authenticated, counter seen or too old */
    ST_KEEPALIVE = 6, /* authenticated, empty */
    ST_DATA = 7,      /* authenticated, a valid IP packet (trimmed to its length) */
    ST_BADINNER = 8,  /* authenticated, not a valid IP packet */
    ST_DROPPED = 9,   /* refused by the core (source not allowed) */
};

typedef struct {
    uint32_t off;      /* packet start in the arena */
    uint32_t len;      /* packet length */
    uint32_t wire_len; /* datagram length as received */
    uint8_t status;
    uint8_t addr_len;  /* 0, sizeof(sockaddr_in) or sizeof(sockaddr_in6) */
    uint16_t pad_;
    struct sockaddr_in6 addr; /* source of a received datagram (an IPv4 one fits in front) */
} slot_t;

static PyObject *InvalidTag; /* cryptography.exceptions.InvalidTag, registered by the loader */

/* ---------------------------------------------------------------------------------------------- */
/* checksums                                                                                      */

static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    /*
     * Adds the one's-complement sum of p[0..n) (16-bit big-endian words, an odd last byte padded
     * with zero) to sum. RFC 1071 §2(B): the sum does not depend on byte order, so the data is
     * summed as native 32-bit words into 64 bits (no carry handling in the loop) and the folded
     * result swapped once. Only the last call over a packet may have an odd length.
     */
    uint64_t acc = 0;
    while (n >= 32) {
        uint32_t w[8];
        memcpy(w, p, 32);
        acc += (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
        p += 32;
        n -= 32;
    }
    while (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        acc += w;
        p += 4;
        n -= 4;
    }
    if (n) {
        uint32_t w = 0;
        memcpy(&w, p, n);
        acc += w;
    }
    while (acc >> 16)
        acc = (acc & 0xFFFF) + (acc >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    acc = ((acc & 0xFF) << 8) | (acc >> 8);
#endif
    return sum + acc;
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = (v >> 16) & 0xFF; p[2] = (v >> 8) & 0xFF; p[3] = v & 0xFF; }

static void ipv4_header_checksum(uint8_t *ip, size_t ihl)
{
    ip[10] = ip[11] = 0;
    put16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, ihl)));
}

/* Pseudo-header sum (addresses, protocol, L4 length), not folded. */
static uint64_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4_len)
{
    uint64_t sum = v6 ? csum_add(0, ip + 8, 32) : csum_add(0, ip + 12, 8);
    return sum + proto + (l4_len >> 16) + (l4_len & 0xFFFF);
}

/* ---------------------------------------------------------------------------------------------- */
/* Aead                                                                                           */

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
} AeadObject;

static void aead_free_contexts(AeadObject *self)
{
    /* EVP_CIPHER_CTX_free cleanses the provider context, key schedule included. */
    EVP_CIPHER_CTX_free(self->enc);
    EVP_CIPHER_CTX_free(self->dec);
    self->enc = self->dec = NULL;
}

static int Aead_init(AeadObject *self, PyObject *args, PyObject *kwds)
{
    Py_buffer key;
    if (!PyArg_ParseTuple(args, "y*:Aead", &key))
        return -1;
    if (key.len != 32) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "ChaCha20Poly1305 key must be 32 bytes");
        return -1;
    }
    aead_free_contexts(self);
    self->enc = EVP_CIPHER_CTX_new();
    self->dec = EVP_CIPHER_CTX_new();
    int ok = self->enc && self->dec
        && EVP_EncryptInit_ex(self->enc, EVP_chacha20_poly1305(), NULL, key.buf, NULL) == 1
        && EVP_DecryptInit_ex(self->dec, EVP_chacha20_poly1305(), NULL, key.buf, NULL) == 1;
    PyBuffer_Release(&key);
    if (!ok) {
        aead_free_contexts(self);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL refused ChaCha20-Poly1305");
        return -1;
    }
    return 0;
}

static void Aead_dealloc(AeadObject *self)
{
    aead_free_contexts(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Encrypt n bytes at in to out (may be equal) and write the tag at tag. */
static int aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t nonce[12], const uint8_t *ad, int adlen,
                     const uint8_t *in, int n, uint8_t *out, uint8_t *tag)
{
    int l = 0;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        return 0;
    if (adlen && EVP_EncryptUpdate(ctx, NULL, &l, ad, adlen) != 1)
        return 0;
    if (n && EVP_EncryptUpdate(ctx, out, &l, in, n) != 1)
        return 0;
    if (EVP_EncryptFinal_ex(ctx, out + n, &l) != 1)
        return 0;
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) == 1;
}

/* Decrypt n ciphertext bytes (tag follows them) at in to out; 1 when authentic. */
static int aead_open(EVP_CIPHER_CTX *ctx, const uint8_t nonce[12], const uint8_t *ad, int adlen,
                     const uint8_t *in, int n, uint8_t *out)
{
    int l = 0;
    uint8_t tag[TAG_LEN];
    memcpy(tag, in + n, TAG_LEN);
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        return 0;
    if (adlen && EVP_DecryptUpdate(ctx, NULL, &l, ad, adlen) != 1)
        return 0;
    if (n && EVP_DecryptUpdate(ctx, out, &l, in, n) != 1)
        return 0;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1)
        return 0;
    return EVP_DecryptFinal_ex(ctx, out + n, &l) == 1;
}

static int parse_aead_args(PyObject *args, const char *fmt, Py_buffer *nonce, Py_buffer *data, Py_buffer *ad)
{
    PyObject *ado = Py_None;
    if (!PyArg_ParseTuple(args, fmt, nonce, data, &ado))
        return 0;
    memset(ad, 0, sizeof(*ad));
    if (ado != Py_None && PyObject_GetBuffer(ado, ad, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(nonce);
        PyBuffer_Release(data);
        return 0;
    }
    if (nonce->len != 12 || data->len > INT32_MAX - TAG_LEN || ad->len > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "nonce must be 12 bytes");
        PyBuffer_Release(nonce);
        PyBuffer_Release(data);
        if (ad->obj)
            PyBuffer_Release(ad);
        return 0;
    }
    return 1;
}

static PyObject *Aead_encrypt(AeadObject *self, PyObject *args)
{
    Py_buffer nonce, data, ad;
    if (!parse_aead_args(args, "y*y*|O:encrypt", &nonce, &data, &ad))
        return NULL;
    PyObject *out = NULL;
    if (self->enc == NULL) {
        PyErr_SetString(PyExc_ValueError, "keypair wiped");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, data.len + TAG_LEN);
    if (out == NULL)
        goto done;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    if (!aead_seal(self->enc, nonce.buf, ad.buf, (int)ad.len, data.buf, (int)data.len, o, o + data.len)) {
        Py_CLEAR(out);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL encryption failed");
    }
done:
    PyBuffer_Release(&nonce);
    PyBuffer_Release(&data);
    if (ad.obj)
        PyBuffer_Release(&ad);
    return out;
}

static PyObject *Aead_decrypt(AeadObject *self, PyObject *args)
{
    Py_buffer nonce, data, ad;
    if (!parse_aead_args(args, "y*y*|O:decrypt", &nonce, &data, &ad))
        return NULL;
    PyObject *out = NULL;
    if (data.len < TAG_LEN || self->dec == NULL) {
        PyErr_SetNone(InvalidTag ? InvalidTag : PyExc_ValueError);
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, data.len - TAG_LEN);
    if (out == NULL)
        goto done;
    if (!aead_open(self->dec, nonce.buf, ad.buf, (int)ad.len, data.buf, (int)(data.len - TAG_LEN),
                   (uint8_t *)PyBytes_AS_STRING(out))) {
        Py_CLEAR(out);
        PyErr_SetNone(InvalidTag ? InvalidTag : PyExc_ValueError);
    }
done:
    PyBuffer_Release(&nonce);
    PyBuffer_Release(&data);
    if (ad.obj)
        PyBuffer_Release(&ad);
    return out;
}

static PyObject *Aead_wipe(AeadObject *self, PyObject *unused)
{
    aead_free_contexts(self);
    Py_RETURN_NONE;
}

static PyObject *Aead_get_wiped(AeadObject *self, void *closure)
{
    return PyBool_FromLong(self->enc == NULL);
}

static PyMethodDef Aead_methods[] = {
    {"encrypt", (PyCFunction)Aead_encrypt, METH_VARARGS, "encrypt(nonce, data, associated_data) -> ciphertext + tag"},
    {"decrypt", (PyCFunction)Aead_decrypt, METH_VARARGS, "decrypt(nonce, data, associated_data); raises InvalidTag"},
    {"wipe", (PyCFunction)Aead_wipe, METH_NOARGS, "Free the OpenSSL contexts (their key material is cleansed)."},
    {NULL},
};

static PyGetSetDef Aead_getset[] = {
    {"wiped", (getter)Aead_get_wiped, NULL, "True after wipe()", NULL},
    {NULL},
};

static PyTypeObject AeadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wgdesk.fastpath._fastpath.Aead",
    .tp_basicsize = sizeof(AeadObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChaCha20-Poly1305 (OpenSSL EVP) for one direction of a keypair.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Aead_init,
    .tp_dealloc = (destructor)Aead_dealloc,
    .tp_methods = Aead_methods,
    .tp_getset = Aead_getset,
};

/* ---------------------------------------------------------------------------------------------- */
/* ReplayWindow (RFC 6479; proto/replay.py is the reference)                                      */

#define RING_BLOCKS 128
#define BLOCK_BITS_LOG 6
#define BLOCK_BITS 64
#define WINDOW_SIZE (RING_BLOCKS * BLOCK_BITS - BLOCK_BITS) /* 8128 */

typedef struct {
    PyObject_HEAD
    uint64_t last;
    uint64_t ring[RING_BLOCKS];
} ReplayObject;

static int replay_check(ReplayObject *r, uint64_t counter)
{
    if (counter >= REJECT_AFTER_MESSAGES)
        return 0;
    counter += 1;
    uint64_t last = r->last;
    if (counter > last) {
        uint64_t block = counter >> BLOCK_BITS_LOG, current = last >> BLOCK_BITS_LOG;
        if (block != current) {
            if (block - current >= RING_BLOCKS) {
                memset(r->ring, 0, sizeof(r->ring));
            } else {
                for (uint64_t i = current + 1; i <= block; i++)
                    r->ring[i & (RING_BLOCKS - 1)] = 0;
            }
        }
        r->last = counter;
        r->ring[block & (RING_BLOCKS - 1)] |= UINT64_C(1) << (counter & (BLOCK_BITS - 1));
        return 1;
    }
    if (last - counter > WINDOW_SIZE)
        return 0;
    uint64_t *word = &r->ring[(counter >> BLOCK_BITS_LOG) & (RING_BLOCKS - 1)];
    uint64_t bit = UINT64_C(1) << (counter & (BLOCK_BITS - 1));
    if (*word & bit)
        return 0;
    *word |= bit;
    return 1;
}

static PyObject *Replay_check(ReplayObject *self, PyObject *arg)
{
    /* Negative or huge values are refused without changing anything, as in replay.py. */
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    if (overflow < 0 || (!overflow && v < 0))
        Py_RETURN_FALSE;
    uint64_t c;
    if (overflow > 0) {
        c = PyLong_AsUnsignedLongLong(arg);
        if (c == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
    } else {
        c = (uint64_t)v;
    }
    return PyBool_FromLong(replay_check(self, c));
}

static PyObject *Replay_reset(ReplayObject *self, PyObject *unused)
{
    self->last = 0;
    memset(self->ring, 0, sizeof(self->ring));
    Py_RETURN_NONE;
}

static PyMethodDef Replay_methods[] = {
    {"check", (PyCFunction)Replay_check, METH_O, "check(counter) -> bool: accept and record, or refuse"},
    {"reset", (PyCFunction)Replay_reset, METH_NOARGS, "Forget every counter seen."},
    {NULL},
};

static PyTypeObject ReplayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wgdesk.fastpath._fastpath.ReplayWindow",
    .tp_basicsize = sizeof(ReplayObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The receive replay window of one keypair (8128 counters).",
    .tp_new = PyType_GenericNew,
    .tp_methods = Replay_methods,
};

/* ---------------------------------------------------------------------------------------------- */
/* Packets: the batch arena                                                                       */

typedef struct {
    PyObject_HEAD
    uint8_t *buf;
    size_t cap, used;
    slot_t *slots;
    Py_ssize_t nslots, count;
    uint64_t gen;
    uint8_t *scratch; /* one TUN superframe before it is split */
    unsigned long long routed_back; /* packets of our own UDP port dropped by tun_read */
    int in_flight;                  /* jobs of a Writer that still read this arena (under its lock) */
} PacketsObject;

static PyTypeObject PacketsType;
static PyTypeObject RunType;

static int Packets_init(PacketsObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"capacity", "slots", NULL};
    Py_ssize_t cap = 1 << 20, nslots = 2048;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nn:Packets", kwlist, &cap, &nslots))
        return -1;
    if (cap < 2 * (MAX_FRAME + HEADROOM + TAILROOM) || cap > (1 << 30) || nslots < 1 || nslots > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "capacity must be 128 KiB .. 1 GiB, slots 1 .. 2^20");
        return -1;
    }
    PyMem_Free(self->buf);
    PyMem_Free(self->slots);
    PyMem_Free(self->scratch);
    self->buf = PyMem_Malloc(cap);
    self->slots = PyMem_Calloc(nslots, sizeof(slot_t));
    self->scratch = PyMem_Malloc(MAX_FRAME + VNET_HDR_LEN + 4);
    if (!self->buf || !self->slots || !self->scratch) {
        PyErr_NoMemory();
        return -1;
    }
    self->cap = cap;
    self->nslots = nslots;
    self->used = self->count = 0;
    return 0;
}

static void Packets_dealloc(PacketsObject *self)
{
    PyMem_Free(self->buf);
    PyMem_Free(self->slots);
    PyMem_Free(self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static void packets_clear(PacketsObject *p)
{
    /* callers check in_flight first (refill_refused) */
    p->used = 0;
    p->count = 0;
    p->gen++;
}

/* Room for one more packet of up to `size` bytes (with head- and tailroom); NULL when full. */
static slot_t *packets_reserve(PacketsObject *p, size_t size, uint8_t **data)
{
    if (p->count >= p->nslots || p->used + HEADROOM + size + TAILROOM > p->cap)
        return NULL;
    slot_t *s = &p->slots[p->count];
    memset(s, 0, sizeof(*s));
    s->off = (uint32_t)(p->used + HEADROOM);
    *data = p->buf + s->off;
    return s;
}

/* Commit the reserved slot with its final length. */
static void packets_commit(PacketsObject *p, slot_t *s, uint32_t len, uint8_t status)
{
    s->len = len;
    s->wire_len = len;
    s->status = status;
    /* 16-byte alignment for the next packet's header keeps the cipher's loads aligned */
    p->used = ((size_t)s->off + len + TAILROOM + 15) & ~(size_t)15;
    p->count++;
}

static int refill_refused(PacketsObject *p)
{
    /* A Writer still sends or writes from this arena: refilling it would send garbage or plaintext. */
    if (__atomic_load_n(&p->in_flight, __ATOMIC_ACQUIRE) > 0) {
        PyErr_SetString(PyExc_RuntimeError, "batch still in flight in a Writer (wait_idle first)");
        return 1;
    }
    return 0;
}

/* The slot a Python index argument names, or NULL with an exception set (not an int, or out of range). */
static slot_t *slot_at(PacketsObject *p, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= p->count) {
        PyErr_SetString(PyExc_IndexError, "packet index out of range");
        return NULL;
    }
    return &p->slots[i];
}

static int check_range(PacketsObject *p, Py_ssize_t start, Py_ssize_t end)
{
    if (start < 0 || end > p->count || start > end) {
        PyErr_SetString(PyExc_IndexError, "packet range out of bounds");
        return 0;
    }
    return 1;
}

static PyObject *Packets_append(PacketsObject *self, PyObject *arg)
{
    /* Add one packet (tests and the fuzz target fill batches this way). */
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    uint8_t *d;
    slot_t *s = b.len <= MAX_FRAME ? packets_reserve(self, b.len, &d) : NULL;
    if (s == NULL) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_OverflowError, "batch full or packet too large");
        return NULL;
    }
    memcpy(d, b.buf, b.len);
    packets_commit(self, s, (uint32_t)b.len, ST_PLAIN);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

static int endpoint_to_sockaddr(PyObject *endpoint, struct sockaddr_in6 *sa, socklen_t *salen, int *v6sock);

static PyObject *Packets_append_datagram(PacketsObject *self, PyObject *args)
{
    /* append_datagram(data, (host, port)): a received datagram with its source (tests, fuzzing). */
    Py_buffer b;
    PyObject *endpoint;
    if (!PyArg_ParseTuple(args, "y*O:append_datagram", &b, &endpoint))
        return NULL;
    struct sockaddr_in6 sa;
    socklen_t salen;
    int v6;
    if (!endpoint_to_sockaddr(endpoint, &sa, &salen, &v6)) {
        PyBuffer_Release(&b);
        return NULL;
    }
    uint8_t *d;
    slot_t *s = b.len <= MAX_FRAME ? packets_reserve(self, b.len, &d) : NULL;
    if (s == NULL) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_OverflowError, "batch full or datagram too large");
        return NULL;
    }
    memcpy(d, b.buf, b.len);
    memcpy(&s->addr, &sa, salen);
    s->addr_len = (uint8_t)salen;
    packets_commit(self, s, (uint32_t)b.len, ST_RAW);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

static PyObject *Packets_clear(PacketsObject *self, PyObject *unused)
{
    if (refill_refused(self))
        return NULL;
    packets_clear(self);
    Py_RETURN_NONE;
}

static PyObject *Packets_packet(PacketsObject *self, PyObject *arg)
{
    slot_t *s = slot_at(self, arg);
    if (s == NULL)
        return NULL;
    return PyBytes_FromStringAndSize((char *)self->buf + s->off, s->len);
}

static PyObject *Packets_status(PacketsObject *self, PyObject *arg)
{
    slot_t *s = slot_at(self, arg);
    if (s == NULL)
        return NULL;
    return PyLong_FromLong(s->status);
}

static PyObject *Packets_wire_len(PacketsObject *self, PyObject *arg)
{
    slot_t *s = slot_at(self, arg);
    if (s == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(s->wire_len);
}

static PyObject *Packets_drop(PacketsObject *self, PyObject *arg)
{
    /* The core refused an opened packet (its source is not allowed): it is not written. */
    slot_t *s = slot_at(self, arg);
    if (s == NULL)
        return NULL;
    s->status = ST_DROPPED;
    Py_RETURN_NONE;
}

static PyObject *Packets_inner_source(PacketsObject *self, PyObject *arg)
{
    /* The inner source address of an opened data packet (4 or 16 bytes). */
    slot_t *s = slot_at(self, arg);
    if (s == NULL)
        return NULL;
    const uint8_t *p = self->buf + s->off;
    if (s->status != ST_DATA)
        Py_RETURN_NONE;
    return (p[0] >> 4) == 4 ? PyBytes_FromStringAndSize((char *)p + 12, 4)
                            : PyBytes_FromStringAndSize((char *)p + 8, 16);
}

static Py_ssize_t Packets_len(PacketsObject *self) { return self->count; }

/* The Python form of a slot's source address, as socket.recvfrom gives it: (host, port). */
static PyObject *sockaddr_to_endpoint(const slot_t *s)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (s->addr_len == sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&s->addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (s->addr_len == sizeof(struct sockaddr_in6)) {
        inet_ntop(AF_INET6, &s->addr.sin6_addr, host, INET6_ADDRSTRLEN);
        if (s->addr.sin6_scope_id) {
            char name[IF_NAMESIZE];
            size_t n = strlen(host);
            host[n++] = '%';
            if (if_indextoname(s->addr.sin6_scope_id, name))
                strcpy(host + n, name);
            else
                snprintf(host + n, sizeof(host) - n, "%u", s->addr.sin6_scope_id);
        }
        return Py_BuildValue("(si)", host, ntohs(s->addr.sin6_port));
    }
    Py_RETURN_NONE;
}

static PyObject *Packets_routes(PacketsObject *self, PyObject *arg)
{
    /*
     * routes(mtu) -> [(dst, start, end), ...] over the plain packets of a TUN batch, in order:
     * consecutive packets to one destination address share a run; a packet the core must look at
     * alone (empty, not IPv4/IPv6, too short, longer than the MTU) is a run of its own with dst None.
     */
    long mtu = PyLong_AsLong(arg);
    if (mtu == -1 && PyErr_Occurred())
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t i = 0;
    while (i < self->count) {
        slot_t *s = &self->slots[i];
        const uint8_t *p = self->buf + s->off;
        uint32_t n = s->len;
        const uint8_t *dst = NULL;
        int dlen = 0;
        if (n > 0 && (long)n <= mtu) {
            if ((p[0] >> 4) == 4 && n >= 20) {
                dst = p + 16;
                dlen = 4;
            } else if ((p[0] >> 4) == 6 && n >= 40) {
                dst = p + 24;
                dlen = 16;
            }
        }
        Py_ssize_t j = i + 1;
        if (dst != NULL) {
            while (j < self->count) {
                slot_t *t = &self->slots[j];
                const uint8_t *q = self->buf + t->off;
                if (t->len == 0 || (long)t->len > mtu || (q[0] >> 4) != (p[0] >> 4) || t->len < (uint32_t)(dlen == 4 ? 20 : 40)
                    || memcmp(q + (dlen == 4 ? 16 : 24), dst, dlen) != 0)
                    break;
                j++;
            }
        }
        PyObject *item = dst ? Py_BuildValue("(y#nn)", dst, (Py_ssize_t)dlen, i, j) : Py_BuildValue("(Onn)", Py_None, i, j);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        i = j;
    }
    return out;
}

static int is_transport(const slot_t *s, const uint8_t *p)
{
    return s->len >= TRANSPORT_MIN && p[0] == 4 && p[1] == 0 && p[2] == 0 && p[3] == 0;
}

static PyObject *Packets_sessions(PacketsObject *self, PyObject *unused)
{
    /*
     * sessions() -> (pending, [(receiver, endpoint, start, end), ...]) over a UDP batch, in order:
     * consecutive transport messages to one receiver index from one source share a run; any other
     * datagram is a run of its own with receiver -1 (the core's handshake path). `pending` counts
     * the datagrams whose type is not transport data (the core's "handshakes in this batch").
     */
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t pending = 0;
    for (Py_ssize_t k = 0; k < self->count; k++) {
        const slot_t *s = &self->slots[k];
        const uint8_t *p = self->buf + s->off;
        if (!(s->len >= 4 && p[0] == 4 && p[1] == 0 && p[2] == 0 && p[3] == 0))
            pending++;
    }
    Py_ssize_t i = 0;
    while (i < self->count) {
        slot_t *s = &self->slots[i];
        const uint8_t *p = self->buf + s->off;
        long receiver = -1;
        Py_ssize_t j = i + 1;
        if (is_transport(s, p)) {
            receiver = (long)(p[4] | (p[5] << 8) | (p[6] << 16) | ((uint32_t)p[7] << 24));
            while (j < self->count) {
                slot_t *t = &self->slots[j];
                const uint8_t *q = self->buf + t->off;
                if (!is_transport(t, q) || memcmp(q + 4, p + 4, 4) != 0 || t->addr_len != s->addr_len
                    || memcmp(&t->addr, &s->addr, s->addr_len) != 0)
                    break;
                j++;
            }
        }
        PyObject *endpoint = sockaddr_to_endpoint(s);
        if (endpoint == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *item = Py_BuildValue("(lNnn)", receiver, endpoint, i, j);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        i = j;
    }
    return Py_BuildValue("(nN)", pending, out);
}

static PyMethodDef Packets_methods[] = {
    {"append", (PyCFunction)Packets_append, METH_O, "append(packet): add a plain packet"},
    {"append_datagram", (PyCFunction)Packets_append_datagram, METH_VARARGS, "append_datagram(data, (host, port))"},
    {"clear", (PyCFunction)Packets_clear, METH_NOARGS, "Empty the batch (earlier runs become invalid)."},
    {"packet", (PyCFunction)Packets_packet, METH_O, "packet(i) -> bytes"},
    {"status", (PyCFunction)Packets_status, METH_O, "status(i) -> int (ST_*)"},
    {"wire_len", (PyCFunction)Packets_wire_len, METH_O, "wire_len(i) -> datagram length as received"},
    {"drop", (PyCFunction)Packets_drop, METH_O, "drop(i): do not write this opened packet"},
    {"inner_source", (PyCFunction)Packets_inner_source, METH_O, "inner_source(i) -> bytes | None"},
    {"routes", (PyCFunction)Packets_routes, METH_O, "routes(mtu) -> [(dst | None, start, end)]"},
    {"sessions", (PyCFunction)Packets_sessions, METH_NOARGS, "sessions() -> (pending, [(receiver, endpoint, start, end)])"},
    {NULL},
};

static PyMemberDef Packets_members[] = {
    {"routed_back", T_ULONGLONG, offsetof(PacketsObject, routed_back), 0, "packets of our own UDP port dropped by tun_read"},
    {"in_flight", T_INT, offsetof(PacketsObject, in_flight), READONLY, "Writer jobs still reading this batch"},
    {NULL},
};

static PySequenceMethods Packets_as_sequence = {.sq_length = (lenfunc)Packets_len};

static PyTypeObject PacketsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wgdesk.fastpath._fastpath.Packets",
    .tp_basicsize = sizeof(PacketsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Packets(capacity=1 MiB, slots=2048): a batch of packets in one arena.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Packets_init,
    .tp_dealloc = (destructor)Packets_dealloc,
    .tp_methods = Packets_methods,
    .tp_members = Packets_members,
    .tp_as_sequence = &Packets_as_sequence,
};

/* ---------------------------------------------------------------------------------------------- */
/* Run                                                                                            */

typedef struct {
    PyObject_HEAD
    PacketsObject *packets;
    Py_ssize_t start, end;
    uint64_t gen;
    int sealed;             /* 1: datagrams (seal), 0: IP packets (open) */
    unsigned long long bytes; /* total length of the run's datagrams (sealed) */
} RunObject;

static void Run_dealloc(RunObject *self)
{
    Py_XDECREF(self->packets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int run_valid(RunObject *r)
{
    return r->packets->gen == r->gen && r->end <= r->packets->count;
}

static PyObject *Run_packets(RunObject *self, PyObject *unused)
{
    /* The run's datagrams (sealed) or IP packets to write (opened, ST_DATA only), as bytes. */
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (!run_valid(self))
        return out;
    for (Py_ssize_t i = self->start; i < self->end; i++) {
        slot_t *s = &self->packets->slots[i];
        if (self->sealed ? s->status != ST_SEALED : s->status != ST_DATA)
            continue;
        PyObject *b = PyBytes_FromStringAndSize((char *)self->packets->buf + s->off, s->len);
        if (b == NULL || PyList_Append(out, b) < 0) {
            Py_XDECREF(b);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(b);
    }
    return out;
}

static PyMethodDef Run_methods[] = {
    {"packets", (PyCFunction)Run_packets, METH_NOARGS, "packets() -> list[bytes]"},
    {NULL},
};

static PyMemberDef Run_members[] = {
    {"nbytes", T_ULONGLONG, offsetof(RunObject, bytes), READONLY, "total datagram bytes (sealed runs)"},
    {"start", T_PYSSIZET, offsetof(RunObject, start), READONLY, NULL},
    {"end", T_PYSSIZET, offsetof(RunObject, end), READONLY, NULL},
    {NULL},
};

static PyTypeObject RunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wgdesk.fastpath._fastpath.Run",
    .tp_basicsize = sizeof(RunObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Packets start..end of a batch, sealed or opened; valid until the batch is refilled.",
    .tp_dealloc = (destructor)Run_dealloc,
    .tp_methods = Run_methods,
    .tp_members = Run_members,
};

static RunObject *run_new(PacketsObject *p, Py_ssize_t start, Py_ssize_t end, int sealed)
{
    RunObject *r = PyObject_New(RunObject, &RunType);
    if (r == NULL)
        return NULL;
    Py_INCREF(p);
    r->packets = p;
    r->start = start;
    r->end = end;
    r->gen = p->gen;
    r->sealed = sealed;
    r->bytes = 0;
    return r;
}

/* ---------------------------------------------------------------------------------------------- */
/* seal / open                                                                                    */

static uint32_t padding_length(uint32_t size, uint32_t mtu)
{
    /* peer.padding_length: up to a multiple of 16, never past the MTU */
    uint32_t last = size;
    if (mtu == 0)
        return ((last + 15) & ~15u) - last;
    if (last > mtu)
        last %= mtu;
    uint32_t padded = (last + 15) & ~15u;
    if (padded > mtu)
        padded = mtu;
    return padded - last;
}

static PyObject *fp_seal(PyObject *mod, PyObject *args)
{
    /*
     * seal(aead, packets, start, end, counter, mtu, header_prefix) -> Run
     * Encrypts packets start..end in place with counters counter, counter+1, ...: each becomes
     * header_prefix (type ‖ receiver) ‖ counter ‖ AEAD(padded packet). The caller (the core)
     * has checked the keypair and advances its send counter by end - start.
     */
    AeadObject *aead;
    PacketsObject *p;
    Py_ssize_t start, end;
    unsigned long long counter;
    unsigned long mtu;
    Py_buffer prefix;
    if (!PyArg_ParseTuple(args, "O!O!nnKky*:seal", &AeadType, &aead, &PacketsType, &p, &start, &end, &counter,
                          &mtu, &prefix))
        return NULL;
    RunObject *run = NULL;
    if (prefix.len != 8) {
        PyErr_SetString(PyExc_ValueError, "header_prefix must be 8 bytes");
        goto done;
    }
    if (!check_range(p, start, end))
        goto done;
    if (aead->enc == NULL) {
        PyErr_SetString(PyExc_ValueError, "keypair wiped");
        goto done;
    }
    if (counter > REJECT_AFTER_MESSAGES || (uint64_t)(end - start) > REJECT_AFTER_MESSAGES - counter) {
        PyErr_SetString(PyExc_ValueError, "counter past Reject-After-Messages");
        goto done;
    }
    for (Py_ssize_t i = start; i < end; i++) {
        if (p->slots[i].status != ST_PLAIN) {
            PyErr_SetString(PyExc_ValueError, "packet already sealed or not from the TUN");
            goto done;
        }
    }
    run = run_new(p, start, end, 1);
    if (run == NULL)
        goto done;
    for (Py_ssize_t i = start; i < end; i++) {
        slot_t *s = &p->slots[i];
        uint8_t *d = p->buf + s->off;
        uint32_t n = s->len, pad = padding_length(n, (uint32_t)mtu);
        memset(d + n, 0, pad);
        uint8_t *h = d - HEADROOM;
        uint64_t c = counter + (uint64_t)(i - start);
        memcpy(h, prefix.buf, 8);
        for (int k = 0; k < 8; k++)
            h[8 + k] = (uint8_t)(c >> (8 * k));
        uint8_t nonce[12] = {0};
        memcpy(nonce + 4, h + 8, 8);
        if (!aead_seal(aead->enc, nonce, NULL, 0, d, (int)(n + pad), d, d + n + pad)) {
            Py_CLEAR(run);
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL encryption failed");
            goto done;
        }
        s->off -= HEADROOM;
        s->len = HEADROOM + n + pad + TAG_LEN;
        s->status = ST_SEALED;
        run->bytes += s->len;
    }
done:
    PyBuffer_Release(&prefix);
    return (PyObject *)run;
}

static PyObject *fp_open(PyObject *mod, PyObject *args)
{
    /*
     * open(aead, replay, packets, start, end) -> (run, auth_bytes, authenticated, nonempty, source)
     * For each transport datagram start..end (one receiver index): refuse a counter at or past
     * Reject-After-Messages, authenticate and decrypt in place, check the replay window, then check
     * the inner IP header (version, length; the packet is trimmed to its length). `auth_bytes`
     * sums the wire length of authenticated datagrams, `nonempty` counts authenticated non-empty
     * ones, and `source` is the common inner source address when every datagram became a valid
     * data packet with the same source (the core's one allowed-IPs check), else None: then the
     * core reads the statuses one by one.
     */
    AeadObject *aead;
    ReplayObject *replay;
    PacketsObject *p;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "O!O!O!nn:open", &AeadType, &aead, &ReplayType, &replay, &PacketsType, &p, &start,
                          &end))
        return NULL;
    if (!check_range(p, start, end))
        return NULL;
    for (Py_ssize_t i = start; i < end; i++) {
        if (p->slots[i].status != ST_RAW || !is_transport(&p->slots[i], p->buf + p->slots[i].off)) {
            PyErr_SetString(PyExc_ValueError, "not an unopened transport datagram");
            return NULL;
        }
    }
    unsigned long long auth_bytes = 0;
    Py_ssize_t authenticated = 0, nonempty = 0;
    int clean = 1;
    const uint8_t *src = NULL;
    int src_len = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        slot_t *s = &p->slots[i];
        uint8_t *d = p->buf + s->off;
        uint64_t c = 0;
        for (int k = 7; k >= 0; k--)
            c = (c << 8) | d[8 + k];
        if (c >= REJECT_AFTER_MESSAGES) {
            s->status = ST_EXPIRED;
            clean = 0;
            continue;
        }
        uint8_t nonce[12] = {0};
        memcpy(nonce + 4, d + 8, 8);
        int n = (int)s->len - HEADROOM - TAG_LEN;
        if (aead->dec == NULL || !aead_open(aead->dec, nonce, NULL, 0, d + HEADROOM, n, d + HEADROOM)) {
            s->status = ST_BADTAG;
            clean = 0;
            continue;
        }
        if (!replay_check(replay, c)) {
            s->status = ST_REPLAYED;
            clean = 0;
            continue;
        }
        authenticated++;
        auth_bytes += s->wire_len;
        s->off += HEADROOM;
        s->len = (uint32_t)n;
        if (n == 0) {
            s->status = ST_KEEPALIVE;
            clean = 0;
            continue;
        }
        nonempty++;
        uint8_t *ip = d + HEADROOM;
        uint32_t length;
        const uint8_t *this_src;
        int this_len;
        if ((ip[0] >> 4) == 4 && n >= 20) {
            length = get16(ip + 2);
            this_src = ip + 12;
            this_len = 4;
            if (length < 20)
                length = UINT32_MAX;
        } else if ((ip[0] >> 4) == 6 && n >= 40) {
            length = (uint32_t)get16(ip + 4) + 40;
            this_src = ip + 8;
            this_len = 16;
        } else {
            length = UINT32_MAX;
            this_src = NULL;
            this_len = 0;
        }
        if (length > (uint32_t)n) {
            s->status = ST_BADINNER;
            clean = 0;
            continue;
        }
        s->len = length;
        s->status = ST_DATA;
        if (src == NULL) {
            src = this_src;
            src_len = this_len;
        } else if (src_len != this_len || memcmp(src, this_src, this_len) != 0) {
            clean = 0;
        }
    }
    RunObject *run = run_new(p, start, end, 0);
    if (run == NULL)
        return NULL;
    PyObject *source;
    if (clean && src != NULL)
        source = PyBytes_FromStringAndSize((const char *)src, src_len);
    else
        source = Py_NewRef(Py_None);
    if (source == NULL) {
        Py_DECREF(run);
        return NULL;
    }
    return Py_BuildValue("(NKnnN)", run, auth_bytes, authenticated, nonempty, source);
}

/* ---------------------------------------------------------------------------------------------- */
/* TUN                                                                                            */

static int gone_errno(int e)
{
    return e == EBADFD || e == EIO || e == ENXIO || e == ENODEV;
}

/* Our own UDP datagram routed back into the tunnel (see engine/loop.py routed_back). */
static int routed_back(const uint8_t *p, uint32_t n, const uint8_t own_port[2])
{
    if (n < 48)
        return 0;
    if ((p[0] >> 4) == 4) {
        if (p[9] != 17 || (p[6] & 0x1F) || p[7])
            return 0;
        uint32_t ihl = (p[0] & 0x0F) * 4;
        return ihl + 2 <= n && p[ihl] == own_port[0] && p[ihl + 1] == own_port[1];
    }
    if ((p[0] >> 4) == 6)
        return p[6] == 17 && p[40] == own_port[0] && p[41] == own_port[1];
    return 0;
}

static void packets_add_checked(PacketsObject *p, slot_t *s, uint32_t len, const uint8_t own_port[2], int check_port)
{
    if (check_port && routed_back(p->buf + s->off, len, own_port)) {
        p->routed_back++;
        return;
    }
    packets_commit(p, s, len, ST_PLAIN);
}

/*
 * Split one superframe (virtio header + packet) into the batch. Returns 0 when it was handled
 * (added or dropped as malformed), -1 when the batch had no room (nothing added).
 */
static int split_frame(PacketsObject *p, const uint8_t *frame, size_t n, const uint8_t own_port[2], int check_port,
                       unsigned long long *malformed)
{
    if (n < VNET_HDR_LEN) {
        (*malformed)++;
        return 0;
    }
    uint8_t flags = frame[0], gso_type = frame[1] & 0x7F;
    uint16_t gso_size, csum_start, csum_offset;
    memcpy(&gso_size, frame + 4, 2);
    memcpy(&csum_start, frame + 6, 2);
    memcpy(&csum_offset, frame + 8, 2);
    const uint8_t *pkt = frame + VNET_HDR_LEN;
    size_t len = n - VNET_HDR_LEN;
    uint8_t *d = NULL;
    slot_t *s;
    if (gso_type == VIRTIO_NET_HDR_GSO_NONE) {
        if ((s = packets_reserve(p, len, &d)) == NULL)
            return -1;
        memcpy(d, pkt, len);
        if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            if ((size_t)csum_start + csum_offset + 2 > len) {
                (*malformed)++;
                return 0;
            }
            /* the field holds the pseudo-header sum; fold in everything from csum_start on */
            uint16_t c = (uint16_t)~csum_fold(csum_add(0, d + csum_start, len - csum_start));
            put16(d + csum_start + csum_offset, c ? c : 0xFFFF);
        }
        packets_add_checked(p, s, (uint32_t)len, own_port, check_port);
        return 0;
    }
    int tcp = gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || gso_type == VIRTIO_NET_HDR_GSO_TCPV6;
    int udp = gso_type == VIRTIO_NET_HDR_GSO_UDP_L4;
    if ((!tcp && !udp) || len < 20 || gso_size == 0) {
        (*malformed)++;
        return 0;
    }
    int v6 = (pkt[0] >> 4) == 6;
    if (!v6 && (pkt[0] >> 4) != 4) {
        (*malformed)++;
        return 0;
    }
    size_t l4 = csum_start; /* the transport header starts where the checksum starts */
    size_t ipmin = v6 ? 40 : (size_t)(pkt[0] & 0x0F) * 4;
    if ((!v6 && ipmin < 20) || l4 < ipmin || l4 + (tcp ? 20 : 8) > len) {
        (*malformed)++;
        return 0;
    }
    size_t l4hdr = tcp ? (size_t)(pkt[l4 + 12] >> 4) * 4 : 8;
    size_t hdr = l4 + l4hdr;
    if (l4hdr < (tcp ? 20u : 8u) || hdr > len) {
        (*malformed)++;
        return 0;
    }
    size_t payload = len - hdr;
    size_t segments = payload ? (payload + gso_size - 1) / gso_size : 1;
    /* all or nothing: the whole superframe must fit */
    if (p->count + (Py_ssize_t)segments > p->nslots
        || p->used + segments * (HEADROOM + hdr + gso_size + TAILROOM + 16) > p->cap)
        return -1;
    uint16_t ip_id = v6 ? 0 : get16(pkt + 4);
    uint32_t seq = tcp ? get32(pkt + l4 + 4) : 0;
    uint8_t tcp_flags = tcp ? pkt[l4 + 13] : 0;
    for (size_t k = 0; k < segments; k++) {
        size_t off = k * gso_size;
        size_t chunk = payload - off < gso_size ? payload - off : gso_size;
        size_t total = hdr + chunk;
        s = packets_reserve(p, total, &d);
        memcpy(d, pkt, hdr);
        memcpy(d + hdr, pkt + hdr + off, chunk);
        if (v6) {
            put16(d + 4, (uint16_t)(total - 40));
        } else {
            put16(d + 2, (uint16_t)total);
            put16(d + 4, (uint16_t)(ip_id + k));
            ipv4_header_checksum(d, ipmin);
        }
        uint8_t *t = d + l4;
        uint32_t l4len = (uint32_t)(total - l4);
        if (tcp) {
            put32(t + 4, seq + (uint32_t)off);
            uint8_t f = tcp_flags;
            if (k + 1 < segments)
                f &= (uint8_t)~0x09; /* FIN and PSH only on the last segment */
            if (k > 0)
                f &= (uint8_t)~0x80; /* CWR only on the first */
            t[13] = f;
            t[16] = t[17] = 0;
            uint16_t c = (uint16_t)~csum_fold(csum_add(pseudo_sum(d, v6, 6, l4len), t, l4len));
            put16(t + 16, c);
        } else {
            put16(t + 4, (uint16_t)l4len);
            t[6] = t[7] = 0;
            uint16_t c = (uint16_t)~csum_fold(csum_add(pseudo_sum(d, v6, 17, l4len), t, l4len));
            put16(t + 6, c ? c : 0xFFFF);
        }
        packets_add_checked(p, s, (uint32_t)total, own_port, check_port);
    }
    return 0;
}

static PyObject *fp_tun_read(PyObject *mod, PyObject *args)
{
    /*
     * tun_read(fd, packets, max_reads, vnet_hdr, own_port, af_header) -> (count, malformed)
     * Clears the batch and reads until the kernel has nothing more (EAGAIN), max_reads reads were
     * made or the batch is full. With vnet_hdr every read is a superframe behind a virtio header,
     * split here (TSO/USO) with fresh checksums; af_header strips the 4-byte address family of
     * macOS's utun. Datagrams of our own UDP port (own_port, 0 = no check) are dropped and counted
     * in packets.routed_back. Raises OSError for any error but EAGAIN (the caller treats EBADFD,
     * EIO, ENXIO, ENODEV as "interface deleted").
     */
    int fd, vnet, af;
    PacketsObject *p;
    Py_ssize_t max_reads;
    unsigned int port;
    if (!PyArg_ParseTuple(args, "iO!npIp:tun_read", &fd, &PacketsType, &p, &max_reads, &vnet, &port, &af))
        return NULL;
    if (refill_refused(p))
        return NULL;
    packets_clear(p);
    uint8_t own[2] = {(uint8_t)(port >> 8), (uint8_t)port};
    int check = port != 0;
    unsigned long long malformed = 0;
    for (Py_ssize_t r = 0; r < max_reads; r++) {
        ssize_t got;
        if (vnet) {
            if (p->count + GSO_MAX_SEGMENTS > p->nslots || p->used + 2 * (MAX_FRAME + 64 * (HEADROOM + TAILROOM + 80)) > p->cap)
                break;
            got = read(fd, p->scratch, MAX_FRAME + VNET_HDR_LEN);
        } else {
            uint8_t *d;
            slot_t *s = packets_reserve(p, MAX_FRAME + 4, &d);
            if (s == NULL)
                break;
            if (af) {
                struct iovec iov[2] = {{p->scratch, 4}, {d, MAX_FRAME}};
                got = readv(fd, iov, 2);
                got = got >= 4 ? got - 4 : (got < 0 ? got : 0);
            } else {
                got = read(fd, d, MAX_FRAME);
            }
            if (got >= 0) {
                packets_add_checked(p, s, (uint32_t)got, own, check);
                continue;
            }
        }
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (split_frame(p, p->scratch, (size_t)got, own, check, &malformed) < 0)
            malformed++; /* more segments than a batch holds (a tiny gso_size): dropped */
    }
    return Py_BuildValue("(nK)", p->count, malformed);
}

/* Flattened view of what goes to the TUN: pointers into arenas or bytes objects. */
typedef struct {
    const uint8_t *p;
    uint32_t n;
} chunk_t;

static int collect_tun_items(PyObject *items, chunk_t **out, Py_ssize_t *count)
{
    Py_ssize_t cap = 256, n = 0;
    chunk_t *c = PyMem_Malloc(cap * sizeof(chunk_t));
    if (c == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    Py_ssize_t m = PyList_GET_SIZE(items);
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *it = PyList_GET_ITEM(items, k);
        if (PyBytes_Check(it)) {
            if (n == cap && (c = PyMem_Realloc(c, (cap *= 2) * sizeof(chunk_t))) == NULL)
                goto nomem;
            c[n].p = (const uint8_t *)PyBytes_AS_STRING(it);
            c[n].n = (uint32_t)PyBytes_GET_SIZE(it);
            n++;
        } else if (Py_IS_TYPE(it, &RunType) && !((RunObject *)it)->sealed) {
            RunObject *r = (RunObject *)it;
            if (!run_valid(r))
                continue; /* the batch was refilled: nothing of it may be written */
            for (Py_ssize_t i = r->start; i < r->end; i++) {
                slot_t *s = &r->packets->slots[i];
                if (s->status != ST_DATA)
                    continue;
                if (n == cap && (c = PyMem_Realloc(c, (cap *= 2) * sizeof(chunk_t))) == NULL)
                    goto nomem;
                c[n].p = r->packets->buf + s->off;
                c[n].n = s->len;
                n++;
            }
        } else {
            PyMem_Free(c);
            PyErr_SetString(PyExc_TypeError, "tun_write items must be bytes or opened runs");
            return 0;
        }
    }
    *out = c;
    *count = n;
    return 1;
nomem:
    PyErr_NoMemory();
    return 0;
}

/* TCP coalescing for the vnet-header write (offload.py is the reference). */
typedef struct {
    int ip_len, tcp_len;
    const uint8_t *sig_a; /* compared region 1 */
} seg_info;

/* Parse an IPv4 (no options) or IPv6 (no extension headers) TCP segment that may join a run.
 * Returns 1 and fills ip_len, tcp_len, seq, flags when it is plain ACK or ACK|PSH with payload. */
static int tcp_segment(const chunk_t *c, int *ip_len, int *tcp_len, uint32_t *seq, uint8_t *flags)
{
    const uint8_t *p = c->p;
    uint32_t n = c->n;
    if (n > 40 && p[0] == 0x45) {
        if (p[9] != 6 || (get16(p + 6) & 0x3FFF))
            return 0;
        *ip_len = 20;
    } else if (n > 60 && (p[0] >> 4) == 6) {
        if (p[6] != 6)
            return 0;
        *ip_len = 40;
    } else {
        return 0;
    }
    const uint8_t *t = p + *ip_len;
    uint8_t off = t[12], f = t[13];
    if ((f != 0x10 && f != 0x18) || off < 0x50)
        return 0;
    *tcp_len = (off >> 4) * 4;
    if ((uint32_t)(*ip_len + *tcp_len) >= n)
        return 0;
    *seq = get32(t + 4);
    *flags = f;
    return 1;
}

/* Everything but sequence number, lengths and checksums equal (offload.py's "signature"). */
static int same_signature(const chunk_t *a, const chunk_t *b, int ip_len, int tcp_len)
{
    const uint8_t *p = a->p, *q = b->p;
    if (ip_len == 20) {
        /* TOS, flags/fragment, TTL, protocol, addresses */
        if (p[1] != q[1] || memcmp(p + 6, q + 6, 4) != 0 || memcmp(p + 12, q + 12, 8) != 0)
            return 0;
    } else {
        /* version/class/flow, next header, hop limit, addresses */
        if (memcmp(p, q, 4) != 0 || p[6] != q[6] || p[7] != q[7] || memcmp(p + 8, q + 8, 32) != 0)
            return 0;
    }
    const uint8_t *t = p + ip_len, *u = q + ip_len;
    if (q[0] != p[0])
        return 0;
    /* ports, ack, data offset, options */
    return memcmp(t, u, 4) == 0 && memcmp(t + 8, u + 8, 5) == 0 && memcmp(t + 20, u + 20, tcp_len - 20) == 0;
}

static int tun_writev(int fd, struct iovec *iov, int n, unsigned long long *failed)
{
    if (writev(fd, iov, n) < 0) {
        if (gone_errno(errno))
            return -1;
        (*failed)++;
    }
    return 0;
}

/* Write chunks to the TUN (no Python object is touched: callable without the GIL). Returns -1 with
 * errno set when the interface is gone. */
static int write_tun_chunks(int fd, const chunk_t *c, Py_ssize_t n, int vnet, int af, unsigned long long *writes,
                            unsigned long long *failed)
{
    static const uint8_t empty[VNET_HDR_LEN];
    struct iovec iov[MAX_IOV + 2];
    Py_ssize_t i = 0;
    while (i < n) {
        if (!vnet) {
            int k = 0;
            uint8_t afh[4] = {0, 0, 0, (c[i].n && (c[i].p[0] >> 4) == 6) ? 30 : 2};
            if (af) {
                iov[k].iov_base = afh;
                iov[k++].iov_len = 4;
            }
            iov[k].iov_base = (void *)c[i].p;
            iov[k++].iov_len = c[i].n;
            (*writes)++;
            if (tun_writev(fd, iov, k, failed) < 0)
                return -1;
            i++;
            continue;
        }
        int ip_len, tcp_len;
        uint32_t seq;
        uint8_t flags;
        Py_ssize_t j = i + 1;
        if (tcp_segment(&c[i], &ip_len, &tcp_len, &seq, &flags)) {
            uint32_t head = ip_len + tcp_len, seg = c[i].n - head, last = seg;
            uint32_t length = c[i].n, next = seq + seg;
            int pushed = flags & 0x08;
            while (j < n && j - i < MAX_IOV) {
                int il, tl;
                uint32_t sq;
                uint8_t fl;
                if (!tcp_segment(&c[j], &il, &tl, &sq, &fl) || il != ip_len || tl != tcp_len)
                    break;
                uint32_t size = c[j].n - head;
                if (sq != next || size > seg || last != seg || pushed || length + size > 65535
                    || !same_signature(&c[i], &c[j], ip_len, tcp_len))
                    break;
                length += size;
                last = size;
                pushed = fl & 0x08;
                next = sq + size;
                j++;
            }
            if (j - i > 1) {
                uint8_t vh[VNET_HDR_LEN], hd[120];
                memcpy(hd, c[i].p, head);
                hd[ip_len + 13] |= c[j - 1].p[ip_len + 13] & 0x08;
                int v6 = ip_len == 40;
                if (!v6) {
                    put16(hd + 2, (uint16_t)length);
                    ipv4_header_checksum(hd, 20);
                } else {
                    put16(hd + 4, (uint16_t)(length - 40));
                }
                put16(hd + ip_len + 16, csum_fold(pseudo_sum(hd, v6, 6, length - ip_len)));
                uint16_t hv[4] = {(uint16_t)head, (uint16_t)seg, (uint16_t)ip_len, 16};
                vh[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
                vh[1] = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
                memcpy(vh + 2, hv, 8);
                int k = 0;
                iov[k].iov_base = vh;
                iov[k++].iov_len = VNET_HDR_LEN;
                iov[k].iov_base = hd;
                iov[k++].iov_len = head;
                for (Py_ssize_t m = i; m < j; m++) {
                    iov[k].iov_base = (void *)(c[m].p + head);
                    iov[k++].iov_len = c[m].n - head;
                }
                (*writes)++;
                if (tun_writev(fd, iov, k, failed) < 0)
                    return -1;
                i = j;
                continue;
            }
        }
        iov[0].iov_base = (void *)empty;
        iov[0].iov_len = VNET_HDR_LEN;
        iov[1].iov_base = (void *)c[i].p;
        iov[1].iov_len = c[i].n;
        (*writes)++;
        if (tun_writev(fd, iov, 2, failed) < 0)
            return -1;
        i++;
    }
    return 0;
}

static PyObject *fp_tun_write(PyObject *mod, PyObject *args)
{
    /*
     * tun_write(fd, items, vnet_hdr, af_header) -> (writes, failed)
     * Writes bytes and opened runs (their ST_DATA packets) in order. With vnet_hdr, runs of one
     * TCP stream go to the kernel as one GSO_TCPV4/V6 packet ("checksum needed", the pseudo-header
     * sum in the checksum field); other packets behind an empty header. af_header prefixes macOS's
     * 4-byte address family. Raises OSError when the interface is gone.
     */
    int fd, vnet, af;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iO!pp:tun_write", &fd, &PyList_Type, &items, &vnet, &af))
        return NULL;
    chunk_t *c;
    Py_ssize_t n;
    if (!collect_tun_items(items, &c, &n))
        return NULL;
    unsigned long long writes = 0, failed = 0;
    int rc = write_tun_chunks(fd, c, n, vnet, af, &writes, &failed);
    PyMem_Free(c);
    if (rc < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(KK)", writes, failed);
}

/* ---------------------------------------------------------------------------------------------- */
/* UDP                                                                                            */

static PyObject *fp_udp_recv(PyObject *mod, PyObject *args)
{
    /*
     * udp_recv(fd, packets, max_datagrams, gro) -> count
     * Clears the batch and receives until EAGAIN (or any error: e.g. ECONNREFUSED from an earlier
     * ICMP error means nothing to read now), max_datagrams or a full batch. With gro one read may
     * hold several datagrams of one sender (UDP_GRO control message): they become separate
     * packets without a copy.
     */
    int fd, gro;
    PacketsObject *p;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "iO!np:udp_recv", &fd, &PacketsType, &p, &limit, &gro))
        return NULL;
    if (refill_refused(p))
        return NULL;
    packets_clear(p);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    while (p->count < limit) {
        uint8_t *d;
        slot_t *s = packets_reserve(p, MAX_FRAME, &d);
        if (s == NULL)
            break;
        struct sockaddr_in6 addr;
        struct iovec iov = {d, MAX_FRAME};
        struct msghdr msg = {0};
        msg.msg_name = &addr;
        msg.msg_namelen = sizeof(addr);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (gro) {
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof(control.buf);
        }
        ssize_t got = recvmsg(fd, &msg, 0);
        if (got < 0)
            break;
        int size = 0;
        if (gro) {
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && cm->cmsg_len >= CMSG_LEN(sizeof(int)))
                    memcpy(&size, CMSG_DATA(cm), sizeof(int));
            }
        }
        uint8_t alen = msg.msg_namelen <= sizeof(addr) ? (uint8_t)msg.msg_namelen : 0;
        if (size <= 0 || size >= got) {
            memcpy(&s->addr, &addr, alen);
            s->addr_len = alen;
            packets_commit(p, s, (uint32_t)got, ST_RAW);
            continue;
        }
        /* GRO: consecutive datagrams of `size` bytes (the last may be shorter), split in place */
        uint32_t base = s->off;
        for (ssize_t off = 0; off < got; off += size) {
            if (p->count >= p->nslots)
                break; /* cannot keep the rest: dropped, like a full socket buffer */
            slot_t *t = &p->slots[p->count++];
            memset(t, 0, sizeof(*t));
            t->off = base + (uint32_t)off;
            t->len = t->wire_len = (uint32_t)(got - off < size ? got - off : size);
            t->status = ST_RAW;
            memcpy(&t->addr, &addr, alen);
            t->addr_len = alen;
        }
        p->used = ((size_t)base + got + TAILROOM + 15) & ~(size_t)15;
    }
    return PyLong_FromSsize_t(p->count);
}

/* (host, port) → sockaddr, as bind.py routes it: "::ffff:a.b.c.d" and dotted quads go to IPv4. */
static int endpoint_to_sockaddr(PyObject *endpoint, struct sockaddr_in6 *sa, socklen_t *salen, int *v6sock)
{
    const char *host;
    int port;
    if (!PyArg_ParseTuple(endpoint, "si", &host, &port))
        return 0;
    memset(sa, 0, sizeof(*sa));
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return 0;
    }
    if (strchr(host, ':') && !(strncmp(host, "::ffff:", 7) == 0 && strchr(host, '.'))) {
        char h[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        snprintf(h, sizeof(h), "%s", host);
        char *pct = strchr(h, '%');
        if (pct) {
            *pct = 0;
            unsigned idx = if_nametoindex(pct + 1);
            sa->sin6_scope_id = idx ? idx : (unsigned)strtoul(pct + 1, NULL, 10);
        }
        if (inet_pton(AF_INET6, h, &sa->sin6_addr) != 1) {
            PyErr_SetString(PyExc_ValueError, "not an IPv6 address");
            return 0;
        }
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons((uint16_t)port);
        *salen = sizeof(struct sockaddr_in6);
        *v6sock = 1;
        return 1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)sa;
    if (inet_pton(AF_INET, strncmp(host, "::ffff:", 7) == 0 ? host + 7 : host, &a->sin_addr) != 1) {
        PyErr_SetString(PyExc_ValueError, "not an IPv4 address");
        return 0;
    }
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *salen = sizeof(struct sockaddr_in);
    *v6sock = 0;
    return 1;
}

typedef struct {
    const uint8_t *p;
    uint32_t n;
    uint32_t dest; /* index into the destinations */
} dgram_t;

typedef struct {
    struct sockaddr_in6 sa;
    socklen_t len;
    int v6;
    int ok;
} dest_t;

static int refused_gso(int e)
{
    return e == EIO || e == EINVAL || e == ENOPROTOOPT || e == EOPNOTSUPP || e == EMSGSIZE;
}

/* The datagrams of an udp_send items list, flattened (pointers into arenas and bytes objects). */
typedef struct {
    dgram_t *g;
    Py_ssize_t n;
    dest_t *dests;
    Py_ssize_t ndest;
} udp_list;

static void udp_list_free(udp_list *u)
{
    PyMem_Free(u->g);
    PyMem_Free(u->dests);
    u->g = NULL;
    u->dests = NULL;
}

static int collect_udp(PyObject *items, udp_list *u)
{
    Py_ssize_t m = PyList_GET_SIZE(items);
    Py_ssize_t cap = 256, dcap = 8;
    PyObject *last_ep = NULL;
    u->n = u->ndest = 0;
    u->g = PyMem_Malloc(cap * sizeof(dgram_t));
    u->dests = PyMem_Malloc(dcap * sizeof(dest_t));
    if (!u->g || !u->dests)
        goto nomem;
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *it = PyList_GET_ITEM(items, k);
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2) {
            PyErr_SetString(PyExc_TypeError, "udp_send items are (data, endpoint)");
            goto error;
        }
        PyObject *data = PyTuple_GET_ITEM(it, 0), *ep = PyTuple_GET_ITEM(it, 1);
        if (ep != last_ep) {
            if (u->ndest == dcap) {
                dest_t *more = PyMem_Realloc(u->dests, (dcap *= 2) * sizeof(dest_t));
                if (more == NULL)
                    goto nomem;
                u->dests = more;
            }
            dest_t *d = &u->dests[u->ndest++];
            d->ok = endpoint_to_sockaddr(ep, &d->sa, &d->len, &d->v6);
            if (!d->ok)
                PyErr_Clear();
            last_ep = ep;
        }
        Py_ssize_t first = 0, last = 0;
        RunObject *r = NULL;
        if (PyBytes_Check(data)) {
            last = 1;
        } else if (Py_IS_TYPE(data, &RunType) && ((RunObject *)data)->sealed) {
            r = (RunObject *)data;
            if (!run_valid(r))
                continue;
            first = r->start;
            last = r->end;
        } else {
            PyErr_SetString(PyExc_TypeError, "udp_send data must be bytes or a sealed run");
            goto error;
        }
        for (Py_ssize_t i = first; i < last; i++) {
            const uint8_t *ptr;
            uint32_t len;
            if (r == NULL) {
                ptr = (const uint8_t *)PyBytes_AS_STRING(data);
                len = (uint32_t)PyBytes_GET_SIZE(data);
            } else {
                slot_t *s = &r->packets->slots[i];
                if (s->status != ST_SEALED)
                    continue;
                ptr = r->packets->buf + s->off;
                len = s->len;
            }
            if (u->n == cap) {
                dgram_t *more = PyMem_Realloc(u->g, (cap *= 2) * sizeof(dgram_t));
                if (more == NULL)
                    goto nomem;
                u->g = more;
            }
            u->g[u->n].p = ptr;
            u->g[u->n].n = len;
            u->g[u->n++].dest = (uint32_t)(u->ndest - 1);
        }
    }
    return 1;
nomem:
    PyErr_NoMemory();
error:
    udp_list_free(u);
    return 0;
}

/* Send the datagrams (no Python object is touched: callable without the GIL). */
static void send_udp_list(int fd4, int fd6, const udp_list *u, int *gso, unsigned long long *failed, int *last_errno)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct iovec iov[GSO_MAX_SEGMENTS];
    const dgram_t *g = u->g;
    Py_ssize_t n = u->n, i = 0;
    while (i < n) {
        const dest_t *d = &u->dests[g[i].dest];
        uint32_t size = g[i].n;
        Py_ssize_t j = i + 1;
        if (*gso && size) {
            Py_ssize_t lim = i + (GSO_MAX_SEGMENTS < GSO_MAX_BYTES / size ? GSO_MAX_SEGMENTS : GSO_MAX_BYTES / size);
            while (j < n && j < lim && g[j].dest == g[i].dest) {
                if (g[j].n != size) {
                    if (g[j].n > 0 && g[j].n < size)
                        j++;
                    break;
                }
                j++;
            }
        }
        int fd = d->ok ? (d->v6 ? fd6 : fd4) : -1;
        if (fd < 0) {
            *failed += j - i;
            *last_errno = EAFNOSUPPORT;
            i = j;
            continue;
        }
        ssize_t rc;
        if (j - i == 1) {
            rc = sendto(fd, g[i].p, g[i].n, 0, (const struct sockaddr *)&d->sa, d->len);
        } else {
            for (Py_ssize_t k = i; k < j; k++) {
                iov[k - i].iov_base = (void *)g[k].p;
                iov[k - i].iov_len = g[k].n;
            }
            struct msghdr msg = {0};
            msg.msg_name = (void *)&d->sa;
            msg.msg_namelen = d->len;
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)(j - i);
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof(control.buf);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)size;
            memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
            rc = sendmsg(fd, &msg, 0);
            if (rc < 0 && refused_gso(errno)) {
                *gso = 0; /* e.g. no checksum offload on the route's device: plain sends from now on */
                for (Py_ssize_t k = i; k < j; k++) {
                    if (sendto(fd, g[k].p, g[k].n, 0, (const struct sockaddr *)&d->sa, d->len) < 0) {
                        (*failed)++;
                        *last_errno = errno;
                    }
                }
                i = j;
                continue;
            }
        }
        if (rc < 0) {
            *failed += j - i;
            *last_errno = errno;
        }
        i = j;
    }
}

static PyObject *fp_udp_send(PyObject *mod, PyObject *args)
{
    /*
     * udp_send(fd4, fd6, items, gso) -> (failed, last_errno, gso)
     * items: [(bytes | sealed Run, (host, port)), ...] in order. With gso, runs of equal-sized
     * datagrams to one destination (the last may be shorter; at most 64 and 65000 bytes) leave in
     * one sendmsg with UDP_SEGMENT; where the kernel refuses GSO it is turned off (returned False)
     * and those datagrams go one sendto each. fd4/fd6 may be -1 (family missing).
     */
    int fd4, fd6, gso;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iiO!p:udp_send", &fd4, &fd6, &PyList_Type, &items, &gso))
        return NULL;
    udp_list u;
    if (!collect_udp(items, &u))
        return NULL;
    unsigned long long failed = 0;
    int last_errno = 0;
    send_udp_list(fd4, fd6, &u, &gso, &failed, &last_errno);
    udp_list_free(&u);
    return Py_BuildValue("(KiO)", failed, last_errno, gso ? Py_True : Py_False);
}

/* ---------------------------------------------------------------------------------------------- */
/* Writer: the sends and TUN writes on a thread of their own                                      */

/*
 * With one packet per system call (the portable path) the kernel's work per send and per TUN
 * write is most of the engine's time. A Writer does those system calls on a second thread, without
 * the GIL, while the engine thread reads and seals or opens the next batch. Jobs run in the order
 * they were submitted; a job keeps its items alive and counts itself in the in_flight of every
 * batch it reads, which tun_read/udp_recv refuse to refill (the engine rotates two batches per
 * source and calls wait_idle). Results come back through poll(). The thread touches no Python
 * object.
 */

enum { JOB_UDP = 0, JOB_TUN = 1 };

typedef struct job {
    struct job *next;
    int kind;
    int fd4, fd6, gso;   /* JOB_UDP */
    PyObject *items;     /* owned; released by the engine thread when reaped */
    PacketsObject *arenas[8];
    int narenas;
    udp_list u;          /* JOB_UDP */
    chunk_t *c;          /* JOB_TUN */
    Py_ssize_t n;
} job_t;

typedef struct {
    PyObject_HEAD
    int tun_fd, vnet, af;
    pthread_t thread;
    int started, running, stopping;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t *head, *tail, *done;
    Py_ssize_t pending;
    unsigned long long udp_failed, tun_failed, writes;
    int last_errno, gone_errno, gso_refused;
} WriterObject;

static void job_free_c(job_t *j)
{
    udp_list_free(&j->u);
    PyMem_RawFree(j->c);
    PyMem_RawFree(j);
}

static void job_run(WriterObject *w, job_t *j, unsigned long long *failed, unsigned long long *writes, int *err,
                    int *gone, int *gso);
static void writer_account(WriterObject *w, job_t *j, unsigned long long failed, unsigned long long writes,
                           int err, int gone, int gso);

static void *writer_main(void *arg)
{
    WriterObject *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->head == NULL)
            break;
        job_t *j = w->head;
        w->head = j->next;
        if (w->head == NULL)
            w->tail = NULL;
        pthread_mutex_unlock(&w->lock);
        unsigned long long failed = 0, writes = 0;
        int err = 0, gone = 0, gso;
        job_run(w, j, &failed, &writes, &err, &gone, &gso);
        pthread_mutex_lock(&w->lock);
        writer_account(w, j, failed, writes, err, gone, gso);
        for (int k = 0; k < j->narenas; k++)
            __atomic_sub_fetch(&j->arenas[k]->in_flight, 1, __ATOMIC_RELEASE);
        j->next = w->done;
        w->done = j;
        w->pending--;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Release what finished jobs kept alive (engine thread, GIL held). */
static void writer_reap(WriterObject *w)
{
    pthread_mutex_lock(&w->lock);
    job_t *j = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->lock);
    while (j) {
        job_t *next = j->next;
        Py_DECREF(j->items);
        job_free_c(j);
        j = next;
    }
}

static int Writer_init(WriterObject *self, PyObject *args, PyObject *kwds)
{
    if (self->started) {
        PyErr_SetString(PyExc_RuntimeError, "Writer already started");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "ipp:Writer", &self->tun_fd, &self->vnet, &self->af))
        return -1;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    self->started = 1;
    return 0;
}

/*
 * The thread starts with the first job it is given, not here: the engine drops its privileges
 * after it is set up, and capability bounding sets, no_new_privs and the like are per thread —
 * a thread started before would keep them.
 */
static int writer_start_thread(WriterObject *self)
{
    if (self->running)
        return 1;
    if (pthread_create(&self->thread, NULL, writer_main, self) != 0) {
        PyErr_SetString(PyExc_OSError, "cannot start the writer thread");
        return 0;
    }
    self->running = 1;
    return 1;
}

static void writer_stop(WriterObject *self)
{
    if (!self->started)
        return;
    self->started = 0;
    if (self->running) {
        pthread_mutex_lock(&self->lock);
        self->stopping = 1;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->lock);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
        self->running = 0;
    }
    writer_reap(self);
}

static void Writer_dealloc(WriterObject *self)
{
    writer_stop(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Count the job in the batches its runs read. */
static int job_hold_arenas(job_t *j, PyObject *items, int udp)
{
    Py_ssize_t m = PyList_GET_SIZE(items);
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *it = PyList_GET_ITEM(items, k);
        PyObject *data = udp ? PyTuple_GET_ITEM(it, 0) : it;
        if (!Py_IS_TYPE(data, &RunType))
            continue;
        PacketsObject *p = ((RunObject *)data)->packets;
        int seen = 0;
        for (int a = 0; a < j->narenas; a++)
            seen |= j->arenas[a] == p;
        if (seen)
            continue;
        if (j->narenas == (int)(sizeof(j->arenas) / sizeof(j->arenas[0]))) {
            PyErr_SetString(PyExc_ValueError, "a Writer job may read at most 8 batches");
            return 0;
        }
        j->arenas[j->narenas++] = p;
    }
    return 1;
}

/* Jobs this small go out at once on the engine thread when nothing is queued: a sparse packet (a
 * ping, an ACK, a handshake) does not wait for the other thread to wake up. */
#define INLINE_MAX 4

static void writer_account(WriterObject *w, job_t *j, unsigned long long failed, unsigned long long writes,
                           int err, int gone, int gso)
{
    /* under w->lock */
    if (j->kind == JOB_UDP) {
        w->udp_failed += failed;
        if (err)
            w->last_errno = err;
        if (j->gso && !gso)
            w->gso_refused = 1;
    } else {
        w->tun_failed += failed;
        w->writes += writes;
        if (gone)
            w->gone_errno = gone;
    }
}

static void job_run(WriterObject *w, job_t *j, unsigned long long *failed, unsigned long long *writes, int *err,
                    int *gone, int *gso)
{
    *gso = j->gso;
    if (j->kind == JOB_UDP)
        send_udp_list(j->fd4, j->fd6, &j->u, gso, failed, err);
    else if (write_tun_chunks(w->tun_fd, j->c, j->n, w->vnet, w->af, writes, failed) < 0)
        *gone = errno;
}

static PyObject *writer_submit(WriterObject *self, job_t *j, PyObject *items)
{
    pthread_mutex_lock(&self->lock);
    int inline_ = self->pending == 0 && (j->kind == JOB_UDP ? j->u.n : j->n) <= INLINE_MAX;
    pthread_mutex_unlock(&self->lock);
    if (inline_) {
        /* only this thread submits, so nothing can be queued before it meanwhile: order is kept */
        unsigned long long failed = 0, writes = 0;
        int err = 0, gone = 0, gso;
        job_run(self, j, &failed, &writes, &err, &gone, &gso);
        pthread_mutex_lock(&self->lock);
        writer_account(self, j, failed, writes, err, gone, gso);
        pthread_mutex_unlock(&self->lock);
        job_free_c(j);
        writer_reap(self);
        Py_RETURN_NONE;
    }
    if (!writer_start_thread(self)) {
        job_free_c(j);
        return NULL;
    }
    for (int a = 0; a < j->narenas; a++)
        __atomic_add_fetch(&j->arenas[a]->in_flight, 1, __ATOMIC_ACQ_REL);
    Py_INCREF(items);
    j->items = items;
    pthread_mutex_lock(&self->lock);
    j->next = NULL;
    if (self->tail)
        self->tail->next = j;
    else
        self->head = j;
    self->tail = j;
    self->pending++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    writer_reap(self);
    Py_RETURN_NONE;
}

static PyObject *Writer_submit_udp(WriterObject *self, PyObject *args)
{
    /* submit_udp(fd4, fd6, items, gso): udp_send's work, on the thread. */
    int fd4, fd6, gso;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iiO!p:submit_udp", &fd4, &fd6, &PyList_Type, &items, &gso))
        return NULL;
    if (!self->started) {
        PyErr_SetString(PyExc_ValueError, "Writer closed");
        return NULL;
    }
    job_t *j = PyMem_RawCalloc(1, sizeof(job_t));
    if (j == NULL)
        return PyErr_NoMemory();
    j->kind = JOB_UDP;
    j->fd4 = fd4;
    j->fd6 = fd6;
    j->gso = gso;
    if (!collect_udp(items, &j->u)) {
        PyMem_RawFree(j);
        return NULL;
    }
    if (!job_hold_arenas(j, items, 1)) {
        job_free_c(j);
        return NULL;
    }
    return writer_submit(self, j, items);
}

static PyObject *Writer_submit_tun(WriterObject *self, PyObject *args)
{
    /* submit_tun(items): tun_write's work, on the thread. */
    PyObject *items;
    if (!PyArg_ParseTuple(args, "O!:submit_tun", &PyList_Type, &items))
        return NULL;
    if (!self->started) {
        PyErr_SetString(PyExc_ValueError, "Writer closed");
        return NULL;
    }
    job_t *j = PyMem_RawCalloc(1, sizeof(job_t));
    if (j == NULL)
        return PyErr_NoMemory();
    j->kind = JOB_TUN;
    chunk_t *c;
    if (!collect_tun_items(items, &c, &j->n)) {
        PyMem_RawFree(j);
        return NULL;
    }
    /* collect_tun_items allocates with PyMem_Malloc; the job frees without the GIL: copy */
    j->c = PyMem_RawMalloc((j->n ? j->n : 1) * sizeof(chunk_t));
    if (j->c == NULL) {
        PyMem_Free(c);
        PyMem_RawFree(j);
        return PyErr_NoMemory();
    }
    memcpy(j->c, c, j->n * sizeof(chunk_t));
    PyMem_Free(c);
    if (!job_hold_arenas(j, items, 0)) {
        job_free_c(j);
        return NULL;
    }
    return writer_submit(self, j, items);
}

static PyObject *Writer_poll(WriterObject *self, PyObject *unused)
{
    /* poll() -> (udp_failed, last_errno, gso_refused, tun_writes, tun_failed, gone_errno), counted
     * since the last poll; releases what finished jobs held. */
    writer_reap(self);
    pthread_mutex_lock(&self->lock);
    PyObject *out = Py_BuildValue("(KiiKKi)", self->udp_failed, self->last_errno, self->gso_refused, self->writes,
                                  self->tun_failed, self->gone_errno);
    self->udp_failed = self->tun_failed = self->writes = 0;
    self->last_errno = self->gso_refused = 0;
    pthread_mutex_unlock(&self->lock);
    return out;
}

static PyObject *Writer_wait_idle(WriterObject *self, PyObject *arg)
{
    /* wait_idle(packets | None): until no job reads that batch (None: until the queue is empty). */
    if (arg != Py_None && !Py_IS_TYPE(arg, &PacketsType)) {
        PyErr_SetString(PyExc_TypeError, "wait_idle takes a Packets or None");
        return NULL;
    }
    PacketsObject *p = arg == Py_None ? NULL : (PacketsObject *)arg;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    while (self->running && (p ? __atomic_load_n(&p->in_flight, __ATOMIC_ACQUIRE) > 0 : self->pending > 0))
        pthread_cond_wait(&self->cond, &self->lock);
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    writer_reap(self);
    Py_RETURN_NONE;
}

static PyObject *Writer_close(WriterObject *self, PyObject *unused)
{
    /* Finish every job, stop the thread. */
    writer_stop(self);
    Py_RETURN_NONE;
}

static PyMethodDef Writer_methods[] = {
    {"submit_udp", (PyCFunction)Writer_submit_udp, METH_VARARGS, "submit_udp(fd4, fd6, items, gso)"},
    {"submit_tun", (PyCFunction)Writer_submit_tun, METH_VARARGS, "submit_tun(items)"},
    {"poll", (PyCFunction)Writer_poll, METH_NOARGS, "poll() -> (udp_failed, errno, gso_refused, writes, tun_failed, gone_errno)"},
    {"wait_idle", (PyCFunction)Writer_wait_idle, METH_O, "wait_idle(packets | None)"},
    {"close", (PyCFunction)Writer_close, METH_NOARGS, "Finish every job and stop the thread."},
    {NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wgdesk.fastpath._fastpath.Writer",
    .tp_basicsize = sizeof(WriterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Writer(tun_fd, vnet_hdr, af_header): UDP sends and TUN writes on a thread of their own.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_methods = Writer_methods,
};

/* ---------------------------------------------------------------------------------------------- */
/* module                                                                                         */

static PyObject *fp_set_invalid_tag(PyObject *mod, PyObject *cls)
{
    Py_XDECREF(InvalidTag);
    Py_INCREF(cls);
    InvalidTag = cls;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"seal", fp_seal, METH_VARARGS, NULL},
    {"open", fp_open, METH_VARARGS, NULL},
    {"tun_read", fp_tun_read, METH_VARARGS, NULL},
    {"tun_write", fp_tun_write, METH_VARARGS, NULL},
    {"udp_recv", fp_udp_recv, METH_VARARGS, NULL},
    {"udp_send", fp_udp_send, METH_VARARGS, NULL},
    {"set_invalid_tag", fp_set_invalid_tag, METH_O, "The exception Aead.decrypt raises (cryptography's InvalidTag)."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wgdesk.fastpath._fastpath",
    .m_doc = "The compiled transport-data path (see wgdesk/fastpath/__init__.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&AeadType) < 0 || PyType_Ready(&ReplayType) < 0 || PyType_Ready(&PacketsType) < 0
        || PyType_Ready(&RunType) < 0 || PyType_Ready(&WriterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Aead", (PyObject *)&AeadType) < 0
        || PyModule_AddObjectRef(m, "ReplayWindow", (PyObject *)&ReplayType) < 0
        || PyModule_AddObjectRef(m, "Packets", (PyObject *)&PacketsType) < 0
        || PyModule_AddObjectRef(m, "Run", (PyObject *)&RunType) < 0
        || PyModule_AddObjectRef(m, "Writer", (PyObject *)&WriterType) < 0
        || PyModule_AddStringConstant(m, "OPENSSL_VERSION", OpenSSL_version(OPENSSL_VERSION)) < 0
        || PyModule_AddIntConstant(m, "ST_PLAIN", ST_PLAIN) < 0 || PyModule_AddIntConstant(m, "ST_SEALED", ST_SEALED) < 0
        || PyModule_AddIntConstant(m, "ST_RAW", ST_RAW) < 0 || PyModule_AddIntConstant(m, "ST_EXPIRED", ST_EXPIRED) < 0
        || PyModule_AddIntConstant(m, "ST_BADTAG", ST_BADTAG) < 0
        || PyModule_AddIntConstant(m, "ST_REPLAYED", ST_REPLAYED) < 0
        || PyModule_AddIntConstant(m, "ST_KEEPALIVE", ST_KEEPALIVE) < 0
        || PyModule_AddIntConstant(m, "ST_DATA", ST_DATA) < 0
        || PyModule_AddIntConstant(m, "ST_BADINNER", ST_BADINNER) < 0
        || PyModule_AddIntConstant(m, "ST_DROPPED", ST_DROPPED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

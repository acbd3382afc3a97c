// SPDX-License-Identifier: Apache-2.0
/*
 * grpc-router: one HTTP/2 (h2c) address for every Triton gRPC RPC of a triton-dynamo stack.
 *
 * Each client connection gets one connection to Dynamo's frontend and, when it first calls one, one to the control
 * service. Calls whose method path is a control path (--control-path) go to the control service; every other call
 * (inference, server health) goes to the frontend.
 *
 * Why not a general HTTP/2 proxy (nghttpx, HAProxy, Envoy, hyper were measured, README "What the one port costs"):
 * they end every stream and copy each message through their own buffers, and at 602 KB per call that CPU lands on
 * the shared cores the frontend and the worker need. Here the frontend's side is passed on frame by frame as read:
 * its DATA frames, window updates and pings go through untouched, written straight from the read buffer, and the
 * stream ids stay the client's (the frontend sees a subset of them, which HTTP/2 allows). Only what must change,
 * changes: header blocks are decoded and encoded again (HPACK state is per connection, and answers from two servers
 * share the client's), and flow control is kept whole where two servers share one client connection:
 *  - client to frontend: the frontend's windows are passed on as they are; bytes the client sends to the control
 *    service are credited back to the client by the router, once written to the control service;
 *  - frontend to client: per-stream windows are the client's own, passed on; the connection window is the router's
 *    (FRONT_WINDOW), credited back as the frontend's bytes are passed to the client within the client's window, so
 *    that answers from the control service always have room.
 * The control service's side is an ordinary HTTP/2 client connection, with its calls queued per stream.
 *
 * One thread, epoll, level-triggered. Frames are at most 16384 bytes (HTTP/2's default, never raised here).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

enum { T_DATA, T_HEADERS, T_PRIORITY, T_RST, T_SETTINGS, T_PUSH, T_PING, T_GOAWAY, T_WINUP, T_CONT };
#define F_END_STREAM 0x1
#define F_ACK 0x1
#define F_END_HEADERS 0x4
#define F_PADDED 0x8
#define F_PRIORITY 0x20

#define FRAME_MAX 16384
#define IN_CAP (256 * 1024)
#define FRONT_WINDOW (16 << 20)       // the connection window the router grants the frontend
#define HIGH_WATER (4 << 20)          // stop reading a side while what it sends waits beyond this
#define CONTROL_WINDOW 0x7fffffff     // the control service's answers are small and ours: no limit but HTTP/2's
#define DEFAULT_WINDOW 65535
#define SHRINK_ABOVE (1 << 20)        // an emptied queue larger than this gives its memory back
#define MAX_HEADERS 256
#define MAX_HEADER_BLOCK (256 * 1024)  // a header block longer than this ends the connection
#define GRPC_UNAVAILABLE "14"
#define GRPC_RESOURCE_EXHAUSTED "8"
#define MAX_CONTROL_CALLS 1024         // calls in flight to the control service per client connection

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

static int verbose;
static void logf_(const char *level, const char *fmt, ...) {
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime(&now));
    fprintf(stderr, "%s grpc-router %s ", when, level);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#define LOG_INFO(...) logf_("INFO", __VA_ARGS__)
#define LOG_WARN(...) logf_("WARNING", __VA_ARGS__)
#define LOG_DEBUG(...) \
    do { if (verbose) logf_("DEBUG", __VA_ARGS__); } while (0)

/* ---- byte queues ---- */

typedef struct {
    uint8_t *p;
    size_t off, len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t n) {
    if (b->off + b->len + n <= b->cap) return;
    if (b->off) {
        memmove(b->p, b->p + b->off, b->len);
        b->off = 0;
    }
    if (b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
}
static uint8_t *buf_tail(buf_t *b) { return b->p + b->off + b->len; }
static uint8_t *buf_head(buf_t *b) { return b->p + b->off; }
static void buf_put(buf_t *b, const void *d, size_t n) {
    if (!n) return;
    buf_reserve(b, n);
    memcpy(buf_tail(b), d, n);
    b->len += n;
}
static void buf_drop(buf_t *b, size_t n) {
    b->off += n;
    b->len -= n;
    if (!b->len) b->off = 0;
}
static void buf_free(buf_t *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static uint32_t get24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* HTTP/2's fixed payload sizes (RFC 9113, section 6): anything else is a protocol error. */
static int frame_size_ok(int type, size_t len) {
    switch (type) {
    case T_RST:
    case T_WINUP:
        return len == 4;
    case T_PING:
        return len == 8;
    case T_PRIORITY:
        return len == 5;
    case T_SETTINGS:
        return len % 6 == 0;
    case T_GOAWAY:
        return len >= 8;
    default:
        return 1;
    }
}

typedef struct {
    const uint8_t *h, *p;  // the frame's header and its payload
    size_t len;            // the payload's length
    int type, flags;
    uint32_t id;
} frame_t;

/* The frame at the start of in: 1 when it is whole, 0 when more is to be read, -1 when no peer may send it. */
static int read_frame(const uint8_t *in, size_t avail, frame_t *fr) {
    if (avail < 9) return 0;
    fr->h = in;
    fr->p = in + 9;
    fr->len = get24(in);
    fr->type = in[3];
    fr->flags = in[4];
    fr->id = get32(in + 5) & 0x7fffffff;
    if (fr->len > FRAME_MAX || !frame_size_ok(fr->type, fr->len)) return -1;
    return avail >= 9 + fr->len;
}

static void put_frame(buf_t *b, int type, int flags, uint32_t id, const void *payload, size_t len) {
    uint8_t h[9] = {len >> 16, len >> 8, len, type, flags};
    put32(h + 5, id & 0x7fffffff);
    buf_put(b, h, 9);
    buf_put(b, payload, len);
}
static void put_window_update(buf_t *b, uint32_t id, uint32_t increment) {
    uint8_t p[4];
    put32(p, increment & 0x7fffffff);
    put_frame(b, T_WINUP, 0, id, p, 4);
}
static void put_rst(buf_t *b, uint32_t id, uint32_t code) {
    uint8_t p[4];
    put32(p, code);
    put_frame(b, T_RST, 0, id, p, 4);
}

/* ---- header lists: decoded blocks, kept as (name, value) pairs in one arena ---- */

typedef struct {
    size_t n;
    uint32_t name_off[MAX_HEADERS], name_len[MAX_HEADERS], value_off[MAX_HEADERS], value_len[MAX_HEADERS];
    buf_t arena;
} headers_t;

static void headers_reset(headers_t *h) {
    h->n = 0;
    h->arena.off = h->arena.len = 0;
}
static int headers_add(headers_t *h, const uint8_t *name, size_t name_len, const uint8_t *value, size_t value_len) {
    if (h->n == MAX_HEADERS) return -1;
    h->name_off[h->n] = h->arena.len;
    h->name_len[h->n] = name_len;
    buf_put(&h->arena, name, name_len);
    h->value_off[h->n] = h->arena.len;
    h->value_len[h->n] = value_len;
    buf_put(&h->arena, value, value_len);
    h->n++;
    return 0;
}
static const uint8_t *headers_find(headers_t *h, const char *name, size_t *len) {
    size_t want = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (h->name_len[i] == want && !memcmp(buf_head(&h->arena) + h->name_off[i], name, want)) {
            *len = h->value_len[i];
            return buf_head(&h->arena) + h->value_off[i];
        }
    return NULL;
}

static int hpack_decode(nghttp2_hd_inflater *inflater, const uint8_t *in, size_t len, headers_t *h) {
    headers_reset(h);
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t used = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, len, 1);
        if (used < 0) return -1;
        in += used;
        len -= used;
        if ((flags & NGHTTP2_HD_INFLATE_EMIT) && headers_add(h, nv.name, nv.namelen, nv.value, nv.valuelen) < 0)
            return -1;
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inflater);
            return 0;
        }
        if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && len == 0) return -1;
    }
}

/* A header block as frames: HEADERS, then CONTINUATION while it is longer than a frame. */
static void put_header_block(buf_t *out, nghttp2_hd_deflater *deflater, headers_t *h, uint32_t id, int end_stream) {
    nghttp2_nv nva[MAX_HEADERS];
    for (size_t i = 0; i < h->n; i++) {
        nva[i].name = buf_head(&h->arena) + h->name_off[i];
        nva[i].namelen = h->name_len[i];
        nva[i].value = buf_head(&h->arena) + h->value_off[i];
        nva[i].valuelen = h->value_len[i];
        nva[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    static buf_t block;
    block.off = block.len = 0;
    size_t bound = nghttp2_hd_deflate_bound(deflater, nva, h->n);
    buf_reserve(&block, bound);
    ssize_t len = nghttp2_hd_deflate_hd(deflater, buf_tail(&block), bound, nva, h->n);
    if (len < 0) abort();  // only out of memory or a bound too small, neither of which a peer can cause
    size_t first = (size_t)len < FRAME_MAX ? (size_t)len : FRAME_MAX;
    put_frame(out, T_HEADERS, (end_stream ? F_END_STREAM : 0) | (first == (size_t)len ? F_END_HEADERS : 0), id,
              block.p, first);
    for (size_t off = first; off < (size_t)len;) {
        size_t n = (size_t)len - off < FRAME_MAX ? (size_t)len - off : FRAME_MAX;
        put_frame(out, T_CONT, off + n == (size_t)len ? F_END_HEADERS : 0, id, block.p + off, n);
        off += n;
    }
}

/* Per-stream queues hold records: kind (1 byte), flags (1), length (4), then the payload: DATA bytes, or a header
 * list as (name length u32, name, value length u32, value)... (encoded only when sent, so that HPACK's state follows
 * the order in which blocks reach the peer). */
enum { R_DATA, R_HEADERS };
#define REC_HEAD 6

static void rec_put(buf_t *q, int kind, int flags, const void *payload, size_t len) {
    uint8_t h[REC_HEAD] = {kind, flags};
    put32(h + 2, len);
    buf_put(q, h, REC_HEAD);
    buf_put(q, payload, len);
}
static void rec_put_headers(buf_t *q, headers_t *h, int flags) {
    static buf_t flat;
    flat.off = flat.len = 0;
    for (size_t i = 0; i < h->n; i++) {
        uint8_t n[4];
        put32(n, h->name_len[i]);
        buf_put(&flat, n, 4);
        buf_put(&flat, buf_head(&h->arena) + h->name_off[i], h->name_len[i]);
        put32(n, h->value_len[i]);
        buf_put(&flat, n, 4);
        buf_put(&flat, buf_head(&h->arena) + h->value_off[i], h->value_len[i]);
    }
    rec_put(q, R_HEADERS, flags, flat.p, flat.len);
}
static void rec_headers(const uint8_t *p, size_t len, headers_t *h) {
    headers_reset(h);
    for (size_t off = 0; off < len;) {
        uint32_t nl = get32(p + off);
        const uint8_t *name = p + off + 4;
        uint32_t vl = get32(name + nl);
        headers_add(h, name, nl, name + nl + 4, vl);
        off += 8 + nl + vl;
    }
}
/* Takes the first n bytes of the DATA record at the head: the rest stays a record of its own. */
static void rec_take(buf_t *q, size_t n) {
    uint8_t *r = buf_head(q);
    uint8_t kind = r[0], flags = r[1];
    uint32_t len = get32(r + 2);
    uint8_t *next = r + n;
    next[0] = kind;
    next[1] = flags;
    put32(next + 2, len - n);
    buf_drop(q, n);
}

/* ---- connections ---- */

enum side { CLIENT, FRONT, CONTROL, LISTENER };
struct session;

typedef struct {
    enum side side;
    int fd;
    struct session *s;
    uint8_t *in;
    size_t in_len;
    buf_t out;
    int connecting;
    uint32_t events;
    nghttp2_hd_inflater *inflater;  // what this peer sends
    nghttp2_hd_deflater *deflater;  // what the router sends it
    buf_t block;                    // a header block still waiting for its CONTINUATION frames
    uint32_t block_stream;
    uint8_t block_flags;
    int in_block;
} endpoint_t;

typedef struct stream {  // a call routed to the control service
    uint32_t id;
    struct stream *next;
    int client_ended, control_ended, answer_started;
    int64_t control_window, client_window;
    buf_t to_control, to_client;
} stream_t;

typedef struct session {
    endpoint_t client, front, control;
    size_t preface_seen;
    int client_settings_seen, front_settings_seen, closed;
    uint32_t last_client_stream, front_max_stream;
    size_t control_calls;
    int64_t client_window;          // the client's connection window for what the router sends it
    int64_t client_initial_window;  // the client's SETTINGS_INITIAL_WINDOW_SIZE
    int64_t front_owed;             // frontend bytes passed to the client, not yet credited to the frontend
    int64_t control_window, control_initial_window, control_received;
    uint32_t control_max_frame;
    buf_t pending;  // frames for the client held back by its connection window: origin (1 byte), then the frame
    stream_t *streams;
    struct session *next_closed;
} session_t;

static int epfd;
static struct addrinfo *front_addr, *control_addr;
static char **control_paths;
static size_t control_path_count;
static session_t *closed_sessions;
static headers_t decoded;

static int is_control_path(const uint8_t *path, size_t len) {
    for (size_t i = 0; i < control_path_count; i++)
        if (strlen(control_paths[i]) == len && !memcmp(control_paths[i], path, len)) return 1;
    return 0;
}

static void set_events(endpoint_t *ep) {
    if (ep->fd < 0) return;
    uint32_t want = EPOLLIN | EPOLLRDHUP;
    if (ep->side == CLIENT && (ep->s->front.out.len > HIGH_WATER || ep->s->control.out.len > HIGH_WATER))
        want = EPOLLRDHUP;  // the other side is behind: let TCP hold the client back
    if (ep->side == FRONT && ep->s->pending.len > HIGH_WATER) want = EPOLLRDHUP;
    if (ep->side == FRONT && ep->s->client.out.len > HIGH_WATER) want = EPOLLRDHUP;
    if (ep->out.len || ep->connecting) want |= EPOLLOUT;
    if (want == ep->events) return;
    struct epoll_event ev = {.events = want, .data.ptr = ep};
    epoll_ctl(epfd, EPOLL_CTL_MOD, ep->fd, &ev);
    ep->events = want;
}

static int endpoint_open(endpoint_t *ep, enum side side, session_t *s, int fd) {
    ep->side = side;
    ep->s = s;
    ep->fd = fd;
    ep->in = malloc(IN_CAP);
    if (!ep->in) abort();
    if (nghttp2_hd_inflate_new(&ep->inflater) || nghttp2_hd_deflate_new(&ep->deflater, 4096)) abort();
    ep->events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
    struct epoll_event ev = {.events = ep->events, .data.ptr = ep};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void endpoint_close(endpoint_t *ep) {
    if (ep->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, ep->fd, NULL);
        close(ep->fd);
    }
    ep->fd = -1;
    free(ep->in);
    ep->in = NULL;
    ep->in_len = 0;
    buf_free(&ep->out);
    buf_free(&ep->block);
    if (ep->inflater) nghttp2_hd_inflate_del(ep->inflater);
    if (ep->deflater) nghttp2_hd_deflate_del(ep->deflater);
    ep->inflater = NULL;
    ep->deflater = NULL;
    ep->connecting = ep->in_block = 0;
    ep->events = 0;
}

static int connect_to(struct addrinfo *addr) {
    for (struct addrinfo *a = addr; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) return fd;
        close(fd);
    }
    return -1;
}

static void session_close(session_t *s, const char *why) {
    if (s->closed) return;
    LOG_DEBUG("closing a client connection: %s", why);
    s->closed = 1;
    endpoint_close(&s->client);
    endpoint_close(&s->front);
    endpoint_close(&s->control);
    s->next_closed = closed_sessions;
    closed_sessions = s;
}

static void session_free(session_t *s) {
    while (s->streams) {
        stream_t *st = s->streams;
        s->streams = st->next;
        buf_free(&st->to_control);
        buf_free(&st->to_client);
        free(st);
    }
    buf_free(&s->pending);
    free(s);
}

/* Writes what waits for this side; returns -1 when the connection is gone. */
static int flush_out(endpoint_t *ep) {
    while (ep->out.len && !ep->connecting && ep->fd >= 0) {
        ssize_t n = write(ep->fd, buf_head(&ep->out), ep->out.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return 0;
            return -1;
        }
        buf_drop(&ep->out, n);
    }
    if (!ep->out.len && ep->out.cap > SHRINK_ABOVE) buf_free(&ep->out);  // after a burst, not for good
    return 0;
}

/* Frames passed on as read: written from the read buffer when nothing waits before them. */
static void pass_on(endpoint_t *to, const uint8_t *p, size_t n) {
    if (!n) return;
    if (!to->out.len && !to->connecting && to->fd >= 0) {
        ssize_t w = write(to->fd, p, n);
        if (w > 0) {
            p += w;
            n -= w;
        }
    }
    buf_put(&to->out, p, n);
}

/* A run of frames read from one side and passed on to the other as they are, in one write. */
typedef struct {
    endpoint_t *to;
    const uint8_t *in;
    size_t start, len;
} span_t;

static void span_extend(span_t *span, size_t pos, size_t n) {
    if (!span->len) span->start = pos;
    span->len += n;
}
static void span_flush(span_t *span) {
    pass_on(span->to, span->in + span->start, span->len);
    span->len = 0;
}

/* ---- towards the client ---- */

enum { FROM_FRONT, FROM_ROUTER };

static stream_t *find_stream(session_t *s, uint32_t id) {
    for (stream_t *st = s->streams; st; st = st->next)
        if (st->id == id) return st;
    return NULL;
}

static void credit_front(session_t *s, size_t n) { s->front_owed += n; }

/* The first n bytes of an unpadded DATA frame, for the client (the rest goes on later as a frame of its own). */
static void put_data_part(session_t *s, int origin, const uint8_t *frame, size_t n) {
    uint8_t h[9];
    memcpy(h, frame, 9);
    h[0] = n >> 16;
    h[1] = n >> 8;
    h[2] = n;
    if (n < get24(frame)) h[4] &= ~F_END_STREAM;
    buf_put(&s->client.out, h, 9);
    buf_put(&s->client.out, frame + 9, n);
    s->client_window -= n;
    if (origin == FROM_FRONT) credit_front(s, n);
}

/* Frames held for the client's connection window, as far as it goes now. A DATA frame larger than what is left of
 * the window is split: a client may wait for the window to be used up before it grants more. */
static void drain_pending(session_t *s) {
    while (s->pending.len && s->front_settings_seen) {
        uint8_t *r = buf_head(&s->pending);
        uint8_t origin = r[0];
        uint8_t *frame = r + 1;
        size_t len = get24(frame);
        if (frame[3] == T_DATA && (int64_t)len > s->client_window) {
            if (s->client_window <= 0) break;
            size_t n = s->client_window;
            put_data_part(s, origin, frame, n);
            uint8_t header[9];  // what is left becomes the head record: origin, then its frame header
            memcpy(header, frame, 9);
            header[0] = (len - n) >> 16;
            header[1] = (len - n) >> 8;
            header[2] = len - n;
            r[n] = origin;
            memcpy(r + n + 1, header, 9);
            buf_drop(&s->pending, n);
            break;
        }
        if (frame[3] == T_DATA) put_data_part(s, origin, frame, len);
        else buf_put(&s->client.out, frame, 9 + len);
        buf_drop(&s->pending, 1 + 9 + len);
    }
    if (!s->pending.len && s->pending.cap > SHRINK_ABOVE) buf_free(&s->pending);
}

/* Whole frames for the client, in the order given; DATA waits for the client's connection window. */
static void to_client(session_t *s, int origin, const uint8_t *frames, size_t n) {
    static buf_t unpadded;
    while (n) {
        size_t len = get24(frames);
        if (frames[3] == T_DATA && (frames[4] & F_PADDED)) {  // padding dropped, its bytes credited back at once
            size_t pad = len ? frames[9] + 1u : 0;
            if (pad > len) pad = len;
            if (origin == FROM_FRONT) credit_front(s, pad);
            unpadded.off = unpadded.len = 0;
            uint32_t id = get32(frames + 5) & 0x7fffffff;
            put_frame(&unpadded, T_DATA, frames[4] & ~F_PADDED, id, frames + 9 + (pad ? 1 : 0), len - pad);
            to_client(s, origin, buf_head(&unpadded), unpadded.len);
        } else if (s->pending.len || !s->front_settings_seen ||
                   (frames[3] == T_DATA && (int64_t)len > s->client_window)) {
            if (!s->pending.len && s->front_settings_seen)
                LOG_DEBUG("holding answers: the client's connection window has %lld bytes, a frame needs %zu",
                          (long long)s->client_window, len);
            uint8_t o = origin;
            buf_put(&s->pending, &o, 1);
            buf_put(&s->pending, frames, 9 + len);
            drain_pending(s);  // what fits of it goes now
        } else if (frames[3] == T_DATA)
            put_data_part(s, origin, frames, len);
        else
            buf_put(&s->client.out, frames, 9 + len);
        frames += 9 + len;
        n -= 9 + len;
    }
}

static buf_t frames_tmp;

static void credit_client(session_t *s, stream_t *st, size_t n) {
    if (!n) return;
    frames_tmp.off = frames_tmp.len = 0;
    put_window_update(&frames_tmp, 0, n);
    if (st && !st->client_ended) put_window_update(&frames_tmp, st->id, n);
    to_client(s, FROM_ROUTER, buf_head(&frames_tmp), frames_tmp.len);
}

static void stream_forget(session_t *s, stream_t *st) {
    for (stream_t **p = &s->streams; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    buf_free(&st->to_control);
    buf_free(&st->to_client);
    free(st);
    s->control_calls--;
}


static void stream_maybe_done(session_t *s, stream_t *st) {
    if (st->client_ended && st->control_ended && !st->to_client.len && !st->to_control.len) stream_forget(s, st);
}

/* Answers from the control service, within the client's window for the stream. */
static void drain_to_client(session_t *s, stream_t *st) {
    while (st->to_client.len) {
        uint8_t *r = buf_head(&st->to_client);
        uint8_t kind = r[0], flags = r[1];
        uint32_t len = get32(r + 2);
        frames_tmp.off = frames_tmp.len = 0;
        if (kind == R_DATA) {
            size_t n = len < FRAME_MAX ? len : FRAME_MAX;
            if ((int64_t)n > st->client_window) n = st->client_window > 0 ? st->client_window : 0;
            if (len && !n) break;
            int last = n == len;
            put_frame(&frames_tmp, T_DATA, last ? (flags & F_END_STREAM) : 0, st->id, r + REC_HEAD, n);
            st->client_window -= n;
            to_client(s, FROM_ROUTER, buf_head(&frames_tmp), frames_tmp.len);
            if (last)
                buf_drop(&st->to_client, REC_HEAD + len);
            else
                rec_take(&st->to_client, n);
        } else {
            rec_headers(r + REC_HEAD, len, &decoded);
            put_header_block(&frames_tmp, s->client.deflater, &decoded, st->id, flags & F_END_STREAM);
            to_client(s, FROM_ROUTER, buf_head(&frames_tmp), frames_tmp.len);
            st->answer_started = 1;
            buf_drop(&st->to_client, REC_HEAD + len);
        }
    }
}

/* A gRPC error for a call the control service cannot answer; the call is over for the router (what the client still
 * sends on it is dropped and credited back). */
static void fail_stream(session_t *s, stream_t *st, const char *status, const char *message) {
    headers_reset(&decoded);
    if (!st->answer_started) {
        headers_add(&decoded, (const uint8_t *)":status", 7, (const uint8_t *)"200", 3);
        headers_add(&decoded, (const uint8_t *)"content-type", 12, (const uint8_t *)"application/grpc", 16);
    }
    headers_add(&decoded, (const uint8_t *)"grpc-status", 11, (const uint8_t *)status, strlen(status));
    headers_add(&decoded, (const uint8_t *)"grpc-message", 12, (const uint8_t *)message, strlen(message));
    frames_tmp.off = frames_tmp.len = 0;
    put_header_block(&frames_tmp, s->client.deflater, &decoded, st->id, 1);
    if (!st->client_ended) put_rst(&frames_tmp, st->id, 0);
    to_client(s, FROM_ROUTER, buf_head(&frames_tmp), frames_tmp.len);
    stream_forget(s, st);
}

/* ---- towards the control service ---- */

static void drain_to_control(session_t *s, stream_t *st) {
    endpoint_t *c = &s->control;
    while (st->to_control.len && c->fd >= 0) {
        uint8_t *r = buf_head(&st->to_control);
        uint8_t kind = r[0], flags = r[1];
        uint32_t len = get32(r + 2);
        if (kind == R_DATA) {
            int64_t n = len;
            if (n > s->control_max_frame) n = s->control_max_frame;
            if (n > st->control_window) n = st->control_window;
            if (n > s->control_window) n = s->control_window;
            if (n < 0) n = 0;
            if (len && !n) break;
            int last = n == len;
            put_frame(&c->out, T_DATA, last ? (flags & F_END_STREAM) : 0, st->id, r + REC_HEAD, n);
            st->control_window -= n;
            s->control_window -= n;
            credit_client(s, st, n);
            if (last)
                buf_drop(&st->to_control, REC_HEAD + len);
            else
                rec_take(&st->to_control, n);
        } else {
            rec_headers(r + REC_HEAD, len, &decoded);
            put_header_block(&c->out, c->deflater, &decoded, st->id, flags & F_END_STREAM);
            buf_drop(&st->to_control, REC_HEAD + len);
        }
    }
}

static void control_lost(session_t *s, const char *why) {
    if (s->control.fd >= 0 && s->streams)
        LOG_WARN("lost the control service with calls in flight: %s", why);
    else
        LOG_DEBUG("the connection to the control service ended: %s", why);
    endpoint_close(&s->control);
    char message[256];
    snprintf(message, sizeof message, "the control service is unavailable (%s)", why);
    for (stream_t *st = s->streams, *next; st; st = next) {
        next = st->next;
        fail_stream(s, st, GRPC_UNAVAILABLE, message);
    }
}

static int control_open(session_t *s) {
    if (s->control.fd >= 0) return 0;
    int fd = connect_to(control_addr);
    if (fd < 0 || endpoint_open(&s->control, CONTROL, s, fd) < 0) {
        if (fd >= 0) close(fd);
        s->control.fd = -1;
        return -1;
    }
    s->control.connecting = 1;
    s->control_window = DEFAULT_WINDOW;
    s->control_initial_window = DEFAULT_WINDOW;
    s->control_max_frame = FRAME_MAX;
    s->control_received = 0;
    buf_t *out = &s->control.out;
    buf_put(out, PREFACE, PREFACE_LEN);
    uint8_t settings[12] = {0, 2, 0, 0, 0, 0, 0, 4};  // no push; the largest stream window
    put32(settings + 8, CONTROL_WINDOW);
    put_frame(out, T_SETTINGS, 0, 0, settings, sizeof settings);
    put_window_update(out, 0, CONTROL_WINDOW - DEFAULT_WINDOW);
    return 0;
}

/* ---- frames from the client ---- */

/* Starts or continues a header block; returns 1 when it is whole (in ep->block), 0 when more is to come, -1 on a
 * protocol error. */
static int header_fragment(endpoint_t *ep, int type, int flags, uint32_t id, const uint8_t *p, size_t len) {
    if (type == T_HEADERS) {
        if (ep->in_block || !id) return -1;
        size_t pad = 0;
        if (flags & F_PADDED) {
            if (len < 1) return -1;
            pad = p[0];
            p++;
            len--;
        }
        if (flags & F_PRIORITY) {
            if (len < 5) return -1;
            p += 5;
            len -= 5;
        }
        if (pad > len) return -1;
        len -= pad;
        ep->block.off = ep->block.len = 0;
        ep->block_stream = id;
        ep->block_flags = flags;
    } else if (!ep->in_block || id != ep->block_stream)
        return -1;
    if (ep->block.len + len > MAX_HEADER_BLOCK) return -1;
    buf_put(&ep->block, p, len);
    ep->in_block = !(flags & F_END_HEADERS);
    return !ep->in_block;
}

static int client_headers(session_t *s, uint32_t id, int end_stream) {
    endpoint_t *c = &s->client;
    if (hpack_decode(c->inflater, buf_head(&c->block), c->block.len, &decoded) < 0) return -1;
    stream_t *st = find_stream(s, id);
    if (st) {  // the client's trailers on a call to the control service
        if (end_stream) st->client_ended = 1;
        rec_put_headers(&st->to_control, &decoded, end_stream ? F_END_STREAM : 0);
        drain_to_control(s, st);
        stream_maybe_done(s, st);
        return 0;
    }
    if (id <= s->last_client_stream) {  // trailers on a call to the frontend
        if (id <= s->front_max_stream)
            put_header_block(&s->front.out, s->front.deflater, &decoded, id, end_stream);
        return 0;
    }
    if (!(id & 1)) return -1;
    s->last_client_stream = id;
    size_t path_len = 0;
    const uint8_t *path = headers_find(&decoded, ":path", &path_len);
    if (!path || !is_control_path(path, path_len)) {
        s->front_max_stream = id;
        put_header_block(&s->front.out, s->front.deflater, &decoded, id, end_stream);
        return 0;
    }
    st = calloc(1, sizeof *st);
    if (!st) abort();
    s->control_calls++;
    st->id = id;
    st->client_ended = end_stream;
    st->client_window = s->client_initial_window;
    st->next = s->streams;
    s->streams = st;
    if (s->control_calls > MAX_CONTROL_CALLS) {
        fail_stream(s, st, GRPC_RESOURCE_EXHAUSTED,
                    "too many calls to the control service in flight on this connection");
        return 0;
    }
    if (control_open(s) < 0) {
        fail_stream(s, st, GRPC_UNAVAILABLE, "the control service is unavailable (cannot connect)");
        return 0;
    }
    st->control_window = s->control_initial_window;
    put_header_block(&s->control.out, s->control.deflater, &decoded, id, end_stream);
    return 0;
}

/* Applies a peer's SETTINGS where they concern the router, and writes to kept (when given) those to pass on to the
 * other side; returns kept's length. HPACK's table size is for the router's encoder towards that peer, and frames stay
 * at HTTP/2's default size, so neither is passed on. initial_window and max_frame (when given) follow the peer's. */
static size_t apply_settings(const uint8_t *p, size_t len, nghttp2_hd_deflater *deflater, int64_t *initial_window,
                             uint32_t *max_frame, uint8_t *kept) {
    size_t kept_len = 0;
    for (size_t off = 0; off + 6 <= len; off += 6) {
        uint16_t key = p[off] << 8 | p[off + 1];
        uint32_t value = get32(p + off + 2);
        if (key == NGHTTP2_SETTINGS_HEADER_TABLE_SIZE) {
            nghttp2_hd_deflate_change_table_size(deflater, value);
            continue;
        }
        if (key == NGHTTP2_SETTINGS_MAX_FRAME_SIZE) {
            if (max_frame) *max_frame = value < FRAME_MAX ? value : FRAME_MAX;
            continue;
        }
        if (key == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE && initial_window) *initial_window = value;
        if (kept) memcpy(kept + kept_len, p + off, 6);
        kept_len += 6;
    }
    return kept_len;
}

static void client_settings(session_t *s, const uint8_t *p, size_t len) {
    uint8_t kept[len ? len : 1];
    int64_t before = s->client_initial_window;
    size_t kept_len = apply_settings(p, len, s->client.deflater, &s->client_initial_window, NULL, kept);
    for (stream_t *st = s->streams; st; st = st->next) st->client_window += s->client_initial_window - before;
    put_frame(&s->front.out, T_SETTINGS, 0, 0, kept, kept_len);
    if (!s->client_settings_seen) put_window_update(&s->front.out, 0, FRONT_WINDOW - DEFAULT_WINDOW);
    s->client_settings_seen = 1;
    for (stream_t *st = s->streams; st; st = st->next) drain_to_client(s, st);
}

/* Everything read from the client: returns -1 on a protocol error. */
static int from_client(session_t *s) {
    endpoint_t *c = &s->client, *f = &s->front;
    size_t pos = 0;
    span_t span = {.to = f, .in = c->in};
    if (s->preface_seen < PREFACE_LEN) {
        size_t n = PREFACE_LEN - s->preface_seen;
        if (n > c->in_len) n = c->in_len;
        if (memcmp(c->in, PREFACE + s->preface_seen, n)) return -1;
        buf_put(&f->out, c->in, n);
        s->preface_seen += n;
        pos = n;
        if (s->preface_seen < PREFACE_LEN) goto done;
    }
    frame_t fr;
    int got;
    while ((got = read_frame(c->in + pos, c->in_len - pos, &fr)) > 0) {
        const uint8_t *p = fr.p;
        size_t len = fr.len;
        int type = fr.type, flags = fr.flags;
        uint32_t id = fr.id;
        int pass = 0;
        if (!s->client_settings_seen && type != T_SETTINGS) return -1;
        if (c->in_block && type != T_CONT) return -1;
        stream_t *st = id ? find_stream(s, id) : NULL;
        // Not the frontend's: a call to the control service that is over. One below front_max_stream goes to the
        // frontend, for which it is a closed stream: it answers such frames itself (RST_STREAM), and counts their
        // bytes in its window.
        int unknown = !st && id > s->front_max_stream;
        switch (type) {
        case T_DATA:
            if (st) {
                span_flush(&span);
                size_t pad = 0;
                if (flags & F_PADDED) {
                    if (!len || p[0] >= len) return -1;
                    pad = p[0] + 1;
                }
                credit_client(s, st, pad);
                if (flags & F_END_STREAM) st->client_ended = 1;
                rec_put(&st->to_control, R_DATA, flags & F_END_STREAM, p + (pad ? 1 : 0), len - pad);
                drain_to_control(s, st);
                stream_maybe_done(s, st);
            } else if (unknown || !id) {
                span_flush(&span);
                credit_client(s, NULL, len);
            } else
                pass = 1;
            break;
        case T_HEADERS:
        case T_CONT: {
            span_flush(&span);
            int whole = header_fragment(c, type, flags, id, p, len);
            if (whole < 0) return -1;
            if (whole && client_headers(s, id, c->block_flags & F_END_STREAM) < 0) return -1;
            break;
        }
        case T_RST:
            if (st) {
                span_flush(&span);
                if (!st->control_ended && s->control.fd >= 0) put_rst(&s->control.out, id, get32(p));
                stream_forget(s, st);
            } else if (unknown)
                span_flush(&span);
            else
                pass = 1;
            break;
        case T_SETTINGS:
            span_flush(&span);
            if (flags & F_ACK)
                put_frame(&f->out, T_SETTINGS, F_ACK, 0, NULL, 0);
            else
                client_settings(s, p, len);
            break;
        case T_WINUP: {
            uint32_t increment = get32(p) & 0x7fffffff;
            if (!id) {  // the connection window for answers is the router's
                span_flush(&span);
                s->client_window += increment;
                drain_pending(s);
            } else if (st) {
                span_flush(&span);
                st->client_window += increment;
                drain_to_client(s, st);
                stream_maybe_done(s, st);
            } else if (unknown)
                span_flush(&span);
            else
                pass = 1;
            break;
        }
        case T_PRIORITY:
            span_flush(&span);  // advice only; the frontend may not know the stream
            break;
        default:  // PING, GOAWAY and frames HTTP/2 lets a peer ignore: the frontend's to answer
            if (st || unknown)
                span_flush(&span);
            else
                pass = 1;
        }
        if (pass) span_extend(&span, pos, 9 + len);
        pos += 9 + len;
    }
    if (got < 0) return -1;
    span_flush(&span);
done:
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 0;
}

/* ---- frames from the frontend ---- */

static void front_settings(session_t *s, const uint8_t *p, size_t len) {
    uint8_t kept[len ? len : 1];
    size_t kept_len = apply_settings(p, len, s->front.deflater, NULL, NULL, kept);
    frames_tmp.off = frames_tmp.len = 0;
    put_frame(&frames_tmp, T_SETTINGS, 0, 0, kept, kept_len);
    if (!s->front_settings_seen) {  // the server's preface: before anything else the client gets
        buf_put(&s->client.out, buf_head(&frames_tmp), frames_tmp.len);
        s->front_settings_seen = 1;
        drain_pending(s);
    } else
        to_client(s, FROM_ROUTER, buf_head(&frames_tmp), frames_tmp.len);
}

static int from_front(session_t *s) {
    endpoint_t *f = &s->front, *c = &s->client;
    size_t pos = 0;
    span_t span = {.to = c, .in = f->in};
    frame_t fr;
    int got;
    while ((got = read_frame(f->in + pos, f->in_len - pos, &fr)) > 0) {
        const uint8_t *h = fr.h, *p = fr.p;
        size_t len = fr.len;
        int type = fr.type, flags = fr.flags;
        uint32_t id = fr.id;
        if (!s->front_settings_seen && type != T_SETTINGS) return -1;
        if (f->in_block && type != T_CONT) return -1;
        switch (type) {
        case T_HEADERS:
        case T_CONT: {
            span_flush(&span);
            int whole = header_fragment(f, type, flags, id, p, len);
            if (whole < 0) return -1;
            if (whole) {
                if (hpack_decode(f->inflater, buf_head(&f->block), f->block.len, &decoded) < 0) return -1;
                frames_tmp.off = frames_tmp.len = 0;
                put_header_block(&frames_tmp, c->deflater, &decoded, id, f->block_flags & F_END_STREAM);
                to_client(s, FROM_FRONT, buf_head(&frames_tmp), frames_tmp.len);
            }
            break;
        }
        case T_PRIORITY:
            span_flush(&span);
            break;
        case T_SETTINGS:
            if (!(flags & F_ACK)) {
                span_flush(&span);
                front_settings(s, p, len);
                break;
            }
            __attribute__((fallthrough));  // an ACK goes on as read
        default:  // DATA, window updates, pings, resets, GOAWAY
            if (s->pending.len || (type == T_DATA && (int64_t)len > s->client_window)) {
                span_flush(&span);
                to_client(s, FROM_FRONT, h, 9 + len);  // behind what waits for the client's window
            } else {
                if (type == T_DATA) {
                    s->client_window -= len;
                    credit_front(s, len);
                }
                span_extend(&span, pos, 9 + len);
            }
        }
        pos += 9 + len;
    }
    if (got < 0) return -1;
    span_flush(&span);
    memmove(f->in, f->in + pos, f->in_len - pos);
    f->in_len -= pos;
    return 0;
}

/* ---- frames from the control service ---- */

static int from_control(session_t *s) {
    endpoint_t *k = &s->control;
    size_t pos = 0;
    frame_t fr;
    int got;
    while ((got = read_frame(k->in + pos, k->in_len - pos, &fr)) > 0) {
        const uint8_t *p = fr.p;
        size_t len = fr.len;
        int type = fr.type, flags = fr.flags;
        uint32_t id = fr.id;
        if (k->in_block && type != T_CONT) return -1;
        stream_t *st = id ? find_stream(s, id) : NULL;
        switch (type) {
        case T_SETTINGS: {
            if (flags & F_ACK) break;
            int64_t before = s->control_initial_window;
            apply_settings(p, len, k->deflater, &s->control_initial_window, &s->control_max_frame, NULL);
            for (stream_t *x = s->streams; x; x = x->next) x->control_window += s->control_initial_window - before;
            put_frame(&k->out, T_SETTINGS, F_ACK, 0, NULL, 0);
            for (stream_t *x = s->streams; x; x = x->next) drain_to_control(s, x);
            break;
        }
        case T_PING:
            if (!(flags & F_ACK)) put_frame(&k->out, T_PING, F_ACK, 0, p, 8);
            break;
        case T_WINUP: {
            uint32_t increment = get32(p) & 0x7fffffff;
            if (!id) {
                s->control_window += increment;
                for (stream_t *x = s->streams; x; x = x->next) drain_to_control(s, x);
            } else if (st) {
                st->control_window += increment;
                drain_to_control(s, st);
            }
            break;
        }
        case T_HEADERS:
        case T_CONT: {
            int whole = header_fragment(k, type, flags, id, p, len);
            if (whole < 0) return -1;
            if (!whole) break;
            if (hpack_decode(k->inflater, buf_head(&k->block), k->block.len, &decoded) < 0) return -1;
            st = find_stream(s, id);
            if (!st) break;
            int end = k->block_flags & F_END_STREAM;
            rec_put_headers(&st->to_client, &decoded, end ? F_END_STREAM : 0);
            if (end) st->control_ended = 1;
            drain_to_client(s, st);
            stream_maybe_done(s, st);
            break;
        }
        case T_DATA: {
            s->control_received += len;
            if (!st) break;
            size_t pad = 0;
            if (flags & F_PADDED) {
                if (!len || p[0] >= len) return -1;
                pad = p[0] + 1;
            }
            rec_put(&st->to_client, R_DATA, flags & F_END_STREAM, p + (pad ? 1 : 0), len - pad);
            if (flags & F_END_STREAM) st->control_ended = 1;
            drain_to_client(s, st);
            stream_maybe_done(s, st);
            break;
        }
        case T_RST:
            if (st) {
                frames_tmp.off = frames_tmp.len = 0;
                put_rst(&frames_tmp, id, get32(p));
                to_client(s, FROM_ROUTER, buf_head(&frames_tmp), frames_tmp.len);
                stream_forget(s, st);
            }
            break;
        case T_GOAWAY: {
            uint32_t last = get32(p) & 0x7fffffff;
            for (stream_t *x = s->streams, *next; x; x = next) {
                next = x->next;
                if (x->id > last) fail_stream(s, x, GRPC_UNAVAILABLE, "the control service is shutting down");
            }
            break;
        }
        default:
            break;
        }
        pos += 9 + len;
    }
    if (got < 0) return -1;
    if (s->control_received >= CONTROL_WINDOW / 2) {
        put_window_update(&k->out, 0, s->control_received);
        s->control_received = 0;
    }
    memmove(k->in, k->in + pos, k->in_len - pos);
    k->in_len -= pos;
    return 0;
}

/* ---- the event loop ---- */

static void accept_clients(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR) LOG_WARN("accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        session_t *s = calloc(1, sizeof *s);
        if (!s) abort();
        s->control.fd = -1;
        s->client_window = DEFAULT_WINDOW;
        s->client_initial_window = DEFAULT_WINDOW;
        int front = connect_to(front_addr);
        if (front < 0) {
            LOG_WARN("cannot reach the frontend: %s", strerror(errno));
            close(fd);
            free(s);
            continue;
        }
        if (endpoint_open(&s->client, CLIENT, s, fd) < 0 || endpoint_open(&s->front, FRONT, s, front) < 0) abort();
        s->client.events = 0;  // set_events decides
        set_events(&s->client);
        s->front.connecting = 1;
        LOG_DEBUG("client connection accepted");
    }
}

static void on_event(endpoint_t *ep, uint32_t events) {
    session_t *s = ep->s;
    if (s->closed || ep->fd < 0) return;
    int readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    if (ep->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err && ep->side == FRONT) {
            LOG_WARN("cannot reach the frontend: %s", strerror(err));
            return session_close(s, "no frontend");
        }
        if (err) {
            control_lost(s, strerror(err));
            readable = 0;
        } else
            ep->connecting = 0;
    }
    if (readable && ep->fd >= 0 && !ep->connecting) {
        ssize_t n = read(ep->fd, ep->in + ep->in_len, IN_CAP - ep->in_len);
        int rc = 0;
        const char *why = NULL;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            rc = -1;
            why = n == 0 ? "the connection was closed" : strerror(errno);
        } else if (n > 0) {
            ep->in_len += n;
            rc = ep->side == CLIENT ? from_client(s) : ep->side == FRONT ? from_front(s) : from_control(s);
            why = "it broke HTTP/2";
        }
        if (rc < 0 && ep->side == CONTROL)
            control_lost(s, why);
        else if (rc < 0) {
            if (n > 0)
                LOG_WARN("%s broke HTTP/2; closing the client's connection",
                         ep->side == CLIENT ? "a client" : "the frontend");
            return session_close(s, why);
        }
    }
    if (s->front_owed >= FRONT_WINDOW / 4) {  // keep the frontend's connection window open as the client reads
        put_window_update(&s->front.out, 0, s->front_owed);
        s->front_owed = 0;
    }
    if (flush_out(&s->front) < 0) return session_close(s, "the frontend's connection broke");
    if (s->control.fd >= 0 && flush_out(&s->control) < 0) control_lost(s, strerror(errno));
    if (flush_out(&s->client) < 0) return session_close(s, "the client's connection broke");
    set_events(&s->client);
    set_events(&s->front);
    set_events(&s->control);
}

static struct addrinfo *resolve(const char *hostport) {
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) {
        fprintf(stderr, "grpc-router: %s is not HOST:PORT\n", hostport);
        exit(2);
    }
    memcpy(host, hostport, colon - hostport);
    host[colon - hostport] = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc) {
        fprintf(stderr, "grpc-router: cannot resolve %s: %s\n", hostport, gai_strerror(rc));
        exit(2);
    }
    return res;
}

static void usage(void) {
    fprintf(stderr,
            "usage: grpc-router --listen HOST:PORT --frontend HOST:PORT --control HOST:PORT "
            "--control-path PATH [--control-path PATH ...] [--verbose]\n"
            "Routes each gRPC call by its method path: the control paths to the control service, every other call to "
            "the frontend.\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *listen_at = NULL, *front = NULL, *control = NULL;
    control_paths = calloc(argc, sizeof *control_paths);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--listen"))
            listen_at = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--frontend"))
            front = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--control"))
            control = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--control-path"))
            control_paths[control_path_count++] = argv[++i];
        else
            usage();
    }
    if (!listen_at || !front || !control) usage();
    signal(SIGPIPE, SIG_IGN);
    front_addr = resolve(front);
    control_addr = resolve(control);
    struct addrinfo *at = resolve(listen_at);
    int listener = socket(at->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || bind(listener, at->ai_addr, at->ai_addrlen) < 0 || listen(listener, 1024) < 0) {
        fprintf(stderr, "grpc-router: cannot listen on %s: %s\n", listen_at, strerror(errno));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    endpoint_t listener_ep = {.side = LISTENER, .fd = listener};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_ep};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    LOG_INFO("listening on %s: %zu control paths to %s, every other call to %s", listen_at, control_path_count,
             control, front);
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(epfd, events, 64, -1);
        if (n < 0 && errno != EINTR) {
            LOG_WARN("epoll_wait: %s", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            endpoint_t *ep = events[i].data.ptr;
            if (ep->side == LISTENER)
                accept_clients(listener);
            else
                on_event(ep, events[i].events);
        }
        while (closed_sessions) {
            session_t *s = closed_sessions;
            closed_sessions = s->next_closed;
            session_free(s);
        }
    }
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Triton's callbacks for triton_dynamo.triton, in C, so that Triton's threads never take Python's GIL.
 *
 * Why: a ctypes callback on a thread Python did not create builds and tears down a thread state and waits for the
 * GIL every time; with one call for the output buffer, one per response, one for the request's release and eight
 * for trace activities, that cost more than Triton itself on small requests. Here the callbacks only queue an event
 * (response, request released, trace released) on a channel, store trace timestamps, and hand out output buffers
 * from malloc. Python drains a channel on its event loop when the channel's eventfd becomes readable.
 *
 * Releases: Python marks a call waiting once it has seen the final response; until then the request and trace
 * release callbacks only set a bit, which Python reads at the final response (Triton mostly releases both before
 * Python gets there). An event is queued only for a release that comes after Python started waiting, so a request
 * normally costs the loop one event, not two or three.
 *
 * Requests are built and sent here too (td_request_new, td_request_send): two calls from Python instead of eight to
 * ten through ctypes.
 *
 * Output buffers carry a small header. Reading a response marks its buffers taken: Python then either wraps one in a
 * numpy array (and frees it when the array dies) or copies it out and hands it back (td_buffer_untake). Triton's
 * release callback frees only buffers nobody took.
 *
 * Plain C with no Python headers: it builds once for every Python version.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TD_EXPORT __attribute__((visibility("default")))

enum { TD_EV_RESPONSE = 1, TD_EV_REQUEST_RELEASE = 2, TD_EV_TRACE_RELEASE = 3 };
enum { TD_TRACE_ACTIVITIES = 7, TD_BUFFER_HEADER = 64, TD_RELEASE_ALL = 1, TD_MEMORY_CPU = 0, TD_INLINE_DIMS = 8 };
/* td_call.state bits */
enum { TD_REQUEST_RELEASED = 1, TD_TRACE_RELEASED = 2, TD_PYTHON_WAITING = 4 };

typedef void* (*error_new_fn)(int code, const char* msg);
typedef void* (*trace_delete_fn)(void* trace);
typedef void* (*trace_parent_id_fn)(void* trace, uint64_t* parent_id);
typedef void (*error_delete_fn)(void* error);
typedef void* (*response_error_fn)(void* response);
typedef void* (*response_model_fn)(void* response, const char** name, int64_t* version);
typedef void* (*response_count_fn)(void* response, uint32_t* count);
typedef void* (*request_new_fn)(void** request, void* server, const char* model, int64_t version);
typedef void* (*request_set_id_fn)(void* request, const char* id);
typedef void* (*request_add_input_fn)(void* request, const char* name, int datatype, const int64_t* shape,
                                      uint64_t dim_count);
typedef void* (*request_append_data_fn)(void* request, const char* name, const void* base, size_t byte_size,
                                        int memory_type, int64_t memory_type_id);
typedef void* (*request_add_output_fn)(void* request, const char* name);
typedef void* (*request_set_release_fn)(void* request, void* fn, void* userp);
typedef void* (*request_set_response_fn)(void* request, void* allocator, void* allocator_userp, void* fn,
                                         void* userp);
typedef void* (*request_delete_fn)(void* request);
typedef void* (*trace_new_fn)(void** trace, int level, uint64_t parent_id, void* activity_fn, void* release_fn,
                              void* userp);
typedef void* (*infer_async_fn)(void* server, void* request, void* trace);
typedef void* (*response_output_fn)(void* response, uint32_t index, const char** name, int* datatype,
                                    const int64_t** shape, uint64_t* dim_count, const void** base,
                                    size_t* byte_size, int* memory_type, int64_t* memory_type_id, void** userp);

/* Triton's functions, found in the process (libtritonserver is loaded with RTLD_GLOBAL before td_init). */
static error_new_fn g_error_new;
static trace_delete_fn g_trace_delete;
static trace_parent_id_fn g_trace_parent_id;
static error_delete_fn g_error_delete;
static response_error_fn g_response_error;
static response_model_fn g_response_model;
static response_count_fn g_response_output_count;
static response_count_fn g_response_parameter_count;
static response_output_fn g_response_output;
static request_new_fn g_request_new;
static request_set_id_fn g_request_set_id;
static request_add_input_fn g_request_add_input;
static request_append_data_fn g_request_append_data;
static request_add_output_fn g_request_add_output;
static request_set_release_fn g_request_set_release;
static request_set_response_fn g_request_set_response;
static request_delete_fn g_request_delete;
static trace_new_fn g_trace_new;
static infer_async_fn g_infer_async;

typedef struct {
  uint64_t handle; /* the Python side's id of the request */
  void* ptr;       /* the response, request or trace */
  uint32_t kind;
  uint32_t flags;
} td_event;

typedef struct {
  pthread_mutex_t mu;
  td_event* buf;
  size_t cap, head, count;
  int efd;
  pthread_t reader; /* the event loop's thread, which created the channel and drains it */
} td_channel;

typedef struct {
  td_channel* ch;
  uint64_t handle;
  void* trace;
  int state;          /* TD_*_RELEASED and TD_PYTHON_WAITING bits, changed atomically */
  uint64_t ts[TD_TRACE_ACTIVITIES];
} td_call;

typedef struct {
  int taken;
  size_t size;
} td_buffer;

/* Triton's functions this file calls, by name; td_init fills them in. */
static const struct {
  void** slot;
  const char* name;
} k_functions[] = {
    {(void**)&g_error_new, "TRITONSERVER_ErrorNew"},
    {(void**)&g_trace_delete, "TRITONSERVER_InferenceTraceDelete"},
    {(void**)&g_trace_parent_id, "TRITONSERVER_InferenceTraceParentId"},
    {(void**)&g_error_delete, "TRITONSERVER_ErrorDelete"},
    {(void**)&g_response_error, "TRITONSERVER_InferenceResponseError"},
    {(void**)&g_response_model, "TRITONSERVER_InferenceResponseModel"},
    {(void**)&g_response_output_count, "TRITONSERVER_InferenceResponseOutputCount"},
    {(void**)&g_response_parameter_count, "TRITONSERVER_InferenceResponseParameterCount"},
    {(void**)&g_response_output, "TRITONSERVER_InferenceResponseOutput"},
    {(void**)&g_request_new, "TRITONSERVER_InferenceRequestNew"},
    {(void**)&g_request_set_id, "TRITONSERVER_InferenceRequestSetId"},
    {(void**)&g_request_add_input, "TRITONSERVER_InferenceRequestAddInput"},
    {(void**)&g_request_append_data, "TRITONSERVER_InferenceRequestAppendInputData"},
    {(void**)&g_request_add_output, "TRITONSERVER_InferenceRequestAddRequestedOutput"},
    {(void**)&g_request_set_release, "TRITONSERVER_InferenceRequestSetReleaseCallback"},
    {(void**)&g_request_set_response, "TRITONSERVER_InferenceRequestSetResponseCallback"},
    {(void**)&g_request_delete, "TRITONSERVER_InferenceRequestDelete"},
    {(void**)&g_trace_new, "TRITONSERVER_InferenceTraceNew"},
    {(void**)&g_infer_async, "TRITONSERVER_ServerInferAsync"},
};

/* Returns 0, or -1 when a Triton function is missing (the library is not loaded, or too old). */
TD_EXPORT int td_init(void) {
  for (size_t i = 0; i < sizeof k_functions / sizeof k_functions[0]; i++)
    if (!(*k_functions[i].slot = dlsym(RTLD_DEFAULT, k_functions[i].name))) return -1;
  return 0;
}

TD_EXPORT td_channel* td_channel_new(void) {
  td_channel* ch = calloc(1, sizeof(td_channel));
  if (!ch) return NULL;
  ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ch->cap = 1024;
  ch->buf = malloc(ch->cap * sizeof(td_event));
  if (ch->efd < 0 || !ch->buf) {
    if (ch->efd >= 0) close(ch->efd);
    free(ch->buf);
    free(ch);
    return NULL;
  }
  pthread_mutex_init(&ch->mu, NULL);
  ch->reader = pthread_self();
  return ch;
}

TD_EXPORT int td_channel_fd(td_channel* ch) { return ch->efd; }

TD_EXPORT void td_channel_free(td_channel* ch) {
  close(ch->efd);
  pthread_mutex_destroy(&ch->mu);
  free(ch->buf);
  free(ch);
}

/* Append an event; wake the reader only when the queue was empty (it drains everything on each wake). */
static void push(td_channel* ch, uint64_t handle, void* ptr, uint32_t kind, uint32_t flags) {
  int was_empty;
  pthread_mutex_lock(&ch->mu);
  if (ch->count == ch->cap) {
    size_t cap = ch->cap * 2;
    td_event* grown = malloc(cap * sizeof(td_event));
    if (!grown) abort(); /* losing a callback would leave a request in flight forever */
    for (size_t i = 0; i < ch->count; i++) grown[i] = ch->buf[(ch->head + i) % ch->cap];
    free(ch->buf);
    ch->buf = grown;
    ch->cap = cap;
    ch->head = 0;
  }
  td_event* ev = &ch->buf[(ch->head + ch->count) % ch->cap];
  ev->handle = handle;
  ev->ptr = ptr;
  ev->kind = kind;
  ev->flags = flags;
  was_empty = ch->count++ == 0;
  pthread_mutex_unlock(&ch->mu);
  if (was_empty) {
    uint64_t one = 1;
    ssize_t ignored = write(ch->efd, &one, sizeof one);
    (void)ignored; /* the counter cannot overflow in practice; a failed write only delays the reader */
  }
}

/* Reset the eventfd: before draining, so that a push after the drain wakes the reader again. Here rather than
 * os.read in Python, which lets go of the GIL: under load Dynamo's threads took it each time, and the loop waited
 * about 35 us (wall time, under cProfile) per read to have it back. */
TD_EXPORT void td_channel_reset(td_channel* ch) {
  uint64_t count;
  ssize_t ignored = read(ch->efd, &count, sizeof count);
  (void)ignored; /* EAGAIN: nothing was written since the last reset */
}

/* Move up to max queued events to out; returns how many. */
TD_EXPORT size_t td_channel_drain(td_channel* ch, td_event* out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&ch->mu);
  while (n < max && ch->count > 0) {
    out[n++] = ch->buf[ch->head];
    ch->head = (ch->head + 1) % ch->cap;
    ch->count--;
  }
  pthread_mutex_unlock(&ch->mu);
  return n;
}

TD_EXPORT td_call* td_call_new(td_channel* ch, uint64_t handle) {
  td_call* call = calloc(1, sizeof(td_call));
  if (call) {
    call->ch = ch;
    call->handle = handle;
  }
  return call;
}

TD_EXPORT uint64_t* td_call_timestamps(td_call* call) { return call->ts; }
TD_EXPORT void td_call_free(td_call* call) { free(call); }

/* The TD_*_RELEASED bits so far. */
TD_EXPORT int td_call_state(td_call* call) { return __atomic_load_n(&call->state, __ATOMIC_ACQUIRE); }

/* Python has the final response and now waits for the releases: returns the bits set before, so Python handles
 * those releases itself; a release after this queues an event. */
TD_EXPORT int td_call_wait(td_call* call) {
  return __atomic_fetch_or(&call->state, TD_PYTHON_WAITING, __ATOMIC_ACQ_REL);
}

static void released(td_call* call, int bit, void* ptr, uint32_t kind) {
  /* Read before publishing the bit: once both bits are set, the loop thread may free the call at any moment. */
  td_channel* ch = call->ch;
  uint64_t handle = call->handle;
  int before = __atomic_fetch_or(&call->state, bit, __ATOMIC_ACQ_REL); /* after the timestamps it guards */
  if (before & TD_PYTHON_WAITING) push(ch, handle, ptr, kind, 0);
}

/* TRITONSERVER_InferenceResponseCompleteFn_t */
TD_EXPORT void td_on_response(void* response, uint32_t flags, void* userp) {
  td_call* call = userp;
  push(call->ch, call->handle, response, TD_EV_RESPONSE, flags);
}

/* TRITONSERVER_InferenceRequestReleaseFn_t */
TD_EXPORT void td_on_request_release(void* request, uint32_t flags, void* userp) {
  if (flags & TD_RELEASE_ALL) released(userp, TD_REQUEST_RELEASED, request, TD_EV_REQUEST_RELEASE);
}

/* Whether a trace is a child that Triton spawned from a request's trace (an ensemble step, a python-backend BLS
 * request). A child carries the root's callbacks and user pointer, but may outlive the request and so its td_call:
 * its callbacks must not touch the call. Only the root, made by td_request_send, has no parent. */
static int is_child(void* trace) {
  uint64_t parent = 0;
  void* err = g_trace_parent_id(trace, &parent);
  if (err) {
    g_error_delete(err);
    return 1; /* unknown: treat it as a child, which never touches the call */
  }
  return parent != 0;
}

/* TRITONSERVER_InferenceTraceActivityFn_t: only the request's own trace, not children spawned by ensembles or BLS. */
TD_EXPORT void td_on_trace_activity(void* trace, int activity, uint64_t timestamp_ns, void* userp) {
  if (is_child(trace)) return;
  td_call* call = userp;
  if (activity >= 0 && activity < TD_TRACE_ACTIVITIES) call->ts[activity] = timestamp_ns;
}

/* TRITONSERVER_InferenceTraceReleaseFn_t: takes ownership of each trace, root and children.
 *
 * Triton mostly releases the root trace inside a response or request delete that Python makes on the loop thread:
 * no event then even when Python waits, since Python reads the state right after its delete calls. */
static uint64_t g_children_released;

/* How many child traces were released (and left the calls alone): for tests and diagnostics. */
TD_EXPORT uint64_t td_trace_children_released(void) { return __atomic_load_n(&g_children_released, __ATOMIC_RELAXED); }

TD_EXPORT void td_on_trace_release(void* trace, void* userp) {
  if (is_child(trace)) {
    g_trace_delete(trace);
    __atomic_fetch_add(&g_children_released, 1, __ATOMIC_RELAXED);
    return;
  }
  td_call* call = userp;
  g_trace_delete(trace);
  if (pthread_equal(pthread_self(), call->ch->reader))
    __atomic_fetch_or(&call->state, TD_TRACE_RELEASED, __ATOMIC_ACQ_REL);
  else
    released(call, TD_TRACE_RELEASED, trace, TD_EV_TRACE_RELEASE);
}

typedef struct {
  const char* name;
  const void* base;
  uint64_t byte_size;
  int64_t datatype;
  uint64_t dim_count;
  const int64_t* shape; /* NULL: the shape is in dims[] */
  int64_t dims[TD_INLINE_DIMS];
} td_input;

/* A request with its id, inputs, requested outputs and this binding's callbacks, in one call; returns a
 * TRITONSERVER_Error* (the caller frees it) and then has deleted the request itself. The input buffers are not
 * copied: they must live until Triton releases the request. */
TD_EXPORT void* td_request_new(void* server, const char* model, int64_t version, const char* id,
                               const td_input* inputs, uint32_t input_count, const char* const* outputs,
                               uint32_t output_count, void* allocator, td_call* call, void** request_out) {
  void* request = NULL;
  void* err = g_request_new(&request, server, model, version);
  if (err) return err;
  if (id && id[0]) err = g_request_set_id(request, id);
  for (uint32_t i = 0; !err && i < input_count; i++) {
    const td_input* in = &inputs[i];
    err = g_request_add_input(request, in->name, (int)in->datatype, in->shape ? in->shape : in->dims, in->dim_count);
    /* a zero-byte input still needs a data segment; its address is never read */
    if (!err) err = g_request_append_data(request, in->name, in->byte_size ? in->base : (const void*)in,
                                          in->byte_size, TD_MEMORY_CPU, 0);
  }
  for (uint32_t i = 0; !err && i < output_count; i++) err = g_request_add_output(request, outputs[i]);
  if (!err) err = g_request_set_release(request, (void*)td_on_request_release, call);
  if (!err) err = g_request_set_response(request, allocator, NULL, (void*)td_on_response, call);
  if (err) {
    g_request_delete(request);
    return err;
  }
  *request_out = request;
  return NULL;
}

/* Send a request, traced at `trace_level` (0: not traced); returns a TRITONSERVER_Error* (the caller frees it).
 * On failure the request stays the caller's, and no callback will come for it. */
TD_EXPORT void* td_request_send(void* server, void* request, td_call* call, int trace_level) {
  void* trace = NULL;
  void* err = NULL;
  if (trace_level) {
    err = g_trace_new(&trace, trace_level, 0, (void*)td_on_trace_activity, (void*)td_on_trace_release, call);
    if (err) return err;
    call->trace = trace;
  }
  err = g_infer_async(server, request, trace);
  /* Triton released the trace if it got as far as attaching it to the request; otherwise it is still ours. */
  if (err && trace && !(__atomic_load_n(&call->state, __ATOMIC_ACQUIRE) & TD_TRACE_RELEASED)) g_trace_delete(trace);
  return err;
}

/* TRITONSERVER_ResponseAllocatorAllocFn_t: every output goes to CPU memory from malloc, 64-byte aligned. */
TD_EXPORT void* td_alloc(void* allocator, const char* name, size_t byte_size, int memory_type,
                         int64_t memory_type_id, void* userp, void** buffer, void** buffer_userp,
                         int* actual_memory_type, int64_t* actual_memory_type_id) {
  (void)allocator, (void)name, (void)memory_type, (void)memory_type_id, (void)userp;
  *actual_memory_type = 0;
  *actual_memory_type_id = 0;
  *buffer = NULL;
  *buffer_userp = NULL;
  if (byte_size == 0) return NULL;
  void* block = NULL;
  if (posix_memalign(&block, TD_BUFFER_HEADER, TD_BUFFER_HEADER + byte_size) != 0)
    return g_error_new(1 /* INTERNAL */, "triton-dynamo: out of memory for an output buffer");
  td_buffer* header = block;
  header->taken = 0;
  header->size = byte_size;
  *buffer = (char*)block + TD_BUFFER_HEADER;
  *buffer_userp = header;
  return NULL;
}

/* TRITONSERVER_ResponseAllocatorReleaseFn_t */
TD_EXPORT void* td_release(void* allocator, void* buffer, void* buffer_userp, size_t byte_size, int memory_type,
                           int64_t memory_type_id) {
  (void)allocator, (void)buffer, (void)byte_size, (void)memory_type, (void)memory_type_id;
  td_buffer* header = buffer_userp;
  if (header && !__atomic_load_n(&header->taken, __ATOMIC_ACQUIRE)) free(header);
  return NULL;
}

/* TRITONSERVER_ResponseAllocatorStartFn_t */
TD_EXPORT void* td_start(void* allocator, void* userp) {
  (void)allocator, (void)userp;
  return NULL;
}

static void td_buffer_take(td_buffer* header) { __atomic_store_n(&header->taken, 1, __ATOMIC_RELEASE); }
/* Python copied the buffer out: the response's release frees it, as if nobody had taken it. */
TD_EXPORT void td_buffer_untake(td_buffer* header) { __atomic_store_n(&header->taken, 0, __ATOMIC_RELEASE); }
TD_EXPORT void td_buffer_free(td_buffer* header) { free(header); }

/* Everything Python needs from a response, read in one call (each call from Python costs far more than here). */

typedef struct {
  void* error; /* owned by the response */
  int64_t version;
  uint32_t output_count;
  uint32_t parameter_count;
} td_response_head;

typedef struct {
  const char* name;
  const int64_t* shape; /* owned by the response; also copied to dims[] when it fits */
  const void* base;
  void* header; /* our buffer, now owned by the reader; NULL when Triton owns the memory */
  uint64_t byte_size;
  int64_t datatype;
  uint64_t dim_count;
  int64_t dims[TD_INLINE_DIMS];
} td_output;

/* The layout of every struct Python reads or writes, as {sizeof, offsetof each field in declaration order}: the
 * binding compares them with its ctypes declarations when it loads this library (_capi.Shim), so that the two
 * declarations cannot drift apart unnoticed. */
TD_EXPORT const uint64_t td_layout_event[] = {sizeof(td_event), offsetof(td_event, handle), offsetof(td_event, ptr),
                                              offsetof(td_event, kind), offsetof(td_event, flags)};
TD_EXPORT const uint64_t td_layout_response_head[] = {
    sizeof(td_response_head), offsetof(td_response_head, error), offsetof(td_response_head, version),
    offsetof(td_response_head, output_count), offsetof(td_response_head, parameter_count)};
TD_EXPORT const uint64_t td_layout_output[] = {
    sizeof(td_output), offsetof(td_output, name), offsetof(td_output, shape), offsetof(td_output, base),
    offsetof(td_output, header), offsetof(td_output, byte_size), offsetof(td_output, datatype),
    offsetof(td_output, dim_count), offsetof(td_output, dims)};
TD_EXPORT const uint64_t td_layout_input[] = {
    sizeof(td_input), offsetof(td_input, name), offsetof(td_input, base), offsetof(td_input, byte_size),
    offsetof(td_input, datatype), offsetof(td_input, dim_count), offsetof(td_input, shape),
    offsetof(td_input, dims)};

/* Fill head and up to max_outputs outputs; returns a TRITONSERVER_Error* on failure (the caller frees it). Every
 * output buffer reported here is marked taken: the caller must free it with td_buffer_free once done with it. */
TD_EXPORT void* td_read_response(void* response, td_response_head* head, td_output* outputs, uint32_t max_outputs) {
  void* err;
  memset(head, 0, sizeof *head);
  head->error = g_response_error(response);
  if (head->error) return NULL;
  const char* model; /* the request's, as is the response's id: Python has both */
  if ((err = g_response_model(response, &model, &head->version))) return err;
  if ((err = g_response_parameter_count(response, &head->parameter_count))) return err;
  if ((err = g_response_output_count(response, &head->output_count))) return err;
  uint32_t n = head->output_count < max_outputs ? head->output_count : max_outputs;
  for (uint32_t i = 0; i < n; i++) {
    td_output* out = &outputs[i];
    int datatype = 0, memory_type = 0;
    int64_t memory_type_id = 0;
    size_t byte_size = 0;
    void* userp = NULL;
    err = g_response_output(response, i, &out->name, &datatype, &out->shape, &out->dim_count, &out->base, &byte_size,
                            &memory_type, &memory_type_id, &userp);
    if (err) {
      /* hand the buffers taken so far back, so that deleting the response frees them */
      for (uint32_t j = 0; j < i; j++)
        if (outputs[j].header) __atomic_store_n(&((td_buffer*)outputs[j].header)->taken, 0, __ATOMIC_RELEASE);
      return err;
    }
    out->datatype = datatype;
    out->byte_size = byte_size;
    out->header = userp;
    if (userp) td_buffer_take(userp);
    for (uint64_t d = 0; d < out->dim_count && d < TD_INLINE_DIMS; d++) out->dims[d] = out->shape[d];
  }
  return NULL;
}


/*
 * Triton's log, drained without Python. Triton writes each log line synchronously, under its logger's lock, into
 * the pipe that Python reads (logs.py). A Python reader needs the GIL between two reads; a thread that holds the GIL
 * and calls into Triton, which may log (TRITONSERVER_ServerInferAsync does, at verbose levels), then waits for the
 * logger's lock while its holder waits for room in the full pipe, and the reader waits for the GIL: with verbose
 * logging under load a worker hung for good. This thread moves the pipe's text into memory without Python, so a
 * write never waits on Python; Python takes it with td_log_take, which blocks without the GIL (ctypes.CDLL). Past
 * the buffer's capacity new text is dropped, and counted for Python to report.
 */
typedef struct {
  int fd;
  pthread_mutex_t lock;
  pthread_cond_t ready;
  char* ring;
  size_t capacity, start, length;
  uint64_t dropped;
} td_log;

static void* log_drain(void* arg) {
  td_log* log = arg;
  char chunk[65536];
  for (;;) {
    ssize_t n = read(log->fd, chunk, sizeof chunk);
    if (n <= 0) {
      if (n < 0 && errno != EINTR) usleep(1000); /* a read error would otherwise spin */
      continue;
    }
    pthread_mutex_lock(&log->lock);
    size_t keep = log->capacity - log->length;
    if ((size_t)n < keep) keep = (size_t)n;
    size_t end = (log->start + log->length) % log->capacity;
    size_t first = keep < log->capacity - end ? keep : log->capacity - end;
    memcpy(log->ring + end, chunk, first);
    memcpy(log->ring, chunk + first, keep - first);
    log->length += keep;
    log->dropped += (uint64_t)n - keep;
    pthread_cond_signal(&log->ready);
    pthread_mutex_unlock(&log->lock);
  }
  return NULL;
}

/* Start draining pipe ``fd`` into a buffer of ``capacity`` bytes; NULL if a thread cannot be started. */
TD_EXPORT td_log* td_log_start(int fd, size_t capacity) {
  td_log* log = calloc(1, sizeof *log);
  if (!log || !(log->ring = malloc(capacity))) {
    free(log);
    return NULL;
  }
  log->fd = fd;
  log->capacity = capacity;
  pthread_mutex_init(&log->lock, NULL);
  pthread_cond_init(&log->ready, NULL);
  pthread_t thread;
  if (pthread_create(&thread, NULL, log_drain, log) != 0) {
    free(log->ring);
    free(log);
    return NULL;
  }
  pthread_detach(thread);
  return log;
}

/* Wait for text, then move up to ``size`` bytes of it to ``out``; ``*dropped`` gets the bytes dropped since the last
 * call. Returns the bytes moved (0 when only a drop is reported). */
TD_EXPORT size_t td_log_take(td_log* log, char* out, size_t size, uint64_t* dropped) {
  pthread_mutex_lock(&log->lock);
  while (log->length == 0 && log->dropped == 0) pthread_cond_wait(&log->ready, &log->lock);
  size_t n = log->length < size ? log->length : size;
  size_t first = n < log->capacity - log->start ? n : log->capacity - log->start;
  memcpy(out, log->ring + log->start, first);
  memcpy(out + first, log->ring, n - first);
  log->start = (log->start + n) % log->capacity;
  log->length -= n;
  *dropped = log->dropped;
  log->dropped = 0;
  pthread_mutex_unlock(&log->lock);
  return n;
}

/*
 * Triton's callbacks for triton_dynamo.triton, in C, so that Triton's threads never take Python's GIL.
 *
 * Why: a ctypes callback on a thread Python did not create builds and tears down a thread state and waits for the
 * GIL every time; with one call for the output buffer, one per response, one for the request's release and eight
 * for trace activities, that cost more than Triton itself on small requests. Here the callbacks only queue an event
 * (response, request released, trace released) on a channel, store trace timestamps, and hand out output buffers
 * from malloc. Python drains a channel on its event loop when the channel's eventfd becomes readable.
 *
 * Output buffers carry a small header. Python marks a buffer taken when it wraps it in a numpy array (it then frees
 * the buffer when the array dies); Triton's release callback frees only buffers nobody took.
 *
 * Plain C with no Python headers: it builds once for every Python version.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TD_EXPORT __attribute__((visibility("default")))

enum { TD_EV_RESPONSE = 1, TD_EV_REQUEST_RELEASE = 2, TD_EV_TRACE_RELEASE = 3 };
enum { TD_TRACE_ACTIVITIES = 7, TD_BUFFER_HEADER = 64, TD_RELEASE_ALL = 1 };

typedef void* (*error_new_fn)(int code, const char* msg);
typedef void* (*trace_delete_fn)(void* trace);
typedef void* (*response_error_fn)(void* response);
typedef void* (*response_model_fn)(void* response, const char** name, int64_t* version);
typedef void* (*response_id_fn)(void* response, const char** id);
typedef void* (*response_count_fn)(void* response, uint32_t* count);
typedef void* (*response_output_fn)(void* response, uint32_t index, const char** name, int* datatype,
                                    const int64_t** shape, uint64_t* dim_count, const void** base,
                                    size_t* byte_size, int* memory_type, int64_t* memory_type_id, void** userp);

/* Triton's functions, found in the process (libtritonserver is loaded with RTLD_GLOBAL before td_init). */
static error_new_fn g_error_new;
static trace_delete_fn g_trace_delete;
static response_error_fn g_response_error;
static response_model_fn g_response_model;
static response_id_fn g_response_id;
static response_count_fn g_response_output_count;
static response_count_fn g_response_parameter_count;
static response_output_fn g_response_output;

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
  int trace_released; /* the root trace was released (and deleted here) */
  uint64_t ts[TD_TRACE_ACTIVITIES];
} td_call;

typedef struct {
  int taken;
  size_t size;
} td_buffer;

/* Returns 0, or -1 when a Triton function is missing (the library is not loaded, or too old). */
TD_EXPORT int td_init(void) {
  g_error_new = (error_new_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_ErrorNew");
  g_trace_delete = (trace_delete_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceTraceDelete");
  g_response_error = (response_error_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceResponseError");
  g_response_model = (response_model_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceResponseModel");
  g_response_id = (response_id_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceResponseId");
  g_response_output_count = (response_count_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceResponseOutputCount");
  g_response_parameter_count =
      (response_count_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceResponseParameterCount");
  g_response_output = (response_output_fn)dlsym(RTLD_DEFAULT, "TRITONSERVER_InferenceResponseOutput");
  return (g_error_new && g_trace_delete && g_response_error && g_response_model && g_response_id &&
          g_response_output_count && g_response_parameter_count && g_response_output)
             ? 0
             : -1;
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

TD_EXPORT void td_call_set_trace(td_call* call, void* trace) { call->trace = trace; }
TD_EXPORT uint64_t* td_call_timestamps(td_call* call) { return call->ts; }
TD_EXPORT void td_call_free(td_call* call) { free(call); }

/* Whether Triton already released the request's trace: after a failed ServerInferAsync, Triton has released it if
 * it got as far as attaching it to the request, and the caller still owns it otherwise. */
TD_EXPORT int td_call_trace_released(td_call* call) { return __atomic_load_n(&call->trace_released, __ATOMIC_ACQUIRE); }

/* TRITONSERVER_InferenceResponseCompleteFn_t */
TD_EXPORT void td_on_response(void* response, uint32_t flags, void* userp) {
  td_call* call = userp;
  push(call->ch, call->handle, response, TD_EV_RESPONSE, flags);
}

/* TRITONSERVER_InferenceRequestReleaseFn_t */
TD_EXPORT void td_on_request_release(void* request, uint32_t flags, void* userp) {
  td_call* call = userp;
  if (flags & TD_RELEASE_ALL) push(call->ch, call->handle, request, TD_EV_REQUEST_RELEASE, flags);
}

/* TRITONSERVER_InferenceTraceActivityFn_t: only the request's own trace, not children spawned by ensembles. */
TD_EXPORT void td_on_trace_activity(void* trace, int activity, uint64_t timestamp_ns, void* userp) {
  td_call* call = userp;
  if (trace == call->trace && activity >= 0 && activity < TD_TRACE_ACTIVITIES) call->ts[activity] = timestamp_ns;
}

/* TRITONSERVER_InferenceTraceReleaseFn_t: takes ownership of each trace, root and children.
 *
 * Triton mostly releases the root trace inside the response or request delete that Python makes on the loop
 * thread. No event then: Python checks td_call_trace_released right after its delete calls, and an event would cost
 * the loop one more wake-up per request for nothing. From any other thread, the event tells Python as before. */
TD_EXPORT void td_on_trace_release(void* trace, void* userp) {
  td_call* call = userp;
  int root = trace == call->trace;
  g_trace_delete(trace);
  if (root) {
    __atomic_store_n(&call->trace_released, 1, __ATOMIC_RELEASE); /* after the timestamps it guards */
    if (!pthread_equal(pthread_self(), call->ch->reader)) push(call->ch, call->handle, trace, TD_EV_TRACE_RELEASE, 0);
  }
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

TD_EXPORT void td_buffer_take(td_buffer* header) { __atomic_store_n(&header->taken, 1, __ATOMIC_RELEASE); }
TD_EXPORT void td_buffer_free(td_buffer* header) { free(header); }

/* Everything Python needs from a response, read in one call (each call from Python costs far more than here). */
enum { TD_INLINE_DIMS = 8 };

typedef struct {
  void* error; /* owned by the response */
  const char* model;
  const char* id;
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

/* Fill head and up to max_outputs outputs; returns a TRITONSERVER_Error* on failure (the caller frees it). Every
 * output buffer reported here is marked taken: the caller must free it with td_buffer_free once done with it. */
TD_EXPORT void* td_read_response(void* response, td_response_head* head, td_output* outputs, uint32_t max_outputs) {
  void* err;
  memset(head, 0, sizeof *head);
  head->error = g_response_error(response);
  if (head->error) return NULL;
  if ((err = g_response_model(response, &head->model, &head->version))) return err;
  if ((err = g_response_id(response, &head->id))) return err;
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

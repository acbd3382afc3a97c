/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A native Triton backend that returns each input INPUT<n> as OUTPUT<n>: the benchmarks' identity model without
 * Triton's python backend.
 *
 * Why: the python backend runs every request in a separate stub process and costs ~200 us of IPC per request on
 * its own, more than everything the worker adds. Production models run in native backends (TensorRT, ONNX Runtime,
 * PyTorch), and Triton's own identity_backend is native too, but the nvidia-pytriton wheel ships only the python
 * backend, so the benchmarks build this one. It reports statistics like any backend, so Triton's queue/compute
 * trace activities and nv_* metrics exist for it as for the others.
 *
 * The library goes into the model's directory, where Triton looks before its backend directory; its Triton symbols
 * resolve against the libtritonserver already loaded in the process (in-process binding or tritonserver binary).
 * Declarations below follow Triton's stable C API (tritonserver.h, tritonbackend.h); only what this backend calls.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

/* The tests build a backend that lies about its outputs (tests/triton/lying_identity.c): each output's first
 * dimension multiplied by this, its bytes those of the input. */
#ifndef OUTPUT_SHAPE_FACTOR
#define OUTPUT_SHAPE_FACTOR 1
#endif

typedef struct TRITONSERVER_Error TRITONSERVER_Error;
typedef struct TRITONBACKEND_ModelInstance TRITONBACKEND_ModelInstance;
typedef struct TRITONBACKEND_Request TRITONBACKEND_Request;
typedef struct TRITONBACKEND_Response TRITONBACKEND_Response;
typedef struct TRITONBACKEND_Input TRITONBACKEND_Input;
typedef struct TRITONBACKEND_Output TRITONBACKEND_Output;

enum { ERROR_INVALID_ARG = 3, MEMORY_CPU = 0, RESPONSE_COMPLETE_FINAL = 1, REQUEST_RELEASE_ALL = 1 };

TRITONSERVER_Error* TRITONSERVER_ErrorNew(int code, const char* msg);
void TRITONSERVER_ErrorDelete(TRITONSERVER_Error* error);
TRITONSERVER_Error* TRITONBACKEND_RequestInputCount(TRITONBACKEND_Request* request, uint32_t* count);
TRITONSERVER_Error* TRITONBACKEND_RequestInputByIndex(TRITONBACKEND_Request* request, uint32_t index,
                                                      TRITONBACKEND_Input** input);
TRITONSERVER_Error* TRITONBACKEND_InputProperties(TRITONBACKEND_Input* input, const char** name, int* datatype,
                                                  const int64_t** shape, uint32_t* dims_count, uint64_t* byte_size,
                                                  uint32_t* buffer_count);
TRITONSERVER_Error* TRITONBACKEND_InputBuffer(TRITONBACKEND_Input* input, uint32_t index, const void** buffer,
                                              uint64_t* buffer_byte_size, int* memory_type, int64_t* memory_type_id);
TRITONSERVER_Error* TRITONBACKEND_ResponseNew(TRITONBACKEND_Response** response, TRITONBACKEND_Request* request);
TRITONSERVER_Error* TRITONBACKEND_ResponseOutput(TRITONBACKEND_Response* response, TRITONBACKEND_Output** output,
                                                 const char* name, int datatype, const int64_t* shape,
                                                 uint32_t dims_count);
TRITONSERVER_Error* TRITONBACKEND_OutputBuffer(TRITONBACKEND_Output* output, void** buffer, uint64_t byte_size,
                                               int* memory_type, int64_t* memory_type_id);
TRITONSERVER_Error* TRITONBACKEND_ResponseSend(TRITONBACKEND_Response* response, uint32_t send_flags,
                                               TRITONSERVER_Error* error);
TRITONSERVER_Error* TRITONBACKEND_RequestRelease(TRITONBACKEND_Request* request, uint32_t release_flags);
TRITONSERVER_Error* TRITONBACKEND_ModelInstanceReportStatistics(TRITONBACKEND_ModelInstance* instance,
                                                                TRITONBACKEND_Request* request, bool success,
                                                                uint64_t exec_start_ns, uint64_t compute_start_ns,
                                                                uint64_t compute_end_ns, uint64_t exec_end_ns);
TRITONSERVER_Error* TRITONBACKEND_ModelInstanceReportBatchStatistics(TRITONBACKEND_ModelInstance* instance,
                                                                     uint64_t batch_size, uint64_t exec_start_ns,
                                                                     uint64_t compute_start_ns,
                                                                     uint64_t compute_end_ns, uint64_t exec_end_ns);

/* Triton's timestamps are steady_clock nanoseconds, which is CLOCK_MONOTONIC on Linux. */
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void ignore(TRITONSERVER_Error* err) {
  if (err != NULL) TRITONSERVER_ErrorDelete(err);
}

/* Copies every input of a request into an output of the same shape and type; the first error stops it. */
static TRITONSERVER_Error* echo(TRITONBACKEND_Request* request, TRITONBACKEND_Response* response) {
  uint32_t input_count = 0;
  TRITONSERVER_Error* err = TRITONBACKEND_RequestInputCount(request, &input_count);
  for (uint32_t i = 0; err == NULL && i < input_count; ++i) {
    TRITONBACKEND_Input* input;
    const char* name;
    int datatype;
    const int64_t* shape;
    uint32_t dims_count, buffer_count;
    uint64_t byte_size;
    if ((err = TRITONBACKEND_RequestInputByIndex(request, i, &input)) != NULL) break;
    err = TRITONBACKEND_InputProperties(input, &name, &datatype, &shape, &dims_count, &byte_size, &buffer_count);
    if (err != NULL) break;
    if (strncmp(name, "INPUT", 5) != 0) {
      char message[256];
      snprintf(message, sizeof message, "identity: input '%.128s' is not named INPUT<n>", name);
      return TRITONSERVER_ErrorNew(ERROR_INVALID_ARG, message);
    }
    char output_name[256];
    snprintf(output_name, sizeof output_name, "OUTPUT%.128s", name + 5);
    int64_t output_shape[16];
    if (dims_count > 16) return TRITONSERVER_ErrorNew(ERROR_INVALID_ARG, "identity: more than 16 dims");
    memcpy(output_shape, shape, dims_count * sizeof *shape);
    if (dims_count > 0) output_shape[0] *= OUTPUT_SHAPE_FACTOR;
    TRITONBACKEND_Output* output;
    err = TRITONBACKEND_ResponseOutput(response, &output, output_name, datatype, output_shape, dims_count);
    if (err != NULL) break;
    void* destination;
    int memory_type = MEMORY_CPU;
    int64_t memory_type_id = 0;
    if ((err = TRITONBACKEND_OutputBuffer(output, &destination, byte_size, &memory_type, &memory_type_id)) != NULL)
      break;
    uint64_t offset = 0;
    for (uint32_t b = 0; err == NULL && b < buffer_count; ++b) {
      const void* source;
      uint64_t source_size;
      int source_type = MEMORY_CPU;
      int64_t source_type_id = 0;
      err = TRITONBACKEND_InputBuffer(input, b, &source, &source_size, &source_type, &source_type_id);
      if (err == NULL && offset + source_size <= byte_size) memcpy((char*)destination + offset, source, source_size);
      offset += source_size;
    }
  }
  return err;
}

EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* instance,
                                                             TRITONBACKEND_Request** requests,
                                                             const uint32_t request_count) {
  uint64_t exec_start_ns = now_ns();
  for (uint32_t r = 0; r < request_count; ++r) {
    uint64_t compute_start_ns = now_ns();
    TRITONBACKEND_Response* response = NULL;
    TRITONSERVER_Error* err = TRITONBACKEND_ResponseNew(&response, requests[r]);
    if (err == NULL) err = echo(requests[r], response);
    uint64_t compute_end_ns = now_ns();
    bool success = err == NULL;
    if (response != NULL) {
      ignore(TRITONBACKEND_ResponseSend(response, RESPONSE_COMPLETE_FINAL, err));
    }
    if (err != NULL) TRITONSERVER_ErrorDelete(err);
    ignore(TRITONBACKEND_ModelInstanceReportStatistics(instance, requests[r], success, exec_start_ns,
                                                       compute_start_ns, compute_end_ns, now_ns()));
    ignore(TRITONBACKEND_RequestRelease(requests[r], REQUEST_RELEASE_ALL));
  }
  uint64_t exec_end_ns = now_ns();
  ignore(TRITONBACKEND_ModelInstanceReportBatchStatistics(instance, request_count, exec_start_ns, exec_start_ns,
                                                          exec_end_ns, exec_end_ns));
  return NULL;
}

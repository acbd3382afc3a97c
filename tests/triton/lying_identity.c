/* SPDX-License-Identifier: Apache-2.0 */
/* The native identity backend (benchmarks/native_identity/identity.c), lying about its outputs: each output's first
 * dimension is twice the input's while its bytes are the input's. A fixed-size output then has fewer bytes than its
 * shape needs, and a BYTES output fewer elements than its shape says: responses the binding must refuse alone. */
#define OUTPUT_SHAPE_FACTOR 2
#include "../../benchmarks/native_identity/identity.c"

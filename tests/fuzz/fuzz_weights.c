/* fuzz_weights.c - libFuzzer target for the weights-file parser
 * (mdc_weights_parse: safetensors header, JSON metadata, tensor table,
 * value conversion).
 *
 * Build (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore -Icore/include -Ikernels \
 *       tests/fuzz/fuzz_weights.c core/weights.c core/arch.c core/error.c \
 *       -ljson-c -lm -o /tmp/fuzz_weights
 * or: CC=clang meson setup -Dfuzz=true build-fuzz && ninja -C build-fuzz
 * Run (new inputs go to the first directory, seeds are read from the second):
 *   mkdir -p /tmp/fuzz-work
 *   /tmp/fuzz_weights -dict=tests/fuzz/weights.dict -max_len=32768 \
 *       -max_total_time=600 /tmp/fuzz-work tests/fuzz/corpus
 * See tests/fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "weights.h"

/* Uses everything a successful parse hands out, so the sanitizers see any
 * inconsistency between the tensor table and the storage. */
static void weights_touch(const mdc_weights *w) {
  volatile float sink = 0.0f;
  for (int i = 0; i < w->num_tensors; i++) {
    mdc_tensor_spec s;
    if (!mdc_arch_tensor(&w->arch, i, &s) || mdc_weights_tensor(w, s.name) != w->tensors[i])
      abort();
    sink += w->tensors[i][0] + w->tensors[i][s.numel - 1];
  }
  for (int i = 0; i < w->num_metadata; i++)
    if (!mdc_weights_metadata(w, w->metadata[i].key))
      abort();
  char *arch = mdc_arch_to_json(&w->arch), *classes = mdc_arch_classes_to_json(&w->arch);
  if (!arch || !classes)
    abort();
  free(arch);
  free(classes);
  sink += (float)mdc_arch_macs_per_pixel(&w->arch);
  (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mdc_weights w;
  maskdcpt_error err;
  maskdcpt_status rc = mdc_weights_parse(data, size, "fuzz.safetensors", &w, &err);
  if (rc == MASKDCPT_OK) {
    weights_touch(&w);
    mdc_weights_clear(&w);
    return 0;
  }
  /* A failure leaves nothing behind and says something. */
  if (err.code != rc || memchr(err.message, '\0', sizeof err.message) == NULL ||
      err.message[0] == '\0' || w.tensors || w.storage || w.metadata)
    abort();
  return 0;
}

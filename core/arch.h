/* arch.h - the network's architecture and its parameter list.
 *
 * The single source of truth for which tensors a weights file holds, their
 * names and shapes (PyTorch layout: conv weights OIHW).  The loader
 * validates files against it, the writer and random initialisation walk it,
 * and the network binds its parameters through it.
 *
 * Network (DESIGN.md section 4), C = width * 2^level:
 *   intro            3x3 conv 3 -> W
 *   encoders.l.b     NAFBlock(C_l), l = 0..levels-1
 *   downs.l          2x2 stride-2 conv C_l -> 2 C_l
 *   middle.b         NAFBlock(C_levels)
 *   ups.i            1x1 conv C -> 2C (no bias) then PixelShuffle(2) -> C/2,
 *                    i = 0 is the deepest; then + encoder skip
 *   decoders.i.b     NAFBlock(C) whose two LayerNorms are class-conditioned:
 *                    norm{1,2}.{weight,bias} are [K, C], mixed by the class
 *                    probabilities
 *   ending           3x3 conv W -> 3, plus the input
 *   cls.*            classification decoder on the encoder features:
 *                    g_l = mean_xy ReLU(cls.proj.l(f_l)) for the skip of each
 *                    level and the middle output (l = levels); mixed by
 *                    softmax(cls.mix); logits = fc2(ReLU(fc1(g))).
 * NAFBlock(C) tensors: norm1.weight/bias [C], conv1 [2C,C,1,1] + [2C],
 *   conv2 (depthwise) [2C,1,3,3] + [2C], sca [C,C,1,1] + [C],
 *   conv3 [C,C,1,1] + [C], norm2.weight/bias [C], conv4 [2C,C,1,1] + [2C],
 *   conv5 [C,C,1,1] + [C], beta [1,C,1,1], gamma [1,C,1,1].
 */
#ifndef MDC_ARCH_H
#define MDC_ARCH_H

#include <stddef.h>
#include <stdint.h>

#define MDC_MAX_LEVELS 8
#define MDC_MAX_BLOCKS 64      /* per stage */
#define MDC_MAX_CLASSES 32
/* Most network passes a weights file may ask for (metadata 'passes'). */
#define MDC_MAX_PASSES 4
#define MDC_MAX_CLASS_NAME 48
#define MDC_MAX_WIDTH 256
#define MDC_MAX_TENSOR_NAME 64
#define MDC_MAX_DIMS 4

typedef struct mdc_arch {
  int width;
  int levels;
  int enc_blocks[MDC_MAX_LEVELS];
  int middle_blocks;
  int dec_blocks[MDC_MAX_LEVELS]; /* deepest first */
  int num_classes;
  int cls_hidden;
  int sca_window; /* pixels at full resolution; 0 = global mean */
  float norm_eps;
  char class_names[MDC_MAX_CLASSES][MDC_MAX_CLASS_NAME];
} mdc_arch;

/* Which part of the network a tensor belongs to. */
typedef enum mdc_tensor_role {
  MDC_ROLE_WEIGHT = 0, /* convolution / linear weight */
  MDC_ROLE_BIAS,
  MDC_ROLE_NORM_WEIGHT, /* LayerNorm scale (starts at 1) */
  MDC_ROLE_NORM_BIAS,
  MDC_ROLE_RESIDUAL_SCALE, /* beta / gamma (start at 0) */
  MDC_ROLE_MIX            /* cls.mix logits (start at 0) */
} mdc_tensor_role;

typedef struct mdc_tensor_spec {
  char name[MDC_MAX_TENSOR_NAME];
  int ndim;
  int64_t shape[MDC_MAX_DIMS];
  int64_t numel;
  mdc_tensor_role role;
  int fan_in; /* for initialisation; 0 where not a weight */
} mdc_tensor_spec;

/* Checks ranges and consistency: 1 when valid, else 0 and a message. */
int mdc_arch_validate(const mdc_arch *arch, char *msg, size_t msg_size);

/* Number of tensors the architecture has. */
int mdc_arch_num_tensors(const mdc_arch *arch);
/* The i-th tensor's spec, in a fixed canonical order (the order
 * mdc_arch_num_tensors counts); returns 0 when i is out of range. */
int mdc_arch_tensor(const mdc_arch *arch, int i, mdc_tensor_spec *out);
/* Canonical index of the tensor called `name`, or -1 when the architecture
 * has no such tensor (O(levels), no list is built). */
int mdc_arch_tensor_index(const mdc_arch *arch, const char *name);
/* Index of the class called `name`, or -1. */
int mdc_arch_class_index(const mdc_arch *arch, const char *name);

int64_t mdc_arch_num_params(const mdc_arch *arch);
/* Multiply-adds per input pixel of the restoration path (backbone). */
double mdc_arch_macs_per_pixel(const mdc_arch *arch);

/* The network the benchmarks time (`maskdcpt bench`, `maskdcpt-train
 * bench`): 4 levels, blocks 1,1,1,2 / 2 / 1,1,1,1, classifier 64, 12
 * classes named c0..c11, attention window 384 (the global mean at
 * training crops up to 384). */
void mdc_arch_benchmark(mdc_arch *arch, int width);
/* Channels at a level. */
static inline int mdc_arch_channels(const mdc_arch *arch, int level) {
  return arch->width << level;
}
/* Inputs are padded to a multiple of this. */
static inline int mdc_arch_multiple(const mdc_arch *arch) { return 1 << arch->levels; }

/* Architecture as JSON (the "arch" metadata value); returns a malloc'd string. */
char *mdc_arch_to_json(const mdc_arch *arch);
/* Class list as a JSON array string; malloc'd. */
char *mdc_arch_classes_to_json(const mdc_arch *arch);

#endif

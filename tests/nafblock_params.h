/* nafblock_params.h - the arrays of an mdc_nafblock_params of width c, in
 * one list for the tests that fill or walk them:
 *   TEST_NAFBLOCK_PARAMS(X, c, sc) expands X(field, floats, scale)
 * once per array, where scale is the range of random test values (sc for
 * the weights of the c-input 1x1 convolutions, usually 1/sqrt(c)). */
#ifndef TEST_NAFBLOCK_PARAMS_H
#define TEST_NAFBLOCK_PARAMS_H

#define TEST_NAFBLOCK_NUM_PARAMS 18

#define TEST_NAFBLOCK_PARAMS(X, c, sc) \
  X(norm1_w, (c), 1.0f)                \
  X(norm1_b, (c), 0.5f)                \
  X(conv1_w, (c) * 2 * (c), sc)        \
  X(conv1_b, 2 * (c), 0.5f)            \
  X(conv2_w, 9 * 2 * (c), 0.5f)        \
  X(conv2_b, 2 * (c), 0.5f)            \
  X(sca_w, (c) * (c), sc)              \
  X(sca_b, (c), 0.5f)                  \
  X(conv3_w, (c) * (c), sc)            \
  X(conv3_b, (c), 0.5f)                \
  X(norm2_w, (c), 1.0f)                \
  X(norm2_b, (c), 0.5f)                \
  X(conv4_w, (c) * 2 * (c), sc)        \
  X(conv4_b, 2 * (c), 0.5f)            \
  X(conv5_w, (c) * (c), sc)            \
  X(conv5_b, (c), 0.5f)                \
  X(beta, (c), 1.0f)                   \
  X(gamma, (c), 1.0f)

#endif

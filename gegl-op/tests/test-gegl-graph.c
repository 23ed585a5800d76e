/* test-gegl-graph.c - maskdcpt:restore inside GEGL graphs built in C.
 *
 * Usage: test-gegl-graph WEIGHTS WEIGHTS2 WEIGHTS_FEW_CLASSES TMPDIR
 *   WEIGHTS, WEIGHTS2: untrained networks of the default class list
 *   (different seeds); WEIGHTS_FEW_CLASSES: one that knows only
 *   "clean,noise".  The module is found through GEGL_PATH.
 *
 * Each check prints "ok"/"FAIL" and a figure; the exit status is the
 * number of failures (0 = all passed).  The weights are random: they
 * change images deterministically, which is all the plumbing needs.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gegl.h>
#include <glib/gstdio.h>

#include "degrade.h"

#define OP "maskdcpt:restore"

static int failures;
static const char *weights, *weights2, *weights_few, *tmpdir;

static void
check (gboolean ok, const char *what, const char *fmt, ...)
{
  va_list ap;

  printf ("%-4s %-58s ", ok ? "ok" : "FAIL", what);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  printf ("\n");
  fflush (stdout);
  if (! ok)
    failures++;
}

/* ------------------------------------------------------ captured warnings */

static GMutex  log_mutex;
static GString *log_text;

static void
log_handler (const gchar    *domain,
             GLogLevelFlags  level G_GNUC_UNUSED,
             const gchar    *message,
             gpointer        user G_GNUC_UNUSED)
{
  g_mutex_lock (&log_mutex);
  g_string_append_printf (log_text, "[%s] %s\n", domain ? domain : "", message);
  g_mutex_unlock (&log_mutex);
}

static void
log_clear (void)
{
  g_mutex_lock (&log_mutex);
  g_string_truncate (log_text, 0);
  g_mutex_unlock (&log_mutex);
}

static gboolean
log_has (const char *needle)
{
  gboolean found;

  g_mutex_lock (&log_mutex);
  found = strstr (log_text->str, needle) != NULL;
  g_mutex_unlock (&log_mutex);
  return found;
}

static int
log_count (const char *needle)
{
  int         n = 0;
  const char *p;

  g_mutex_lock (&log_mutex);
  for (p = log_text->str; (p = strstr (p, needle)); p++)
    n++;
  g_mutex_unlock (&log_mutex);
  return n;
}

/* ---------------------------------------------------------------- images */

static float
hash01 (guint32 x)
{
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
  return (x >> 8) / 16777216.0f;
}

/* A smooth picture with noise and an alpha ramp, stored in `format`
 * (integer formats quantise it), with its extent at (x0, y0). */
static GeglBuffer *
make_image (int x0, int y0, int w, int h, const char *format, guint32 seed)
{
  const Babl *rgba = babl_format ("R'G'B'A float");
  GeglBuffer *buf  = gegl_buffer_new (GEGL_RECTANGLE (x0, y0, w, h), babl_format (format));
  float      *px   = g_new (float, (gsize) w * h * 4);

  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        float *p = px + ((gsize) y * w + x) * 4;
        float  u = (float) x / MAX (w - 1, 1), v = (float) y / MAX (h - 1, 1);

        for (int c = 0; c < 3; c++)
          {
            float base = 0.5f + 0.35f * sinf (6.0f * u + 2.0f * c) * cosf (4.0f * v - c);
            float n    = hash01 (seed * 0x9e3779b9U + (guint32) ((y * w + x) * 3 + c)) - 0.5f;

            p[c] = CLAMP (base + 0.15f * n, 0.0f, 1.0f);
          }
        p[3] = CLAMP (0.15f + 0.8f * u, 0.0f, 1.0f);
      }
  gegl_buffer_set (buf, NULL, 0, rgba, px, GEGL_AUTO_ROWSTRIDE);
  g_free (px);
  return buf;
}

typedef struct
{
  double rgb_max, rgb_mean, alpha_max;
  gboolean finite, same_extent;
} Diff;

/* Compares two buffers over a's extent as R'G'B'A float. */
static Diff
diff_buffers (GeglBuffer *a, GeglBuffer *b)
{
  const GeglRectangle *r  = gegl_buffer_get_extent (a);
  const GeglRectangle *rb = gegl_buffer_get_extent (b);
  const Babl *rgba = babl_format ("R'G'B'A float");
  gsize       n    = (gsize) r->width * r->height;
  float      *pa   = g_new (float, n * 4), *pb = g_new (float, n * 4);
  Diff        d    = { 0, 0, 0, TRUE, gegl_rectangle_equal (r, rb) };

  gegl_buffer_get (a, r, 1.0, rgba, pa, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  gegl_buffer_get (b, r, 1.0, rgba, pb, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  for (gsize i = 0; i < n * 4; i++)
    {
      double e = fabs ((double) pa[i] - pb[i]);

      if (! isfinite (pb[i]))
        d.finite = FALSE;
      if (i % 4 == 3)
        d.alpha_max = MAX (d.alpha_max, e);
      else
        {
          d.rgb_max = MAX (d.rgb_max, e);
          d.rgb_mean += e;
        }
    }
  d.rgb_mean /= (double) (n * 3);
  g_free (pa);
  g_free (pb);
  return d;
}

/* Byte-for-byte equality in a's own format. */
static gboolean
same_bytes (GeglBuffer *a, GeglBuffer *b)
{
  const GeglRectangle *r   = gegl_buffer_get_extent (a);
  const Babl          *fmt = gegl_buffer_get_format (a);
  gsize                n   = (gsize) r->width * r->height * babl_format_get_bytes_per_pixel (fmt);
  guchar              *pa  = g_malloc (n), *pb = g_malloc (n);
  gboolean             eq;

  gegl_buffer_get (a, r, 1.0, fmt, pa, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  gegl_buffer_get (b, r, 1.0, fmt, pb, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  eq = gegl_rectangle_equal (r, gegl_buffer_get_extent (b)) && memcmp (pa, pb, n) == 0;
  g_free (pa);
  g_free (pb);
  return eq;
}

/* ----------------------------------------------------------------- graph */

typedef struct
{
  const char *weights;      /* NULL: leave the property at its default */
  const char *degradation;  /* nick, NULL: auto */
  const char *device;       /* nick, NULL: auto */
  double      strength;
  int         tile_size;
} Params;

/* Unnamed fields are 0 / NULL; strength defaults to 1. */
#define PARAMS(...) ((Params) { .strength = 1.0, __VA_ARGS__ })

static void
set_enum (GeglNode *node, const char *prop, const char *nick)
{
  GParamSpec *pspec = gegl_operation_find_property (OP, prop);
  GEnumValue *value = g_enum_get_value_by_nick (G_PARAM_SPEC_ENUM (pspec)->enum_class, nick);

  g_assert (value);
  gegl_node_set (node, prop, value->value, NULL);
}

typedef struct
{
  int    calls;
  double last;
} Progress;

static void
on_progress (GeglNode *node G_GNUC_UNUSED, gdouble progress, Progress *p)
{
  p->calls++;
  p->last = progress;
}

/* buffer-source -> maskdcpt:restore -> buffer-sink; returns the output. */
static GeglBuffer *
run (GeglBuffer *in, Params p, Progress *progress)
{
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src   = gegl_node_new_child (graph, "operation", "gegl:buffer-source",
                                           "buffer", in, NULL);
  GeglNode   *op    = gegl_node_new_child (graph, "operation", OP,
                                           "strength", p.strength,
                                           "tile-size", p.tile_size, NULL);
  GeglBuffer *out   = NULL;
  GeglNode   *sink  = gegl_node_new_child (graph, "operation", "gegl:buffer-sink",
                                           "buffer", &out, NULL);

  if (p.weights)
    gegl_node_set (op, "weights", p.weights, NULL);
  set_enum (op, "degradation", p.degradation ? p.degradation : "auto");
  set_enum (op, "device", p.device ? p.device : "auto");
  if (progress)
    g_signal_connect (op, "progress", G_CALLBACK (on_progress), progress);
  gegl_node_link_many (src, op, sink, NULL);
  gegl_node_process (sink);
  g_object_unref (graph);
  return out;
}

/* ---------------------------------------------------------------- checks */

static void
test_registration (void)
{
  static const char *props[] = { "degradation", "strength", "weights", "device", "tile-size" };
  GParamSpec *pspec;
  GEnumClass *classes;
  gboolean    names_ok;
  guint       n_props = 0;
  GParamSpec **specs;

  check (gegl_has_operation (OP), "the operation is registered", "%s", OP);
  if (! gegl_has_operation (OP))
    return;
  specs = gegl_operation_list_properties (OP, &n_props);
  for (guint i = 0; i < G_N_ELEMENTS (props); i++)
    {
      gboolean found = FALSE;

      for (guint j = 0; j < n_props; j++)
        found |= strcmp (g_param_spec_get_name (specs[j]), props[i]) == 0;
      check (found, "has property", "%s", props[i]);
    }
  g_free (specs);

  pspec = gegl_operation_find_property (OP, "strength");
  check (G_PARAM_SPEC_DOUBLE (pspec)->minimum == 0.0 && G_PARAM_SPEC_DOUBLE (pspec)->maximum == 1.0 &&
         G_PARAM_SPEC_DOUBLE (pspec)->default_value == 1.0,
         "strength: 0..1, default 1", "");

  /* The enum is "auto" then the degradation registry's classes, in order. */
  classes  = G_PARAM_SPEC_ENUM (gegl_operation_find_property (OP, "degradation"))->enum_class;
  names_ok = classes->n_values == (guint) dg_num_classes () + 1 &&
             strcmp (classes->values[0].value_nick, "auto") == 0;
  for (int i = 0; names_ok && i < dg_num_classes (); i++)
    names_ok = strcmp (classes->values[i + 1].value_nick, dg_class_name (i)) == 0;
  check (names_ok, "degradation choices = auto + the default classes", "%u values",
         classes->n_values);

  check (strcmp (gegl_operation_get_key (OP, "gimp:menu-path"), "<Image>/Filters/Enhance") == 0 &&
         gegl_operation_get_key (OP, "title") != NULL,
         "menu path Filters > Enhance, title", "%s", gegl_operation_get_key (OP, "title"));
}

static void
test_restore_basics (void)
{
  GeglBuffer *in = make_image (0, 0, 96, 64, "R'G'B'A u8", 1);
  GeglBuffer *full, *half, *zero, *noise, *haze;
  Progress    progress = { 0, 0 };
  Diff        d;

  log_clear ();
  full = run (in, PARAMS (.weights = weights), &progress);
  d = diff_buffers (in, full);
  check (d.same_extent && d.finite && d.rgb_max > 1e-3, "restore changes the image",
         "max %.4f, mean %.5f", d.rgb_max, d.rgb_mean);
  check (d.alpha_max == 0.0, "alpha passes through untouched", "max alpha change %g", d.alpha_max);
  check (progress.calls >= 2 && progress.last == 1.0, "progress reported on the node",
         "%d signals, last %.2f", progress.calls, progress.last);
  check (log_count ("untrained") == 1, "an untrained file is flagged once", "%d warnings",
         log_count ("untrained"));

  zero = run (in, PARAMS (.weights = weights, .strength = 0.0), NULL);
  check (same_bytes (in, zero), "strength 0 gives the input, bit for bit", "");

  /* out = in + s (restored - in): half strength lies half way. */
  half = run (in, PARAMS (.weights = weights, .strength = 0.5), NULL);
  {
    const GeglRectangle *r = gegl_buffer_get_extent (in);
    gsize  n  = (gsize) r->width * r->height * 4;
    float *pi = g_new (float, n), *pf = g_new (float, n), *ph = g_new (float, n);
    double e  = 0;

    gegl_buffer_get (in, r, 1.0, babl_format ("R'G'B'A float"), pi, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    gegl_buffer_get (full, r, 1.0, babl_format ("R'G'B'A float"), pf, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    gegl_buffer_get (half, r, 1.0, babl_format ("R'G'B'A float"), ph, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    for (gsize i = 0; i < n; i++)
      e = MAX (e, fabs (ph[i] - 0.5 * (pi[i] + pf[i])));
    check (e < 1e-5, "strength 0.5 is half way between input and result", "max error %.2g", e);
    g_free (pi); g_free (pf); g_free (ph);
  }

  /* The second run on the same file used the cached model: no new load,
   * so no new "untrained" warning. */
  check (log_count ("untrained") == 1, "the model is loaded once and reused", "%d loads",
         log_count ("untrained"));

  noise = run (in, PARAMS (.weights = weights, .degradation = "noise"), NULL);
  haze  = run (in, PARAMS (.weights = weights, .degradation = "haze"), NULL);
  d = diff_buffers (noise, haze);
  check (d.rgb_max > 1e-5, "a forced class conditions the network", "noise vs haze: max %.4g",
         d.rgb_max);

  g_object_unref (haze); g_object_unref (noise); g_object_unref (half);
  g_object_unref (zero); g_object_unref (full); g_object_unref (in);
}

static void
test_formats_and_sizes (void)
{
  GeglBuffer *in16, *out16, *small, *outs, *big, *tiled, *whole, *shifted, *outsh, *rgb, *outrgb;
  Diff        d;

  /* 16-bit: the float path keeps 16-bit detail (not rounded to 8 bits),
   * and a 16-bit PNG written from it is 16-bit. */
  in16  = make_image (0, 0, 80, 48, "R'G'B'A u16", 2);
  out16 = run (in16, PARAMS (.weights = weights), NULL);
  {
    char       *png   = g_build_filename (tmpdir, "graph-16bit.png", NULL);
    GeglNode   *graph = gegl_node_new ();
    GeglNode   *src   = gegl_node_new_child (graph, "operation", "gegl:buffer-source",
                                             "buffer", in16, NULL);
    GeglNode   *op    = gegl_node_new_child (graph, "operation", OP, "weights", weights, NULL);
    GeglNode   *save  = gegl_node_new_child (graph, "operation", "gegl:png-save",
                                             "path", png, "bitdepth", 16, NULL);
    GeglBuffer *back  = NULL;
    GeglNode   *load, *sink;
    guchar      head[26] = { 0 };
    FILE       *f;
    guint16    *px;
    int         fine = 0;
    gsize       n;

    gegl_node_link_many (src, op, save, NULL);
    gegl_node_process (save);
    f = g_fopen (png, "rb");
    if (f)
      {
        if (fread (head, 1, sizeof head, f) != sizeof head)
          memset (head, 0, sizeof head);
        fclose (f);
      }
    load = gegl_node_new_child (graph, "operation", "gegl:load", "path", png, NULL);
    sink = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &back, NULL);
    gegl_node_link (load, sink);
    gegl_node_process (sink);
    n  = (gsize) 80 * 48 * 4;
    px = g_new (guint16, n);
    gegl_buffer_get (back, NULL, 1.0, babl_format ("R'G'B'A u16"), px, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    for (gsize i = 0; i < n; i++)
      fine += px[i] % 257 != 0;
    check (head[24] == 16 && babl_format_get_type (gegl_buffer_get_format (back), 0) == babl_type ("u16"),
           "16-bit in, 16-bit PNG out", "bit depth byte %d", head[24]);
    check (fine > (int) n / 4, "the result keeps 16-bit precision", "%d of %zu samples off the 8-bit grid",
           fine, n);
    d = diff_buffers (in16, out16);
    check (d.rgb_max > 1e-3 && d.alpha_max == 0.0, "16-bit: changed, alpha untouched",
           "max %.4f, alpha %g", d.rgb_max, d.alpha_max);
    g_free (px);
    g_object_unref (back);
    g_object_unref (graph);
    g_unlink (png);
    g_free (png);
  }

  /* No alpha in, no alpha out; the colour still changes. */
  rgb    = make_image (0, 0, 64, 40, "R'G'B' u8", 3);
  outrgb = run (rgb, PARAMS (.weights = weights), NULL);
  d = diff_buffers (rgb, outrgb);
  check (! babl_format_has_alpha (gegl_buffer_get_format (outrgb)) && d.rgb_max > 1e-3,
         "an image without alpha stays without", "%s, max %.4f",
         babl_get_name (gegl_buffer_get_format (outrgb)), d.rgb_max);

  /* Smaller than one tile (tiles are at least 32). */
  small = make_image (0, 0, 20, 13, "R'G'B'A float", 4);
  outs  = run (small, PARAMS (.weights = weights, .tile_size = 64), NULL);
  d = diff_buffers (small, outs);
  check (d.same_extent && d.finite && d.rgb_max > 1e-3 && d.alpha_max == 0.0,
         "20 x 13 image, smaller than one 64 px tile", "max %.4f", d.rgb_max);

  /* Much larger than a tile: 520 x 360 in 64 px tiles (dozens of them)
   * agrees with one whole-image tile up to the core's blending error. */
  big   = make_image (0, 0, 520, 360, "R'G'B'A float", 5);
  tiled = run (big, PARAMS (.weights = weights, .tile_size = 64), NULL);
  whole = run (big, PARAMS (.weights = weights, .tile_size = 1024), NULL);
  d = diff_buffers (big, tiled);
  check (d.same_extent && d.finite && d.rgb_max > 1e-3 && d.alpha_max == 0.0,
         "520 x 360 image in 64 px tiles", "max change %.4f", d.rgb_max);
  d = diff_buffers (whole, tiled);
  check (d.rgb_max < 2.0 / 255 && d.rgb_mean < 0.2 / 255,
         "tiled result agrees with a single tile", "max %.3f/255, mean %.4f/255",
         d.rgb_max * 255, d.rgb_mean * 255);

  /* A buffer whose extent does not start at (0, 0). */
  shifted = make_image (37, -11, 50, 30, "R'G'B'A float", 6);
  outsh   = run (shifted, PARAMS (.weights = weights), NULL);
  d = diff_buffers (shifted, outsh);
  check (d.same_extent && d.rgb_max > 1e-3 && d.alpha_max == 0.0,
         "an extent at (37, -11)", "max %.4f", d.rgb_max);

  g_object_unref (outsh); g_object_unref (shifted); g_object_unref (whole);
  g_object_unref (tiled); g_object_unref (big); g_object_unref (outs); g_object_unref (small);
  g_object_unref (outrgb); g_object_unref (rgb); g_object_unref (out16); g_object_unref (in16);
}

static void
test_failures (void)
{
  GeglBuffer *in = make_image (0, 0, 48, 32, "R'G'B'A u8", 7);
  GeglBuffer *out;
  char       *missing = g_build_filename (tmpdir, "does-not-exist.safetensors", NULL);
  char       *broken  = g_build_filename (tmpdir, "broken.safetensors", NULL);
  Diff        d;

  log_clear ();
  out = run (in, PARAMS (.weights = missing), NULL);
  check (same_bytes (in, out) && log_has ("maskdcpt:restore") && log_has (missing) &&
         log_has ("[GEGL]"),
         "missing weights file: GEGL warning, image unchanged", "");
  g_object_unref (out);

  g_file_set_contents (broken, "{\"not\": \"a safetensors file\"}", -1, NULL);
  log_clear ();
  out = run (in, PARAMS (.weights = broken), NULL);
  check (same_bytes (in, out) && log_has ("passed through unchanged"),
         "broken weights file: warning, image unchanged", "");
  g_object_unref (out);

  /* Nothing set and no default installed (checked only while there is none). */
  if (! g_file_test (MASKDCPT_DEFAULT_WEIGHTS, G_FILE_TEST_EXISTS))
    {
      g_unsetenv ("MASKDCPT_WEIGHTS");
      log_clear ();
      out = run (in, PARAMS (.weights = NULL), NULL);
      check (same_bytes (in, out) && log_has ("not installed") && log_has (MASKDCPT_DEFAULT_WEIGHTS),
             "no default weights installed: warning, image unchanged", "");
      g_object_unref (out);
    }
  /* The shipped networks by name: the same place, the same warning. */
  {
    gchar *dir     = g_path_get_dirname (MASKDCPT_DEFAULT_WEIGHTS);
    gchar *quality = g_build_filename (dir, "quality.safetensors", NULL);

    if (! g_file_test (quality, G_FILE_TEST_EXISTS))
      {
        log_clear ();
        out = run (in, PARAMS (.weights = "quality"), NULL);
        check (same_bytes (in, out) && log_has ("not installed") && log_has (quality),
               "weights 'quality' not installed: warning naming its file, image unchanged", "");
        g_object_unref (out);
      }
    g_free (quality);
    g_free (dir);
  }

  /* $MASKDCPT_WEIGHTS stands in for the default; the property wins over it. */
  g_setenv ("MASKDCPT_WEIGHTS", weights, TRUE);
  log_clear ();
  out = run (in, PARAMS (.weights = NULL), NULL);
  d = diff_buffers (in, out);
  check (d.rgb_max > 1e-3 && ! log_has ("passed through"), "$MASKDCPT_WEIGHTS is used",
         "max %.4f", d.rgb_max);
  g_object_unref (out);
  log_clear ();
  out = run (in, PARAMS (.weights = missing), NULL);
  check (same_bytes (in, out) && log_has (missing), "the weights property overrides the environment", "");
  g_object_unref (out);
  g_unsetenv ("MASKDCPT_WEIGHTS");

  /* A class the loaded file lacks: warning, then auto-detection. */
  log_clear ();
  out = run (in, PARAMS (.weights = weights_few, .degradation = "rain"), NULL);
  d = diff_buffers (in, out);
  check (log_has ("has no class 'rain'") && d.rgb_max > 1e-3,
         "a class missing from the file: warning, auto instead", "max %.4f", d.rgb_max);
  g_object_unref (out);

  /* CUDA either works or, where it cannot (no build, no GPU), gives a
   * warning and the image unchanged; the CPU always works. */
  log_clear ();
  out = run (in, PARAMS (.weights = weights, .device = "cuda"), NULL);
  if (log_has ("passed through"))
    check (same_bytes (in, out), "device=cuda unavailable: warning, image unchanged", "");
  else
    {
      d = diff_buffers (in, out);
      check (d.rgb_max > 1e-3, "device=cuda restores", "max %.4f", d.rgb_max);
    }
  g_object_unref (out);
  log_clear ();
  out = run (in, PARAMS (.weights = weights, .device = "cpu"), NULL);
  d = diff_buffers (in, out);
  check (d.rgb_max > 1e-3 && ! log_has ("passed through"), "device=cpu restores", "max %.4f",
         d.rgb_max);
  g_object_unref (out);

  g_object_unref (in);
  g_unlink (broken);
  g_free (broken);
  g_free (missing);
}

/* A file replaced on disk is loaded again. */
static void
test_reload (void)
{
  GeglBuffer *in = make_image (0, 0, 40, 40, "R'G'B'A float", 8);
  char       *path = g_build_filename (tmpdir, "replaced.safetensors", NULL);
  GeglBuffer *a, *b, *ref_b;
  gchar      *bytes;
  gsize       len;

  g_file_get_contents (weights, &bytes, &len, NULL);
  g_file_set_contents (path, bytes, len, NULL);
  g_free (bytes);
  a = run (in, PARAMS (.weights = path), NULL);

  g_file_get_contents (weights2, &bytes, &len, NULL);
  g_unlink (path);
  g_file_set_contents (path, bytes, len, NULL);
  g_free (bytes);
  b     = run (in, PARAMS (.weights = path), NULL);
  ref_b = run (in, PARAMS (.weights = weights2), NULL);
  check (! same_bytes (a, b) && same_bytes (b, ref_b), "a weights file changed on disk is reloaded", "");

  g_object_unref (ref_b); g_object_unref (b); g_object_unref (a); g_object_unref (in);
  g_unlink (path);
  g_free (path);
}

/* Several graphs on several threads at once, first load included. */
typedef struct
{
  GeglBuffer *in;
  const char *weights;
  GeglBuffer *out;
} Job;

static gpointer
job_run (gpointer data)
{
  Job *job = data;

  job->out = run (job->in, PARAMS (.weights = job->weights, .tile_size = 64), NULL);
  return NULL;
}

static void
test_concurrency (void)
{
  enum { N = 4 };
  char       *fresh = g_build_filename (tmpdir, "concurrent.safetensors", NULL);
  GeglBuffer *in    = make_image (0, 0, 160, 96, "R'G'B'A float", 9);
  GeglBuffer *ref;
  GThread    *threads[N];
  Job         jobs[N];
  gboolean    all_same = TRUE;
  gchar      *bytes;
  gsize       len;

  /* A path no one has loaded yet, so the threads race for the first load. */
  g_file_get_contents (weights, &bytes, &len, NULL);
  g_file_set_contents (fresh, bytes, len, NULL);
  g_free (bytes);

  log_clear ();
  for (int i = 0; i < N; i++)
    {
      jobs[i] = (Job) { in, fresh, NULL };
      threads[i] = g_thread_new ("restore", job_run, &jobs[i]);
    }
  for (int i = 0; i < N; i++)
    g_thread_join (threads[i]);

  ref = run (in, PARAMS (.weights = weights, .tile_size = 64), NULL);
  for (int i = 0; i < N; i++)
    {
      all_same &= jobs[i].out && same_bytes (ref, jobs[i].out);
      if (jobs[i].out)
        g_object_unref (jobs[i].out);
    }
  check (all_same, "4 graphs on 4 threads give the sequential result", "");
  check (log_count ("untrained") == 1, "... and share one load of the model", "%d loads",
         log_count ("untrained"));

  g_object_unref (ref);
  g_object_unref (in);
  g_unlink (fresh);
  g_free (fresh);
}

int
main (int argc, char **argv)
{
  if (argc != 5)
    {
      fprintf (stderr, "usage: %s WEIGHTS WEIGHTS2 WEIGHTS_FEW_CLASSES TMPDIR\n", argv[0]);
      return 2;
    }
  weights     = argv[1];
  weights2    = argv[2];
  weights_few = argv[3];
  tmpdir      = argv[4];

  log_text = g_string_new (NULL);
  g_log_set_handler ("GEGL", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE, log_handler, NULL);
  g_unsetenv ("MASKDCPT_WEIGHTS");

  /* The op is GPL3+ (it links the GPL core): GEGL shows it only to
   * programs that declare a GPL3 licence, as gegl and GIMP do, before
   * gegl_init (changing it later reloads every module). */
  g_object_set (gegl_config (), "application-license", "GPL3", NULL);
  gegl_init (&argc, &argv);

  test_registration ();
  if (gegl_has_operation (OP))
    {
      test_restore_basics ();
      test_formats_and_sizes ();
      test_failures ();
      test_reload ();
      test_concurrency ();
    }

  gegl_exit ();
  printf ("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}

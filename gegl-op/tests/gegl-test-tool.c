/* gegl-test-tool.c - image helpers for test-gegl-cli.sh, through GEGL.
 *
 *   gegl-test-tool make OUT.png WIDTH HEIGHT BITS CHANNELS [SEED]
 *       a smooth noisy picture (CHANNELS 1 grey, 2 grey+alpha, 3 RGB,
 *       4 RGBA; alpha is a ramp), written as an 8- or 16-bit PNG
 *   gegl-test-tool compare A B
 *       prints "size=same|differs rgb_max=.. rgb_mean=.. alpha_max=.."
 *       (R'G'B'A float differences)
 *   gegl-test-tool info FILE.png
 *       prints "depth=8|16 channels=N fine=K", K = 16-bit samples that are
 *       off the 8-bit grid (not multiples of 257)
 *
 * Exit status 0, or 1 with a message when a file cannot be read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gegl.h>

static GeglBuffer *
load (const char *path)
{
  GeglNode   *graph = gegl_node_new ();
  GeglBuffer *buf   = NULL;
  GeglNode   *load  = gegl_node_new_child (graph, "operation", "gegl:load", "path", path, NULL);
  GeglNode   *sink  = gegl_node_new_child (graph, "operation", "gegl:buffer-sink",
                                           "buffer", &buf, NULL);

  gegl_node_link (load, sink);
  gegl_node_process (sink);
  g_object_unref (graph);
  if (buf && gegl_buffer_get_width (buf) <= 0)
    g_clear_object (&buf);
  if (! buf)
    fprintf (stderr, "gegl-test-tool: cannot load %s\n", path);
  return buf;
}

static float
hash01 (guint32 x)
{
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
  return (x >> 8) / 16777216.0f;
}

static int
cmd_make (const char *out, int w, int h, int bits, int channels, guint32 seed)
{
  static const char *formats[] = { NULL, "Y' float", "Y'A float", "R'G'B' float", "R'G'B'A float" };
  GeglBuffer *buf;
  GeglNode   *graph, *src, *save;
  float      *px = g_new (float, (gsize) w * h * 4);

  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        float *p = px + ((gsize) y * w + x) * 4;
        float  u = (float) x / MAX (w - 1, 1), v = (float) y / MAX (h - 1, 1);

        for (int c = 0; c < 3; c++)
          {
            float base = 0.5f + 0.35f * sinf (7.0f * u + 2.0f * c) * cosf (5.0f * v - c);
            float n    = hash01 (seed * 0x9e3779b9U + (guint32) ((y * w + x) * 3 + c)) - 0.5f;

            p[c] = CLAMP (base + 0.12f * n, 0.0f, 1.0f);
          }
        p[3] = CLAMP (0.1f + 0.85f * u * (0.5f + 0.5f * v), 0.0f, 1.0f);
      }
  buf = gegl_buffer_new (GEGL_RECTANGLE (0, 0, w, h), babl_format (formats[channels]));
  gegl_buffer_set (buf, NULL, 0, babl_format ("R'G'B'A float"), px, GEGL_AUTO_ROWSTRIDE);
  g_free (px);

  graph = gegl_node_new ();
  src   = gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", buf, NULL);
  save  = gegl_node_new_child (graph, "operation", "gegl:png-save", "path", out,
                               "bitdepth", bits, NULL);
  gegl_node_link (src, save);
  gegl_node_process (save);
  g_object_unref (graph);
  g_object_unref (buf);
  return 0;
}

static int
cmd_compare (const char *a_path, const char *b_path)
{
  GeglBuffer *a = load (a_path), *b = load (b_path);
  const Babl *rgba = babl_format ("R'G'B'A float");
  double      rgb_max = 0, rgb_mean = 0, alpha_max = 0;
  float      *pa, *pb;
  gsize       n;

  if (! a || ! b || ! gegl_rectangle_equal (gegl_buffer_get_extent (a), gegl_buffer_get_extent (b)))
    {
      int rc = a && b ? 0 : 1;   /* both loaded: a valid answer */

      if (rc == 0)
        printf ("size=differs\n");
      g_clear_object (&a);
      g_clear_object (&b);
      return rc;
    }
  n  = (gsize) gegl_buffer_get_width (a) * gegl_buffer_get_height (a);
  pa = g_new (float, n * 4);
  pb = g_new (float, n * 4);
  gegl_buffer_get (a, NULL, 1.0, rgba, pa, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  gegl_buffer_get (b, NULL, 1.0, rgba, pb, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  for (gsize i = 0; i < n * 4; i++)
    {
      double e = fabs ((double) pa[i] - pb[i]);

      if (i % 4 == 3)
        alpha_max = MAX (alpha_max, e);
      else
        {
          rgb_max = MAX (rgb_max, e);
          rgb_mean += e;
        }
    }
  printf ("size=same rgb_max=%.9g rgb_mean=%.9g alpha_max=%.9g\n",
          rgb_max, rgb_mean / (double) (n * 3), alpha_max);
  g_free (pa);
  g_free (pb);
  g_object_unref (a);
  g_object_unref (b);
  return 0;
}

static int
cmd_info (const char *path)
{
  static const int channels_of[7] = { 1, 0, 3, 1, 2, 0, 4 };
  unsigned char head[26];
  FILE         *f = fopen (path, "rb");
  GeglBuffer   *buf;
  guint16      *px;
  gsize         n, fine = 0;

  if (! f || fread (head, 1, sizeof head, f) != sizeof head ||
      memcmp (head, "\x89PNG\r\n\x1a\n", 8) != 0 || head[25] > 6)
    {
      fprintf (stderr, "gegl-test-tool: %s is not a PNG file\n", path);
      if (f)
        fclose (f);
      return 1;
    }
  fclose (f);
  if (! (buf = load (path)))
    return 1;
  n  = (gsize) gegl_buffer_get_width (buf) * gegl_buffer_get_height (buf) * 4;
  px = g_new (guint16, n);
  gegl_buffer_get (buf, NULL, 1.0, babl_format ("R'G'B'A u16"), px, GEGL_AUTO_ROWSTRIDE,
                   GEGL_ABYSS_NONE);
  for (gsize i = 0; i < n; i++)
    fine += px[i] % 257 != 0;
  printf ("depth=%d channels=%d fine=%zu\n", head[24], channels_of[head[25]], fine);
  g_free (px);
  g_object_unref (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  int rc = 2;

  gegl_init (&argc, &argv);
  if (argc >= 7 && strcmp (argv[1], "make") == 0)
    {
      int w = atoi (argv[3]), h = atoi (argv[4]), bits = atoi (argv[5]), ch = atoi (argv[6]);

      if (w > 0 && h > 0 && (bits == 8 || bits == 16) && ch >= 1 && ch <= 4)
        rc = cmd_make (argv[2], w, h, bits, ch, argc > 7 ? (guint32) atoi (argv[7]) : 1);
    }
  else if (argc == 4 && strcmp (argv[1], "compare") == 0)
    rc = cmd_compare (argv[2], argv[3]);
  else if (argc == 3 && strcmp (argv[1], "info") == 0)
    rc = cmd_info (argv[2]);
  if (rc == 2)
    fprintf (stderr, "usage: gegl-test-tool make OUT W H BITS CHANNELS [SEED] | "
                     "compare A B | info FILE\n");
  gegl_exit ();
  return rc;
}

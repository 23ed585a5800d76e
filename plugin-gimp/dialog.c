/* dialog.c - the dialog of "Restore Photo (MaskDCPT)" (docs/gimp.md).
 *
 * A GimpProcedureDialog over the procedure's config.  GIMP's generic
 * widgets serve the strength, the device and the weights file; the
 * degradation, a free string argument, gets a combo box of "Auto-detect"
 * and the classes of the weights file in use.  With Auto-detect, a bar per
 * class shows the probabilities maskdcpt_classify gives for the layer (or
 * the selection and its context), computed when the dialog opens and again
 * when the weights file or the device changes.  A label under the device
 * says which backend runs the network.  On the left, a before/after
 * preview of a crop from the centre, restored in a worker thread when the
 * settings change (see the preview section); with Auto-detect it is
 * conditioned on the probabilities the bars show.
 *
 * OK leaves the settings in the config; plugin.c then restores the layer
 * on the same path as a non-interactive call.
 */

#include "config.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

#include "maskdcpt-gimp.h"

typedef struct _PreviewJob PreviewJob;

typedef struct
{
  GimpProcedureConfig *config;
  GimpDrawable        *drawable;
  MdgModel            *model;        /* NULL when the weights cannot be used */
  gchar               *model_error;

  GtkWidget           *combo;
  GtkWidget           *weights_note; /* untrained weights, or why none */
  GtkWidget           *bars_frame;
  GtkWidget           *bars_grid;
  GtkWidget           *bars_status;
  GtkWidget           *device_label;

  guint                classify_id;
  gulong               combo_handler;
  gfloat              *probs;        /* the bars' probabilities; NULL: none yet */

  /* The before/after preview. */
  GtkWidget           *preview_area;
  GtkWidget           *preview_labels;
  GtkWidget           *preview_status;
  GeglRectangle        crop;         /* shown, in layer coordinates */
  GeglRectangle        read;         /* crop plus context */
  const Babl          *format;
  gint                 channels;
  gfloat              *in;           /* read, as read */
  gfloat              *restored;     /* read, restored at full strength */
  gfloat              *mask;         /* crop, selection; NULL: none */
  GdkPixbuf           *before_pixbuf;
  GdkPixbuf           *after_pixbuf;
  guint                preview_id;
  PreviewJob          *job;
  gchar               *preview_degradation; /* of the last run asked for */
} MdgDialog;

static void preview_later (MdgDialog *d);

/* ------------------------------------------------------------ the model */

static void
dialog_load_model (MdgDialog *d)
{
  g_autoptr (GFile)  weights = NULL;
  g_autoptr (GError) error   = NULL;
  g_autofree gchar  *network = NULL;

  g_clear_pointer (&d->model, mdg_model_free);
  g_clear_pointer (&d->model_error, g_free);

  g_object_get (d->config, "weights", &weights, "network", &network, NULL);
  d->model = mdg_model_load (weights, network, &error);
  if (! d->model)
    d->model_error = g_strdup (error->message);
}

/* ----------------------------------------------------- degradation combo */

static void
combo_changed (GtkComboBox *combo,
               MdgDialog   *d)
{
  const gchar *id = gtk_combo_box_get_active_id (combo);

  GtkWidget   *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (combo));

  if (id)
    g_object_set (d->config, "degradation", id, NULL);
  gtk_widget_set_visible (d->bars_frame, g_strcmp0 (id, MDG_AUTO) == 0);
  /* Shrink back to the natural size when the bars go. */
  if (GTK_IS_WINDOW (toplevel))
    gtk_window_resize (GTK_WINDOW (toplevel), 1, 1);
}

/* Refills the combo with the classes of the current model and selects the
 * config's degradation, or Auto-detect when the model lacks it. */
static void
combo_fill (MdgDialog *d)
{
  GtkComboBoxText  *combo = GTK_COMBO_BOX_TEXT (d->combo);
  g_autofree gchar *current = NULL;

  g_object_get (d->config, "degradation", &current, NULL);

  g_signal_handler_block (combo, d->combo_handler);
  gtk_combo_box_text_remove_all (combo);
  gtk_combo_box_text_append (combo, MDG_AUTO, _("Auto-detect"));
  if (d->model)
    {
      gint n = maskdcpt_model_num_classes (d->model->model);

      for (gint i = 0; i < n; i++)
        {
          const gchar *name = maskdcpt_model_class_name (d->model->model, i);

          gtk_combo_box_text_append (combo, name, mdg_class_label (name));
        }
    }
  g_signal_handler_unblock (combo, d->combo_handler);

  if (! current || ! gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current))
    gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), MDG_AUTO);
  combo_changed (GTK_COMBO_BOX (combo), d);
}

/* ------------------------------------------------------ probability bars */

static void
bars_clear (MdgDialog *d)
{
  GList *children = gtk_container_get_children (GTK_CONTAINER (d->bars_grid));

  for (GList *l = children; l; l = l->next)
    gtk_widget_destroy (l->data);
  g_list_free (children);
}

static void
bars_show (MdgDialog    *d,
           const gfloat *probs,
           gint          n)
{
  gint best = 0;

  bars_clear (d);
  for (gint i = 0; i < n; i++)
    {
      const gchar      *name  = maskdcpt_model_class_name (d->model->model, i);
      GtkWidget        *label = gtk_label_new (mdg_class_label (name));
      GtkWidget        *bar   = gtk_progress_bar_new ();
      g_autofree gchar *text  = g_strdup_printf (_("%.0f %%"), 100.0 * probs[i]);

      if (probs[i] > probs[best])
        best = i;
      gtk_label_set_xalign (GTK_LABEL (label), 0.0);
      gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (bar), CLAMP (probs[i], 0.0f, 1.0f));
      gtk_progress_bar_set_text (GTK_PROGRESS_BAR (bar), text);
      gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (bar), TRUE);
      gtk_widget_set_hexpand (bar, TRUE);
      gtk_widget_set_valign (bar, GTK_ALIGN_CENTER);
      gtk_grid_attach (GTK_GRID (d->bars_grid), label, 0, i, 1, 1);
      gtk_grid_attach (GTK_GRID (d->bars_grid), bar,   1, i, 1, 1);
    }
  gtk_widget_show_all (d->bars_grid);

  {
    gint              passes = maskdcpt_model_passes (d->model->model, probs, n);
    g_autofree gchar *text =
      g_strdup_printf (_("Most likely: %s (%.0f %%)"),
                       mdg_class_label (maskdcpt_model_class_name (d->model->model, best)),
                       100.0 * probs[best]);

    /* The weights file runs the network again on its own result for this
     * damage (docs/network.md): say why it takes longer. */
    if (passes > 1)
      {
        g_autofree gchar *more =
          g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                        "The network runs %d time for this damage",
                                        "The network runs %d times for this damage, each "
                                        "time on the last result: it takes longer",
                                        passes),
                           passes);
        g_autofree gchar *both = g_strdup_printf ("%s\n%s", text, more);

        gtk_label_set_text (GTK_LABEL (d->bars_status), both);
      }
    else
      {
        gtk_label_set_text (GTK_LABEL (d->bars_status), text);
      }
  }
}

/* Classifies the drawable's region on the chosen device, fills the bars,
 * keeps the probabilities for the preview and says which device ran. */
static void
classify_run (MdgDialog *d)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar  *device = NULL;
  g_autofree gchar  *note = NULL;
  g_autofree gfloat *probs = NULL;
  maskdcpt_context  *ctx;
  maskdcpt_error     err;
  GeglRectangle      read, write;
  MdgPixels          pixels = { 0 };
  maskdcpt_image     image;
  GString           *device_text;

  bars_clear (d);

  if (! d->model)
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status), "");
      gtk_label_set_text (GTK_LABEL (d->device_label), "");
      return;
    }

  g_object_get (d->config, "device", &device, NULL);
  ctx = mdg_context_new (d->model, device, &note, &error);
  if (! ctx)
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status), error->message);
      gtk_label_set_text (GTK_LABEL (d->device_label), "");
      return;
    }

  device_text = g_string_new (NULL);
  g_string_printf (device_text, _("In use: %s"), maskdcpt_context_device_name (ctx));
  if (maskdcpt_context_device_note (ctx)[0])
    g_string_append_printf (device_text, " (%s)", maskdcpt_context_device_note (ctx));
  if (note)
    g_string_append_printf (device_text, "\n%s", note);
  gtk_label_set_text (GTK_LABEL (d->device_label), device_text->str);
  g_string_free (device_text, TRUE);

  if (! mdg_drawable_region (d->drawable, &read, &write))
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status),
                          _("The selection does not touch this layer: nothing to restore."));
      maskdcpt_context_free (ctx);
      return;
    }
  if (read.width < MDG_MIN_EDGE || read.height < MDG_MIN_EDGE)
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status),
                          _("The layer is too small to tell the damage apart."));
      maskdcpt_context_free (ctx);
      return;
    }
  if (! mdg_pixels_read (d->drawable, read.x, read.y, read.width, read.height, &pixels, &error))
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status), error->message);
      maskdcpt_context_free (ctx);
      return;
    }

  image = (maskdcpt_image) { pixels.data, read.width, read.height, pixels.channels,
                             (size_t) read.width * pixels.channels };
  probs = g_new0 (gfloat, maskdcpt_model_num_classes (d->model->model));
  if (maskdcpt_classify (ctx, &image, probs, &err) == MASKDCPT_OK)
    {
      bars_show (d, probs, maskdcpt_model_num_classes (d->model->model));
      d->probs = g_steal_pointer (&probs);
    }
  else
    {
      g_autofree gchar *text =
        g_strdup_printf (_("The damage could not be detected: %s"), err.message);
      gtk_label_set_text (GTK_LABEL (d->bars_status), text);
    }
  mdg_pixels_clear (&pixels);
  maskdcpt_context_free (ctx);
}

static gboolean
classify_now (gpointer data)
{
  MdgDialog        *d = data;
  g_autofree gchar *degradation = NULL;

  d->classify_id = 0;
  classify_run (d);
  /* An Auto-detect preview waits for these probabilities. */
  g_object_get (d->config, "degradation", &degradation, NULL);
  if (g_strcmp0 (degradation, MDG_AUTO) == 0)
    preview_later (d);
  return G_SOURCE_REMOVE;
}

/* The classification runs once the dialog is on screen, so that opening
 * it is not held up by the network.  The probabilities of the previous
 * weights or device are dropped at once. */
static void
classify_later (MdgDialog *d)
{
  g_clear_pointer (&d->probs, g_free);
  if (d->classify_id)
    return;
  bars_clear (d);
  gtk_label_set_text (GTK_LABEL (d->bars_status), d->model ? _("Detecting the damage…") : "");
  d->classify_id = g_timeout_add (200, classify_now, d);
}

/* ------------------------------------------------------------- labels */

static GtkWidget *
small_label (void)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 50);
  gimp_label_set_attributes (GTK_LABEL (label), PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC, -1);
  return label;
}

/* -------------------------------------------------------------- preview */

/* The preview restores a crop of at most PREVIEW_SIZE² pixels from the
 * centre of the layer (or of the selection's bounds), with MDG_CONTEXT
 * pixels of context around it as the whole run has, and shows its left
 * half as it is and its right half restored.  The network runs at full
 * strength in a worker thread, 300 ms after the last change of the
 * degradation, the weights or the device; the strength only blends the
 * kept result again (out = in + strength (restored - in), as the core
 * does), so the slider needs no new run.  A non-rectangular selection is
 * applied as the merge of the whole run applies it.  With Auto-detect the
 * crop is conditioned on the probabilities detected on the whole region
 * (the bars), not on its own: it then shows what OK gives on that part.
 * It waits for them, and runs again when they change. */

#define PREVIEW_SIZE  256
#define PREVIEW_DELAY 300

struct _PreviewJob
{
  const MdgModel *model;
  gchar          *device;
  gint            class_index;
  gfloat         *probs;       /* Auto-detect: the bars' probabilities */
  gint            read_w, read_h, channels;
  gfloat         *in;          /* the read rectangle */
  gfloat         *restored;
  gint            cancel;      /* atomic */
  gboolean        orphaned;    /* the dialog let go of it */
  gchar          *error;
  GThread        *thread;
  MdgDialog      *dialog;
};

static void
preview_job_free (PreviewJob *job)
{
  g_free (job->device);
  g_free (job->probs);
  g_free (job->in);
  g_free (job->restored);
  g_free (job->error);
  g_free (job);
}

static int
preview_progress (void   *user,
                  double  fraction)
{
  PreviewJob *job = user;

  return g_atomic_int_get (&job->cancel) ? 0 : 1;
}

static gboolean preview_done (gpointer data);

static gpointer
preview_worker (gpointer data)
{
  PreviewJob        *job = data;
  g_autoptr (GError) error = NULL;
  maskdcpt_image     in, out;

  job->restored = g_try_new (gfloat, (gsize) job->read_w * job->read_h * job->channels);
  if (! job->restored)
    {
      job->error = g_strdup_printf (_("Not enough memory for a %d × %d image. The image was not changed."),
                                    job->read_w, job->read_h);
    }
  else
    {
      in  = (maskdcpt_image) { job->in, job->read_w, job->read_h, job->channels,
                               (size_t) job->read_w * job->channels };
      out = (maskdcpt_image) { job->restored, job->read_w, job->read_h, job->channels,
                               (size_t) job->read_w * job->channels };
      if (! mdg_run (job->model, job->device, &in, &out, job->class_index, job->probs, 1.0f,
                     preview_progress, job, NULL, &error))
        job->error = g_strdup (error->message);
    }
  g_idle_add (preview_done, job);
  return NULL;
}

/* Stops a running job and waits for it (before the model goes away). */
static void
preview_cancel (MdgDialog *d)
{
  if (d->preview_id)
    {
      g_source_remove (d->preview_id);
      d->preview_id = 0;
    }
  if (d->job)
    {
      g_atomic_int_set (&d->job->cancel, 1);
      g_thread_join (d->job->thread);
      d->job->thread   = NULL;
      d->job->orphaned = TRUE;   /* preview_done frees it */
      d->job = NULL;
    }
}

/* The 8-bit pixels shown: `before` as read, `after` blended with the
 * strength and the selection mask. */
static void
preview_render (MdgDialog *d)
{
  const Babl *fish;
  gdouble     strength = 1.0;
  gint        w = d->crop.width, h = d->crop.height, ch = d->channels;
  gsize       row = (gsize) d->read.width * ch;
  gsize       off = ((gsize) (d->crop.y - d->read.y) * d->read.width +
                     (d->crop.x - d->read.x)) * ch;
  gfloat     *after;

  g_clear_object (&d->before_pixbuf);
  g_clear_object (&d->after_pixbuf);
  if (! d->in)
    {
      gtk_widget_queue_draw (d->preview_area);
      return;
    }

  g_object_get (d->config, "strength", &strength, NULL);
  strength = CLAMP (strength, 0.0, 1.0);
  fish = babl_fish (d->format, babl_format ("R'G'B'A u8"));

  d->before_pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, w, h);
  for (gint y = 0; y < h; y++)
    babl_process (fish, d->in + off + y * row,
                  gdk_pixbuf_get_pixels (d->before_pixbuf) +
                  (gsize) y * gdk_pixbuf_get_rowstride (d->before_pixbuf), w);

  if (d->restored)
    {
      after = g_new (gfloat, (gsize) w * ch);
      d->after_pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, w, h);
      for (gint y = 0; y < h; y++)
        {
          const gfloat *a = d->in + off + y * row;
          const gfloat *r = d->restored + off + y * row;

          for (gint x = 0; x < w; x++)
            {
              gfloat s = strength * (d->mask ? d->mask[(gsize) y * w + x] : 1.0f);

              for (gint c = 0; c < ch; c++)
                after[x * ch + c] = a[x * ch + c] + s * (r[x * ch + c] - a[x * ch + c]);
            }
          babl_process (fish, after,
                        gdk_pixbuf_get_pixels (d->after_pixbuf) +
                        (gsize) y * gdk_pixbuf_get_rowstride (d->after_pixbuf), w);
        }
      g_free (after);
    }
  gtk_widget_queue_draw (d->preview_area);
}

static void
preview_status (MdgDialog   *d,
                const gchar *text)
{
  gtk_label_set_text (GTK_LABEL (d->preview_status), text);
}

static gboolean
preview_done (gpointer data)
{
  PreviewJob *job = data;
  MdgDialog  *d   = job->dialog;

  if (job->orphaned)
    {
      preview_job_free (job);
      return G_SOURCE_REMOVE;
    }
  g_thread_join (job->thread);
  d->job = NULL;
  if (job->error)
    {
      g_autofree gchar *text = g_strdup_printf (_("The preview failed: %s"), job->error);

      preview_status (d, text);
    }
  else
    {
      d->restored   = g_steal_pointer (&job->restored);
      preview_render (d);
      preview_status (d, "");
    }
  preview_job_free (job);
  return G_SOURCE_REMOVE;
}

/* Reads the crop (and the selection mask over it) once. */
static gboolean
preview_read (MdgDialog *d)
{
  g_autoptr (GError) error = NULL;
  GeglRectangle      read, write;
  MdgPixels          pixels = { 0 };
  gint               lw = gimp_drawable_get_width (d->drawable);
  gint               lh = gimp_drawable_get_height (d->drawable);
  GimpImage         *image = gimp_item_get_image (GIMP_ITEM (d->drawable));

  if (d->in)
    return TRUE;
  if (! mdg_drawable_region (d->drawable, &read, &write))
    {
      preview_status (d, _("The selection does not touch this layer: nothing to restore."));
      return FALSE;
    }
  d->crop.width  = MIN (PREVIEW_SIZE, write.width);
  d->crop.height = MIN (PREVIEW_SIZE, write.height);
  d->crop.x      = write.x + (write.width  - d->crop.width)  / 2;
  d->crop.y      = write.y + (write.height - d->crop.height) / 2;
  gegl_rectangle_intersect (&d->read,
                            GEGL_RECTANGLE (d->crop.x - MDG_CONTEXT, d->crop.y - MDG_CONTEXT,
                                            d->crop.width + 2 * MDG_CONTEXT,
                                            d->crop.height + 2 * MDG_CONTEXT),
                            GEGL_RECTANGLE (0, 0, lw, lh));
  if (d->read.width < MDG_MIN_EDGE || d->read.height < MDG_MIN_EDGE)
    {
      preview_status (d, _("The layer is too small to tell the damage apart."));
      return FALSE;
    }
  if (! mdg_pixels_read (d->drawable, d->read.x, d->read.y, d->read.width, d->read.height,
                         &pixels, &error))
    {
      preview_status (d, error->message);
      return FALSE;
    }
  d->in       = g_steal_pointer (&pixels.data);
  d->channels = pixels.channels;
  d->format   = mdg_drawable_format (d->drawable, NULL);

  if (! gimp_selection_is_empty (image))
    {
      GimpSelection         *selection = gimp_image_get_selection (image);
      g_autoptr (GeglBuffer) buffer    = gimp_drawable_get_buffer (GIMP_DRAWABLE (selection));
      gint                   ox = 0, oy = 0;

      gimp_drawable_get_offsets (d->drawable, &ox, &oy);
      d->mask = g_new (gfloat, (gsize) d->crop.width * d->crop.height);
      gegl_buffer_get (buffer,
                       GEGL_RECTANGLE (d->crop.x + ox, d->crop.y + oy,
                                       d->crop.width, d->crop.height),
                       1.0, babl_format ("Y float"), d->mask,
                       GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    }
  gtk_widget_set_size_request (d->preview_area, d->crop.width, d->crop.height);
  gtk_widget_set_size_request (d->preview_labels, d->crop.width, -1);
  return TRUE;
}

static gboolean
preview_now (gpointer data)
{
  MdgDialog         *d = data;
  g_autoptr (GError) error = NULL;
  g_autofree gchar  *degradation = NULL;
  PreviewJob        *job;
  gint               class_index;

  d->preview_id = 0;
  if (! d->model)
    {
      preview_status (d, "");
      return G_SOURCE_REMOVE;
    }
  if (! preview_read (d))
    return G_SOURCE_REMOVE;

  g_object_get (d->config, "degradation", &degradation, NULL);
  class_index = mdg_class_index (d->model, degradation, &error);
  if (class_index == -2)
    {
      preview_status (d, error->message);
      return G_SOURCE_REMOVE;
    }
  if (class_index == MASKDCPT_CLASS_AUTO && ! d->probs)
    {
      /* classify_now starts the preview again when it is done; if it
       * failed, the bars say why and there is nothing to condition on. */
      preview_status (d, d->classify_id ? _("Detecting the damage…") :
                                          gtk_label_get_text (GTK_LABEL (d->bars_status)));
      return G_SOURCE_REMOVE;
    }

  job              = g_new0 (PreviewJob, 1);
  job->model       = d->model;
  job->class_index = class_index;
  if (class_index == MASKDCPT_CLASS_AUTO)
    job->probs     = g_memdup2 (d->probs, (gsize) maskdcpt_model_num_classes (d->model->model) *
                                          sizeof (gfloat));
  job->read_w      = d->read.width;
  job->read_h      = d->read.height;
  job->channels    = d->channels;
  job->in          = g_memdup2 (d->in, (gsize) d->read.width * d->read.height *
                                       d->channels * sizeof (gfloat));
  job->dialog      = d;
  g_object_get (d->config, "device", &job->device, NULL);
  d->job           = job;
  job->thread      = g_thread_new ("maskdcpt-preview", preview_worker, job);
  return G_SOURCE_REMOVE;
}

/* A new network run, PREVIEW_DELAY ms after the last change. */
static void
preview_later (MdgDialog *d)
{
  preview_cancel (d);
  g_free (d->preview_degradation);
  g_object_get (d->config, "degradation", &d->preview_degradation, NULL);
  g_clear_pointer (&d->restored, g_free);
  preview_render (d);
  gtk_label_set_text (GTK_LABEL (d->preview_status),
                      d->model ? _("Updating the preview…") : "");
  d->preview_id = g_timeout_add (PREVIEW_DELAY, preview_now, d);
}

static gboolean
preview_draw (GtkWidget *area,
              cairo_t   *cr,
              MdgDialog *d)
{
  gint w = gtk_widget_get_allocated_width (area);
  gint h = gtk_widget_get_allocated_height (area);
  gint x0, y0, half;

  cairo_set_source_rgb (cr, 0.5, 0.5, 0.5);
  cairo_paint (cr);
  if (! d->before_pixbuf)
    return TRUE;

  x0   = (w - d->crop.width) / 2;
  y0   = (h - d->crop.height) / 2;
  half = d->crop.width / 2;

  gdk_cairo_set_source_pixbuf (cr, d->before_pixbuf, x0, y0);
  cairo_rectangle (cr, x0, y0, half, d->crop.height);
  cairo_fill (cr);
  if (d->after_pixbuf)
    {
      gdk_cairo_set_source_pixbuf (cr, d->after_pixbuf, x0, y0);
      cairo_rectangle (cr, x0 + half, y0, d->crop.width - half, d->crop.height);
      cairo_fill (cr);
    }
  /* The split: a white line with dark edges, seen on any image. */
  cairo_set_source_rgba (cr, 0.0, 0.0, 0.0, 0.6);
  cairo_rectangle (cr, x0 + half - 2, y0, 4, d->crop.height);
  cairo_fill (cr);
  cairo_set_source_rgb (cr, 1.0, 1.0, 1.0);
  cairo_rectangle (cr, x0 + half - 1, y0, 2, d->crop.height);
  cairo_fill (cr);
  return TRUE;
}

static GtkWidget *
preview_new (MdgDialog *d)
{
  GtkWidget *frame = gimp_frame_new (_("Preview"));
  GtkWidget *vbox  = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  GtkWidget *hbox  = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 0);
  GtkWidget *before = gtk_label_new (_("Before"));
  GtkWidget *after  = gtk_label_new (_("After"));

  d->preview_area = gtk_drawing_area_new ();
  gtk_widget_set_size_request (d->preview_area, PREVIEW_SIZE, PREVIEW_SIZE);
  gtk_widget_set_halign (d->preview_area, GTK_ALIGN_START);
  gimp_help_set_help_data (d->preview_area,
                           _("The centre of the layer (or of the selection) at 100 %: "
                             "on the left as it is, on the right restored with the "
                             "current settings. OK restores the whole layer."), NULL);
  g_signal_connect (d->preview_area, "draw", G_CALLBACK (preview_draw), d);

  gtk_box_set_homogeneous (GTK_BOX (hbox), TRUE);
  gtk_widget_set_halign (hbox, GTK_ALIGN_START);
  gtk_widget_set_size_request (hbox, PREVIEW_SIZE, -1);
  gtk_box_pack_start (GTK_BOX (hbox), before, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (hbox), after,  TRUE, TRUE, 0);
  d->preview_labels = hbox;

  d->preview_status = small_label ();
  gtk_label_set_max_width_chars (GTK_LABEL (d->preview_status), 36);
  gtk_box_pack_start (GTK_BOX (vbox), d->preview_area, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (vbox), hbox, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (vbox), d->preview_status, FALSE, FALSE, 0);
  gtk_container_add (GTK_CONTAINER (frame), vbox);
  gtk_widget_show_all (frame);
  return frame;
}

static void
strength_changed (GObject    *config,
                  GParamSpec *pspec,
                  MdgDialog  *d)
{
  preview_render (d);
}

/* ------------------------------------------------------ weights changes */

static void
weights_note_update (MdgDialog *d)
{
  g_autofree gchar *text = NULL;

  if (! d->model)
    text = g_strdup (d->model_error);
  else if (d->model->untrained)
    text = g_strdup_printf ("%s\n%s",
                            d->model->path,
                            _("These are untrained, random weights: they change the "
                              "image but restore nothing."));
  else
    text = g_strdup_printf (_("In use: %s"), d->model->path);
  gtk_label_set_text (GTK_LABEL (d->weights_note), text);
}

static void
weights_changed (GObject    *config,
                 GParamSpec *pspec,
                 MdgDialog  *d)
{
  preview_cancel (d);            /* the worker uses the model */
  dialog_load_model (d);
  weights_note_update (d);
  combo_fill (d);
  classify_later (d);
  preview_later (d);
}

/* The Reset button of the dialog, or loaded settings, change the config
 * behind the combo's back. */
static void
degradation_changed (GObject    *config,
                     GParamSpec *pspec,
                     MdgDialog  *d)
{
  g_autofree gchar *current = NULL;
  g_autofree gchar *current2 = NULL;

  g_object_get (config, "degradation", &current, NULL);
  if (g_strcmp0 (current, gtk_combo_box_get_active_id (GTK_COMBO_BOX (d->combo))) != 0 &&
      ! gtk_combo_box_set_active_id (GTK_COMBO_BOX (d->combo), current))
    gtk_combo_box_set_active_id (GTK_COMBO_BOX (d->combo), MDG_AUTO);

  g_object_get (config, "degradation", &current2, NULL);
  if (g_strcmp0 (current2, d->preview_degradation) != 0)
    preview_later (d);
}

static void
device_changed (GObject    *config,
                GParamSpec *pspec,
                MdgDialog  *d)
{
  classify_later (d);
  preview_later (d);
}

/* ------------------------------------------------------------ the dialog */

gboolean
mdg_dialog_run (GimpProcedure       *procedure,
                GimpProcedureConfig *config,
                GimpDrawable        *drawable)
{
  MdgDialog  d = { .config = config, .drawable = drawable };
  GtkWidget *dialog;
  GtkWidget *content;
  GtkWidget *hbox, *label, *vbox, *device_box, *preview, *controls, *main_box;
  GtkWidget *action_area;
  GList     *children;
  gulong     weights_handler, network_handler, device_handler, degradation_handler;
  gulong     strength_handler;
  gboolean   run;

  dialog  = gimp_procedure_dialog_new (procedure, config, _("Restore Photo (MaskDCPT)"));
  content = gtk_dialog_get_content_area (GTK_DIALOG (dialog));

  /* Degradation: Auto-detect or a class of the weights file. */
  hbox  = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  label = gtk_label_new_with_mnemonic (_("_Degradation:"));
  d.combo = gtk_combo_box_text_new ();
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), d.combo);
  gtk_widget_set_hexpand (d.combo, TRUE);
  gtk_box_pack_start (GTK_BOX (hbox), label, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (hbox), d.combo, TRUE, TRUE, 0);
  gimp_help_set_help_data (d.combo,
                           _("Auto-detect lets the network recognise the damage "
                             "and remove what it finds; any other choice forces "
                             "that type."), NULL);
  d.combo_handler = g_signal_connect (d.combo, "changed", G_CALLBACK (combo_changed), &d);

  /* The probabilities, shown with Auto-detect. */
  d.bars_frame = gimp_frame_new (_("Detected damage"));
  vbox = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  d.bars_grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (d.bars_grid), 2);
  gtk_grid_set_column_spacing (GTK_GRID (d.bars_grid), 12);
  d.bars_status = small_label ();
  gtk_box_pack_start (GTK_BOX (vbox), d.bars_grid, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (vbox), d.bars_status, FALSE, FALSE, 0);
  gtk_container_add (GTK_CONTAINER (d.bars_frame), vbox);
  gtk_widget_show_all (d.bars_frame);

  d.weights_note = small_label ();
  d.device_label = small_label ();

  /* GIMP's own widgets for the other arguments, in this order: a slider
   * for the strength. */
  gimp_procedure_dialog_get_scale_entry (GIMP_PROCEDURE_DIALOG (dialog), "strength", 1.0);
  gimp_procedure_dialog_fill (GIMP_PROCEDURE_DIALOG (dialog), "strength", "device", "network",
                              "weights", NULL);

  device_box = gimp_procedure_dialog_get_widget (GIMP_PROCEDURE_DIALOG (dialog), "device", G_TYPE_NONE);
  gtk_box_pack_start (GTK_BOX (content), hbox, FALSE, FALSE, 0);
  gtk_box_reorder_child (GTK_BOX (content), hbox, 0);
  gtk_box_pack_start (GTK_BOX (content), d.bars_frame, FALSE, FALSE, 0);
  gtk_box_reorder_child (GTK_BOX (content), d.bars_frame, 1);
  gtk_box_pack_start (GTK_BOX (content), d.device_label, FALSE, FALSE, 0);
  {
    /* Right under the device combo. */
    GValue pos = G_VALUE_INIT;

    g_value_init (&pos, G_TYPE_INT);
    gtk_container_child_get_property (GTK_CONTAINER (content), device_box, "position", &pos);
    gtk_box_reorder_child (GTK_BOX (content), d.device_label, g_value_get_int (&pos) + 1);
  }
  gtk_box_pack_start (GTK_BOX (content), d.weights_note, FALSE, FALSE, 0);
  gtk_widget_show_all (hbox);
  gtk_widget_show (d.device_label);
  gtk_widget_show (d.weights_note);

  /* The preview on the left, the settings on the right: every child of
   * the content area but the buttons moves into a box beside it. */
  preview     = preview_new (&d);
  controls    = gtk_box_new (GTK_ORIENTATION_VERTICAL,
                             gtk_box_get_spacing (GTK_BOX (content)));
  main_box    = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  action_area = gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_OK);
  action_area = action_area ? gtk_widget_get_parent (action_area) : NULL;
  children    = gtk_container_get_children (GTK_CONTAINER (content));
  for (GList *l = children; l; l = l->next)
    {
      GtkWidget *child = l->data;
      gboolean   expand, fill;
      guint      padding;

      if (child == action_area)
        continue;
      gtk_box_query_child_packing (GTK_BOX (content), child, &expand, &fill, &padding, NULL);
      g_object_ref (child);
      gtk_container_remove (GTK_CONTAINER (content), child);
      gtk_box_pack_start (GTK_BOX (controls), child, expand, fill, padding);
      g_object_unref (child);
    }
  g_list_free (children);
  gtk_widget_set_valign (preview, GTK_ALIGN_START);
  gtk_box_pack_start (GTK_BOX (main_box), preview, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (main_box), controls, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (content), main_box, TRUE, TRUE, 0);
  gtk_box_reorder_child (GTK_BOX (content), main_box, 0);
  gtk_widget_show (controls);
  gtk_widget_show (main_box);

  dialog_load_model (&d);
  weights_note_update (&d);
  combo_fill (&d);
  classify_later (&d);
  preview_later (&d);

  weights_handler = g_signal_connect (config, "notify::weights", G_CALLBACK (weights_changed), &d);
  network_handler = g_signal_connect (config, "notify::network", G_CALLBACK (weights_changed), &d);
  device_handler  = g_signal_connect (config, "notify::device",  G_CALLBACK (device_changed),  &d);
  degradation_handler = g_signal_connect (config, "notify::degradation",
                                          G_CALLBACK (degradation_changed), &d);
  strength_handler = g_signal_connect (config, "notify::strength",
                                       G_CALLBACK (strength_changed), &d);

  run = gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog));

  g_signal_handler_disconnect (config, weights_handler);
  g_signal_handler_disconnect (config, network_handler);
  g_signal_handler_disconnect (config, device_handler);
  g_signal_handler_disconnect (config, degradation_handler);
  g_signal_handler_disconnect (config, strength_handler);
  if (d.classify_id)
    g_source_remove (d.classify_id);
  preview_cancel (&d);
  gtk_widget_destroy (dialog);
  mdg_model_free (d.model);
  g_free (d.model_error);
  g_free (d.preview_degradation);
  g_free (d.probs);
  g_free (d.in);
  g_free (d.restored);
  g_free (d.mask);
  g_clear_object (&d.before_pixbuf);
  g_clear_object (&d.after_pixbuf);
  return run;
}

/* dialog.c - the dialog of "Restore Photo (MaskDCPT)" (docs/gimp.md).
 *
 * A GimpProcedureDialog over the procedure's config.  GIMP's generic
 * widgets serve the strength, the device and the weights file; the
 * degradation, a free string argument, gets a combo box of "Auto-detect"
 * and the classes of the weights file in use.  With Auto-detect, a bar per
 * class shows the probabilities maskdcpt_classify gives for the layer (or
 * the selection and its context), computed when the dialog opens and again
 * when the weights file or the device changes.  A label under the device
 * says which backend runs the network.
 *
 * OK leaves the settings in the config; plugin.c then restores the layer
 * on the same path as a non-interactive call.
 */

#include "config.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

#include "maskdcpt-gimp.h"

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
} MdgDialog;

/* ------------------------------------------------------------ the model */

static void
dialog_load_model (MdgDialog *d)
{
  g_autoptr (GFile)  weights = NULL;
  g_autoptr (GError) error   = NULL;

  g_clear_pointer (&d->model, mdg_model_free);
  g_clear_pointer (&d->model_error, g_free);

  g_object_get (d->config, "weights", &weights, NULL);
  d->model = mdg_model_load (weights, &error);
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
    g_autofree gchar *text =
      g_strdup_printf (_("Most likely: %s (%.0f %%)"),
                       mdg_class_label (maskdcpt_model_class_name (d->model->model, best)),
                       100.0 * probs[best]);
    gtk_label_set_text (GTK_LABEL (d->bars_status), text);
  }
}

/* Classifies the drawable's region on the chosen device, fills the bars
 * and says which device ran. */
static gboolean
classify_now (gpointer data)
{
  MdgDialog         *d = data;
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

  d->classify_id = 0;
  bars_clear (d);

  if (! d->model)
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status), "");
      gtk_label_set_text (GTK_LABEL (d->device_label), "");
      return G_SOURCE_REMOVE;
    }

  g_object_get (d->config, "device", &device, NULL);
  ctx = mdg_context_new (d->model, device, &note, &error);
  if (! ctx)
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status), error->message);
      gtk_label_set_text (GTK_LABEL (d->device_label), "");
      return G_SOURCE_REMOVE;
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
      return G_SOURCE_REMOVE;
    }
  if (read.width < MDG_MIN_EDGE || read.height < MDG_MIN_EDGE)
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status),
                          _("The layer is too small to tell the damage apart."));
      maskdcpt_context_free (ctx);
      return G_SOURCE_REMOVE;
    }
  if (! mdg_pixels_read (d->drawable, read.x, read.y, read.width, read.height, &pixels, &error))
    {
      gtk_label_set_text (GTK_LABEL (d->bars_status), error->message);
      maskdcpt_context_free (ctx);
      return G_SOURCE_REMOVE;
    }

  image = (maskdcpt_image) { pixels.data, read.width, read.height, pixels.channels,
                             (size_t) read.width * pixels.channels };
  probs = g_new0 (gfloat, maskdcpt_model_num_classes (d->model->model));
  if (maskdcpt_classify (ctx, &image, probs, &err) == MASKDCPT_OK)
    bars_show (d, probs, maskdcpt_model_num_classes (d->model->model));
  else
    {
      g_autofree gchar *text =
        g_strdup_printf (_("The damage could not be detected: %s"), err.message);
      gtk_label_set_text (GTK_LABEL (d->bars_status), text);
    }
  mdg_pixels_clear (&pixels);
  maskdcpt_context_free (ctx);
  return G_SOURCE_REMOVE;
}

/* The classification runs once the dialog is on screen, so that opening
 * it is not held up by the network. */
static void
classify_later (MdgDialog *d)
{
  if (d->classify_id)
    return;
  bars_clear (d);
  gtk_label_set_text (GTK_LABEL (d->bars_status), d->model ? _("Detecting the damage…") : "");
  d->classify_id = g_timeout_add (200, classify_now, d);
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
  dialog_load_model (d);
  weights_note_update (d);
  combo_fill (d);
  classify_later (d);
}

/* The Reset button of the dialog, or loaded settings, change the config
 * behind the combo's back. */
static void
degradation_changed (GObject    *config,
                     GParamSpec *pspec,
                     MdgDialog  *d)
{
  g_autofree gchar *current = NULL;

  g_object_get (config, "degradation", &current, NULL);
  if (g_strcmp0 (current, gtk_combo_box_get_active_id (GTK_COMBO_BOX (d->combo))) != 0 &&
      ! gtk_combo_box_set_active_id (GTK_COMBO_BOX (d->combo), current))
    gtk_combo_box_set_active_id (GTK_COMBO_BOX (d->combo), MDG_AUTO);
}

static void
device_changed (GObject    *config,
                GParamSpec *pspec,
                MdgDialog  *d)
{
  classify_later (d);
}

/* ------------------------------------------------------------ the dialog */

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

gboolean
mdg_dialog_run (GimpProcedure       *procedure,
                GimpProcedureConfig *config,
                GimpDrawable        *drawable)
{
  MdgDialog  d = { .config = config, .drawable = drawable };
  GtkWidget *dialog;
  GtkWidget *content;
  GtkWidget *hbox, *label, *vbox, *device_box;
  gulong     weights_handler, device_handler, degradation_handler;
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
  gimp_procedure_dialog_fill (GIMP_PROCEDURE_DIALOG (dialog), "strength", "device", "weights", NULL);

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

  dialog_load_model (&d);
  weights_note_update (&d);
  combo_fill (&d);
  classify_later (&d);

  weights_handler = g_signal_connect (config, "notify::weights", G_CALLBACK (weights_changed), &d);
  device_handler  = g_signal_connect (config, "notify::device",  G_CALLBACK (device_changed),  &d);
  degradation_handler = g_signal_connect (config, "notify::degradation",
                                          G_CALLBACK (degradation_changed), &d);

  run = gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog));

  g_signal_handler_disconnect (config, weights_handler);
  g_signal_handler_disconnect (config, device_handler);
  g_signal_handler_disconnect (config, degradation_handler);
  if (d.classify_id)
    g_source_remove (d.classify_id);
  gtk_widget_destroy (dialog);
  mdg_model_free (d.model);
  g_free (d.model_error);
  return run;
}

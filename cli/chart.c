/* Per-interval bar charts through cairo: see chart.h. */
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chart.h"

#define WIDTH 960.0
#define PANEL_H 170.0
#define TOP 46.0
#define LEFT 78.0
#define RIGHT 20.0
#define BOTTOM 44.0

/* 1234567 -> "1.23M" */
static void human(double v, char *out, size_t len)
{
	static const char *const suffix[] = { "", "k", "M", "G", "T" };
	unsigned i = 0;
	while (fabs(v) >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(out, len, v == floor(v) ? "%.0f%s" : "%.3g%s", v, suffix[i]);
}

/* A round step for about 4 ticks up to max. */
static double tick_step(double max)
{
	double raw = max / 4, mag = pow(10, floor(log10(raw))), f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void text(cairo_t *cr, double x, double y, const char *s, double align)
{
	cairo_text_extents_t e;
	cairo_text_extents(cr, s, &e);
	cairo_move_to(cr, x - align * e.width, y);
	cairo_show_text(cr, s);
}

static void draw(cairo_t *cr, double height, const char *title, const char *xlabel, uint32_t x0,
		 size_t n, const struct chart_panel *panels, unsigned npanels)
{
	char label[32];
	double plot_w = WIDTH - LEFT - RIGHT, bar_w = plot_w / (double)(n ? n : 1);

	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
	cairo_set_font_size(cr, 15);
	cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
	text(cr, WIDTH / 2, 24, title, 0.5);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	for (unsigned p = 0; p < npanels; p++) {
		double top = TOP + p * PANEL_H, base = top + PANEL_H - 28, h = PANEL_H - 48, max = 0;
		for (size_t i = 0; i < n; i++)
			if (!isnan(panels[p].y[i]) && panels[p].y[i] > max)
				max = panels[p].y[i];
		double step = tick_step(max > 0 ? max : 1), top_v = ceil((max > 0 ? max : 1) / step) * step;
		cairo_set_font_size(cr, 12);
		cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
		text(cr, LEFT, top + 10, panels[p].title, 0);
		/* y grid and ticks */
		cairo_set_font_size(cr, 10);
		for (double v = 0; v <= top_v * 1.0001; v += step) {
			double y = base - v / top_v * h;
			cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
			cairo_set_line_width(cr, 1);
			cairo_move_to(cr, LEFT, y);
			cairo_line_to(cr, WIDTH - RIGHT, y);
			cairo_stroke(cr);
			cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
			human(v, label, sizeof(label));
			text(cr, LEFT - 6, y + 3, label, 1);
		}
		/* bars: the unmarked ones, then the marked ones in red */
		bool any = false;
		for (int marked = 0; marked < 2; marked++) {
			if (marked)
				cairo_set_source_rgb(cr, 0.84, 0.19, 0.15);
			else
				cairo_set_source_rgb(cr, 0.22 + 0.15 * (p % 3), 0.45,
						     0.75 - 0.12 * (p % 3));
			for (size_t i = 0; i < n; i++) {
				double v = panels[p].y[i];
				any |= !isnan(v);
				if (isnan(v) || v <= 0 ||
				    (panels[p].mark && panels[p].mark[i]) != (marked != 0))
					continue;
				/* a marked bar stays visible however many there are */
				double bh = v / top_v * h, gap = bar_w > 4 ? bar_w * 0.15 : 0;
				double w = marked && bar_w - gap < 2 ? 2 : bar_w - gap;
				cairo_rectangle(cr, LEFT + (i + 0.5) * bar_w - w / 2, base - bh, w, bh);
			}
			cairo_fill(cr);
		}
		cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
		if (!any)
			text(cr, LEFT + plot_w / 2, base - h / 2, "no data", 0.5);
		/* x ticks: at most about 20 labels, at multiples of 1, 2, 5, 10 ... */
		uint64_t every = 1;
		for (uint64_t mag = 1; n / every > 20; mag *= 10)
			every = n / mag <= 20 ? mag : n / (2 * mag) <= 20 ? 2 * mag
				: n / (5 * mag) <= 20 ? 5 * mag : 10 * mag;
		for (size_t i = (every - x0 % every) % every; i < n; i += every) {
			snprintf(label, sizeof(label), "%" PRIu64, (uint64_t)x0 + i);
			text(cr, LEFT + (i + 0.5) * bar_w, base + 13, label, 0.5);
		}
	}
	cairo_set_font_size(cr, 12);
	text(cr, LEFT + plot_w / 2, height - 10, xlabel, 0.5);
}

int chart__check_path(const char *path, char *err, size_t errlen)
{
	const char *ext = strrchr(path, '.');
	if (ext && (!strcmp(ext, ".png") || !strcmp(ext, ".svg")))
		return 0;
	snprintf(err, errlen, "%s: a chart is written as .png or .svg (by the file's extension)",
		 path);
	return -1;
}

int chart__write(const char *path, const char *title, const char *xlabel, uint32_t x0, size_t n,
		 const struct chart_panel *panels, unsigned npanels, char *err, size_t errlen)
{
	const char *ext = strrchr(path, '.');
	bool svg = ext && !strcmp(ext, ".svg"), png = ext && !strcmp(ext, ".png");
	double height = TOP + npanels * PANEL_H + BOTTOM;
	char tmp[4200];

	if (chart__check_path(path, err, errlen) != 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp%s", path, ext);
	cairo_surface_t *surface =
		svg ? cairo_svg_surface_create(tmp, WIDTH, height)
		    : cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)WIDTH, (int)height);
	cairo_t *cr = cairo_create(surface);
	draw(cr, height, title, xlabel, x0, n, panels, npanels);
	cairo_destroy(cr);
	cairo_status_t st = png ? cairo_surface_write_to_png(surface, tmp) : CAIRO_STATUS_SUCCESS;
	cairo_surface_finish(surface);
	if (st == CAIRO_STATUS_SUCCESS)
		st = cairo_surface_status(surface);
	cairo_surface_destroy(surface);
	if (st != CAIRO_STATUS_SUCCESS) {
		snprintf(err, errlen, "%s: %s", tmp, cairo_status_to_string(st));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Per-interval charts as PNG or SVG (cairo): panels stacked over one x
 * axis, one bar per interval. Used by `trace plot` and `ckpt plot`. */
#ifndef SIMUBOOST_CLI_CHART_H
#define SIMUBOOST_CLI_CHART_H

#include <stddef.h>
#include <stdint.h>

struct chart_panel {
	const char *title;          /* "instructions", "downtime (ms)" */
	const double *y;            /* one value per x; NaN: none */
	const unsigned char *mark;  /* NULL, or one flag per x: that bar in red */
};

/* 0 if path ends in .png or .svg; else -1 with err. For checking an -o
 * before the work that the chart is of. */
int chart__check_path(const char *path, char *err, size_t errlen);

/* Writes the chart to path (.png or .svg, by its extension) through a
 * temporary file renamed into place. x runs from x0 for n bars. */
int chart__write(const char *path, const char *title, const char *xlabel, uint32_t x0, size_t n,
		 const struct chart_panel *panels, unsigned npanels, char *err, size_t errlen);

#endif

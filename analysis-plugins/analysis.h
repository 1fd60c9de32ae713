/* simuboost's side of analysis plugins (simuboost-analysis.h): loading a
 * plugin, running states over intervals, keeping states on disk, merging
 * them and printing the report. The online host (the replay plugin inside
 * QEMU) and the offline one (`simuboost analyze`) both use it, which is
 * what makes their outputs the same. This is the only header other
 * modules may use. */
#ifndef SIMUBOOST_ANALYSIS_HOST_H
#define SIMUBOOST_ANALYSIS_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "simuboost-analysis.h"

/* ---- a loaded plugin ------------------------------------------------------ */

struct analysis;
/* Loads "path.so[,args]" and creates the plugin object with args. */
struct analysis *analysis__load(const char *spec, char *err, size_t errlen);
void analysis__close(struct analysis *a);
const char *analysis__name(const struct analysis *a);
const char *analysis__spec(const struct analysis *a);
/* Whether the plugin has a callback for records of this kind. */
bool analysis__wants(const struct analysis *a, enum trace_kind kind);
bool analysis__wants_memory(const struct analysis *a);

/* ---- a state over intervals [first, last) --------------------------------- */

struct analysis_state;
struct analysis_state *analysis_state__new(struct analysis *a, char *err, size_t errlen);
void analysis_state__free(struct analysis_state *s);
void analysis_state__begin(struct analysis_state *s, uint32_t interval);
/* Passes one record to the plugin's callback for its kind. */
void analysis_state__record(struct analysis_state *s, const struct trace_record *rec);
/* mem: the guest's memory at the interval's end, for plugins that want
 * it (NULL otherwise). */
int analysis_state__end(struct analysis_state *s, const struct sb_memory *mem, char *err,
			size_t errlen);
/* The intervals the state covers; first == last before any. */
void analysis_state__range(const struct analysis_state *s, uint32_t *first, uint32_t *last);

/* s = s followed by next (next's range must start where s's ends); next
 * is freed. */
int analysis_state__merge(struct analysis_state *s, struct analysis_state *next, char *err,
			  size_t errlen);
int analysis_state__report(const struct analysis_state *s, FILE *out, char *err, size_t errlen);

/* ---- states on disk --------------------------------------------------------- */

/* dir/NAME.FIRST-LAST.state */
void analysis__state_path(char *out, size_t outlen, const char *dir, const char *name,
			  uint32_t first, uint32_t last);
/* Saves s at its path in dir, atomically. */
int analysis_state__save(const struct analysis_state *s, const char *dir, char *err,
			 size_t errlen);
/* Loads the state of [first, last) that was saved in dir, checking its
 * version, length, checksum, plugin name and range. */
struct analysis_state *analysis_state__load(struct analysis *a, const char *dir, uint32_t first,
					    uint32_t last, char *err, size_t errlen);
/* The same from bytes in memory (the fuzzer's way in). */
struct analysis_state *analysis_state__parse(struct analysis *a, const void *buf, size_t len,
					     const char *name, char *err, size_t errlen);

/* Loads the states saved in dir for the ranges [bounds[i], bounds[i+1]),
 * i < n, merges them in order and writes the report to out_path
 * atomically ("-": stdout). */
int analysis__merge_report(struct analysis *a, const char *dir, const uint32_t *bounds,
			   size_t n, const char *out_path, char *err, size_t errlen);

#endif

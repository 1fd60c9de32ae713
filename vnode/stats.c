/* The end-of-run summary, for people and (as JSON) for machines. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "vnode.h"

const char *vnode_exit_reason__name(enum vnode_exit_reason r)
{
	static const char *const names[VNODE_EXIT__COUNT] = {
		[VNODE_EXIT_IO] = "io", [VNODE_EXIT_MMIO] = "mmio", [VNODE_EXIT_HLT] = "hlt",
		[VNODE_EXIT_IRQ_WINDOW] = "irq_window", [VNODE_EXIT_SIGNAL] = "signal",
		[VNODE_EXIT_SHUTDOWN] = "shutdown", [VNODE_EXIT_INTERNAL_ERROR] = "internal_error",
		[VNODE_EXIT_FAIL_ENTRY] = "fail_entry", [VNODE_EXIT_DEBUG] = "debug",
		[VNODE_EXIT_OTHER] = "other",
	};
	return (unsigned)r < VNODE_EXIT__COUNT ? names[r] : "?";
}

const char *vnode_io_device__name(enum vnode_io_device d)
{
	static const char *const names[VNODE_IO__COUNT] = {
		[VNODE_IO_PIC] = "pic", [VNODE_IO_PIT] = "pit", [VNODE_IO_UART] = "uart",
		[VNODE_IO_DEBUG_EXIT] = "debug_exit", [VNODE_IO_POST] = "post",
		[VNODE_IO_UNHANDLED] = "unhandled",
	};
	return (unsigned)d < VNODE_IO__COUNT ? names[d] : "?";
}

const char *vnode_outcome__name(enum vnode_outcome o)
{
	switch (o) {
	case VNODE_GUEST_EXIT: return "guest-exit";
	case VNODE_GUEST_HALTED: return "guest-halted";
	case VNODE_TIMEOUT: return "timeout";
	case VNODE_STOPPED: return "stopped";
	case VNODE_GUEST_FAULT: return "guest-fault";
	}
	return "?";
}

static uint64_t total_exits(const struct vnode_stats *s)
{
	uint64_t t = 0;
	for (int i = 0; i < VNODE_EXIT__COUNT; i++)
		t += s->exits[i];
	return t;
}

void vnode_stats__print(const struct vnode_stats *s, FILE *out)
{
	fprintf(out, "--- simuboost run summary ---\n");
	if (s->outcome == VNODE_GUEST_EXIT)
		fprintf(out, "guest exit status   %d\n", s->guest_status);
	else
		fprintf(out, "outcome             %s%s%s\n", vnode_outcome__name(s->outcome),
			s->fault[0] ? ": " : "", s->fault);
	fprintf(out, "wall time           %.3f s\n", s->wall_seconds);
	fprintf(out, "guest memory        %llu MiB, boot %s\n",
		(unsigned long long)(s->memory_bytes >> 20), s->boot_format ? s->boot_format : "?");
	uint64_t total = total_exits(s);
	fprintf(out, "exits               %llu (%.0f/s)\n", (unsigned long long)total,
		s->wall_seconds > 0 ? (double)total / s->wall_seconds : 0.0);
	for (int i = 0; i < VNODE_EXIT__COUNT; i++)
		if (s->exits[i])
			fprintf(out, "  %-17s %llu\n", vnode_exit_reason__name(i),
				(unsigned long long)s->exits[i]);
	fprintf(out, "port i/o by device\n");
	for (int i = 0; i < VNODE_IO__COUNT; i++)
		if (s->io[i])
			fprintf(out, "  %-17s %llu\n", vnode_io_device__name(i),
				(unsigned long long)s->io[i]);
	fprintf(out, "interrupts injected %llu\n", (unsigned long long)s->interrupts_injected);
	for (int v = 0; v < 256; v++)
		if (s->interrupts_by_vector[v])
			fprintf(out, "  vector 0x%02x       %llu\n", v,
				(unsigned long long)s->interrupts_by_vector[v]);
	if (s->timer_ticks_coalesced)
		fprintf(out, "timer ticks coalesced %llu\n",
			(unsigned long long)s->timer_ticks_coalesced);
	fprintf(out, "console output      %llu bytes\n", (unsigned long long)s->console_bytes);
}

char *vnode_stats__json(const struct vnode_stats *s)
{
	json_t *root = json_object();
	json_object_set_new(root, "outcome", json_string(vnode_outcome__name(s->outcome)));
	if (s->outcome == VNODE_GUEST_EXIT)
		json_object_set_new(root, "guest_status", json_integer(s->guest_status));
	else
		json_object_set_new(root, "guest_status", json_null());
	if (s->fault[0])
		json_object_set_new(root, "fault", json_string(s->fault));
	json_object_set_new(root, "wall_seconds", json_real(s->wall_seconds));
	json_object_set_new(root, "memory_bytes", json_integer((json_int_t)s->memory_bytes));
	json_object_set_new(root, "boot_format", json_string(s->boot_format ? s->boot_format : ""));
	json_t *exits = json_object();
	for (int i = 0; i < VNODE_EXIT__COUNT; i++)
		json_object_set_new(exits, vnode_exit_reason__name(i),
				    json_integer((json_int_t)s->exits[i]));
	json_object_set_new(root, "exits_total", json_integer((json_int_t)total_exits(s)));
	json_object_set_new(root, "exits", exits);
	json_t *io = json_object();
	for (int i = 0; i < VNODE_IO__COUNT; i++)
		json_object_set_new(io, vnode_io_device__name(i), json_integer((json_int_t)s->io[i]));
	json_object_set_new(root, "port_io", io);
	json_object_set_new(root, "interrupts_injected",
			    json_integer((json_int_t)s->interrupts_injected));
	json_t *vec = json_object();
	for (int v = 0; v < 256; v++) {
		if (!s->interrupts_by_vector[v])
			continue;
		char key[8];
		snprintf(key, sizeof(key), "0x%02x", v);
		json_object_set_new(vec, key, json_integer((json_int_t)s->interrupts_by_vector[v]));
	}
	json_object_set_new(root, "interrupts_by_vector", vec);
	json_object_set_new(root, "timer_ticks_coalesced",
			    json_integer((json_int_t)s->timer_ticks_coalesced));
	json_object_set_new(root, "console_bytes", json_integer((json_int_t)s->console_bytes));
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	return text;
}

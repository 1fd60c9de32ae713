/* Trace records as people read them. */
#include <inttypes.h>
#include <stdio.h>

#include "trace.h"

static const char *const event_names[TRACE_EV__COUNT] = {
	[TRACE_EV_INTERRUPT] = "interrupt", [TRACE_EV_EXCEPTION] = "exception",
	[TRACE_EV_PIO_READ] = "pio-read",   [TRACE_EV_PIO_WRITE] = "pio-write",
	[TRACE_EV_MMIO_READ] = "mmio-read", [TRACE_EV_MMIO_WRITE] = "mmio-write",
	[TRACE_EV_SYSCALL] = "syscall",     [TRACE_EV_SYSRET] = "sysret",
	[TRACE_EV_CR3] = "cr3",             [TRACE_EV_AD_BITS] = "ad-bits",
};

const char *trace_event_kind__name(enum trace_event_kind kind)
{
	if (kind < TRACE_EV_INTERRUPT || kind >= TRACE_EV__COUNT)
		return "unknown";
	return event_names[kind];
}

void trace_record__format(const struct trace_record *rec, char *out, size_t outlen)
{
	switch (rec->kind) {
	case TRACE_INSN:
		snprintf(out, outlen, "%12" PRIu64 " insn  pc 0x%" PRIx64 " size %u cpl %u",
			 rec->icount, rec->insn.pc, rec->insn.size, rec->insn.cpl);
		return;
	case TRACE_MEM:
		snprintf(out, outlen, "%12" PRIu64 " %s vaddr 0x%" PRIx64 " paddr 0x%" PRIx64
			 " size %u value 0x%" PRIx64, rec->icount, rec->mem.write ? "store" : "load ",
			 rec->mem.vaddr, rec->mem.paddr, rec->mem.size, rec->mem.value);
		return;
	case TRACE_EVENT: {
		const char *name = trace_event_kind__name(rec->event.kind);
		switch (rec->event.kind) {
		case TRACE_EV_INTERRUPT:
			snprintf(out, outlen, "%12" PRIu64 " %s vector 0x%" PRIx64 " at rip 0x%" PRIx64,
				 rec->icount, name, rec->event.a, rec->event.b);
			return;
		case TRACE_EV_EXCEPTION:
			snprintf(out, outlen, "%12" PRIu64 " %s vector 0x%" PRIx64 " at rip 0x%" PRIx64
				 " error 0x%" PRIx64, rec->icount, name, rec->event.a, rec->event.b,
				 rec->event.c);
			return;
		case TRACE_EV_PIO_READ: case TRACE_EV_PIO_WRITE:
		case TRACE_EV_MMIO_READ: case TRACE_EV_MMIO_WRITE:
			snprintf(out, outlen, "%12" PRIu64 " %s addr 0x%" PRIx64 " size %u value 0x%" PRIx64,
				 rec->icount, name, rec->event.a, rec->event.size, rec->event.c);
			return;
		case TRACE_EV_SYSCALL: {
			const uint64_t *g = rec->event.args;
			snprintf(out, outlen, "%12" PRIu64 " %s %" PRIu64 " (0x%" PRIx64 ", 0x%" PRIx64
				 ", 0x%" PRIx64 ", 0x%" PRIx64 ", 0x%" PRIx64 ", 0x%" PRIx64
				 ") rip 0x%" PRIx64 " cr3 0x%" PRIx64, rec->icount, name, rec->event.a,
				 g[0], g[1], g[2], g[3], g[4], g[5], rec->event.b, rec->event.c);
			return;
		}
		case TRACE_EV_SYSRET:
			snprintf(out, outlen, "%12" PRIu64 " %s = 0x%" PRIx64 " to rip 0x%" PRIx64
				 " cr3 0x%" PRIx64, rec->icount, name, rec->event.a, rec->event.b,
				 rec->event.c);
			return;
		case TRACE_EV_AD_BITS:
			snprintf(out, outlen, "%12" PRIu64 " %s paddr 0x%" PRIx64 ": 0x%" PRIx64
				 " -> 0x%" PRIx64, rec->icount, name, rec->event.a, rec->event.b,
				 rec->event.c);
			return;
		case TRACE_EV_CR3:
			snprintf(out, outlen, "%12" PRIu64 " %s 0x%" PRIx64 " (was 0x%" PRIx64 ")",
				 rec->icount, name, rec->event.a, rec->event.b);
			return;
		default:
			break;
		}
		snprintf(out, outlen, "%12" PRIu64 " event %d", rec->icount, (int)rec->event.kind);
		return;
	}
	}
	snprintf(out, outlen, "%12" PRIu64 " record kind %d", rec->icount, (int)rec->kind);
}

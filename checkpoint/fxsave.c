/* The x87/SSE part of a CPU state and the FXSAVE image (the legacy region
 * of an XSAVE area), which both KVM and the patched QEMU exchange. */
#include <string.h>

#include "checkpoint.h"

void ckpt_cpu_state__put_fxsave(const struct ckpt_cpu_state *c, uint8_t img[512])
{
	memcpy(img + CKPT_FX_FCW, &c->fcw, 2);
	memcpy(img + CKPT_FX_FSW, &c->fsw, 2);
	img[CKPT_FX_FTW] = c->ftw;
	memcpy(img + CKPT_FX_FOP, &c->fop, 2);
	memcpy(img + CKPT_FX_FIP, &c->fip, 8);
	memcpy(img + CKPT_FX_FDP, &c->fdp, 8);
	memcpy(img + CKPT_FX_MXCSR, &c->mxcsr, 4);
	memcpy(img + CKPT_FX_MXCSR_MASK, &c->mxcsr_mask, 4);
	memcpy(img + CKPT_FX_ST, c->st, sizeof(c->st));
	memcpy(img + CKPT_FX_XMM, c->xmm, sizeof(c->xmm));
}

void ckpt_cpu_state__get_fxsave(struct ckpt_cpu_state *c, const uint8_t img[512])
{
	memcpy(&c->fcw, img + CKPT_FX_FCW, 2);
	memcpy(&c->fsw, img + CKPT_FX_FSW, 2);
	c->ftw = img[CKPT_FX_FTW];
	memcpy(&c->fop, img + CKPT_FX_FOP, 2);
	memcpy(&c->fip, img + CKPT_FX_FIP, 8);
	memcpy(&c->fdp, img + CKPT_FX_FDP, 8);
	memcpy(&c->mxcsr, img + CKPT_FX_MXCSR, 4);
	memcpy(&c->mxcsr_mask, img + CKPT_FX_MXCSR_MASK, 4);
	memcpy(c->st, img + CKPT_FX_ST, sizeof(c->st));
	memcpy(c->xmm, img + CKPT_FX_XMM, sizeof(c->xmm));
}

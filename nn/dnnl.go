package nn

/*
#cgo CFLAGS: -O2 -fopenmp
#cgo LDFLAGS: -ldnnl -lgomp
#include <dnnl.h>
#include <stdlib.h>
#include <string.h>

extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);

// All functions below run on the single engine thread (see dnnlEngine in
// dnnl.go), so the engine, the stream and the arena need no locking.

static dnnl_engine_t rd_eng;
static dnnl_stream_t rd_strm;

static int rd_init(void) {
	dnnl_status_t s = dnnl_engine_create(&rd_eng, dnnl_cpu, 0);
	if (s != dnnl_success) return s;
	return dnnl_stream_create(&rd_strm, rd_eng, dnnl_stream_default_flags);
}

// The arena holds the blocked-layout copies of the arguments and the
// scratchpad: one growing buffer per argument slot, shared by all primitives.
#define RD_MAXARGS 6
#define RD_SLOT_WSCALED (RD_MAXARGS + 1)
#define RD_SLOT_MASK (RD_MAXARGS + 2)
#define RD_SLOTS (RD_MAXARGS + 3)
static void *rd_arena[RD_SLOTS];
static size_t rd_arena_size[RD_SLOTS];

static void *rd_buf(int slot, size_t size) {
	if (size <= rd_arena_size[slot]) return rd_arena[slot];
	free(rd_arena[slot]);
	size_t sz = (size + 4095) & ~(size_t)4095;
	rd_arena[slot] = aligned_alloc(4096, sz);
	rd_arena_size[slot] = rd_arena[slot] ? sz : 0;
	return rd_arena[slot];
}

static size_t rd_arena_bytes(void) {
	size_t n = 0;
	for (int i = 0; i < RD_SLOTS; i++) n += rd_arena_size[i];
	return n;
}

static void rd_arena_free(void) {
	for (int i = 0; i < RD_SLOTS; i++) {
		free(rd_arena[i]);
		rd_arena[i] = NULL;
		rd_arena_size[i] = 0;
	}
}

// rd_scale_rows returns w*scale[row] (rows of length per) in an arena buffer.
static float *rd_scale_rows(const float *w, const float *scale, int64_t rows, int64_t per) {
	float *o = rd_buf(RD_SLOT_WSCALED, (size_t)(rows * per) * sizeof(float));
	if (!o) return NULL;
	#pragma omp parallel for
	for (int64_t i = 0; i < rows; i++) {
		for (int64_t j = 0; j < per; j++) o[i * per + j] = w[i * per + j] * scale[i];
	}
	return o;
}

// rd_relu_mask returns dy*(y > 0) in an arena buffer.
static float *rd_relu_mask(const float *y, const float *dy, int64_t n) {
	float *o = rd_buf(RD_SLOT_MASK, (size_t)n * sizeof(float));
	if (!o) return NULL;
	#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++) o[i] = y[i] > 0 ? dy[i] : 0;
	return o;
}

// rd_mul_rows multiplies row i of w (length per) by scale[i] in place.
static void rd_mul_rows(float *w, const float *scale, int64_t rows, int64_t per) {
	#pragma omp parallel for
	for (int64_t i = 0; i < rows; i++) {
		for (int64_t j = 0; j < per; j++) w[i * per + j] *= scale[i];
	}
}

typedef struct {
	int arg;     // DNNL_ARG_*
	int output;  // 1 if the primitive writes it
	int reorder; // 1 if the primitive's layout differs from the user's
	dnnl_memory_desc_t user_md, prim_md;
	dnnl_primitive_t to_prim, from_prim;
	dnnl_memory_t user_mem, prim_mem;
	size_t prim_size;
} rd_arg;

typedef struct {
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t prim;
	int nargs;
	rd_arg a[RD_MAXARGS];
	size_t scratch_size;
	dnnl_memory_t scratch_mem;
} rd_prim;

static int rd_reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, rd_eng, to, rd_eng, NULL);
	if (s != dnnl_success) return s;
	s = dnnl_primitive_create(r, pd);
	dnnl_primitive_desc_destroy(pd);
	return s;
}

// rd_add_arg registers argument `arg` with the user layout user_md. sum says
// the output is pre-filled (sum post-op), so it needs a reorder both ways.
static int rd_add_arg(rd_prim *p, int arg, int output, int sum, const dnnl_memory_desc_t *user_md) {
	rd_arg *a = &p->a[p->nargs++];
	memset(a, 0, sizeof(*a));
	a->arg = arg;
	a->output = output;
	a->user_md = *user_md;
	a->prim_md = *dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
	a->reorder = !dnnl_memory_desc_equal(&a->user_md, &a->prim_md);
	dnnl_status_t s = dnnl_memory_create(&a->user_mem, &a->user_md, rd_eng, DNNL_MEMORY_NONE);
	if (s != dnnl_success) return s;
	if (!a->reorder) return dnnl_success;
	a->prim_size = dnnl_memory_desc_get_size(&a->prim_md);
	s = dnnl_memory_create(&a->prim_mem, &a->prim_md, rd_eng, DNNL_MEMORY_NONE);
	if (s != dnnl_success) return s;
	if (!output || sum) {
		s = rd_reorder(&a->to_prim, &a->user_md, &a->prim_md);
		if (s != dnnl_success) return s;
	}
	if (output) s = rd_reorder(&a->from_prim, &a->prim_md, &a->user_md);
	return s;
}

static void rd_destroy(rd_prim *p) {
	if (!p) return;
	for (int i = 0; i < p->nargs; i++) {
		rd_arg *a = &p->a[i];
		if (a->to_prim) dnnl_primitive_destroy(a->to_prim);
		if (a->from_prim) dnnl_primitive_destroy(a->from_prim);
		if (a->user_mem) dnnl_memory_destroy(a->user_mem);
		if (a->prim_mem) dnnl_memory_destroy(a->prim_mem);
	}
	if (p->scratch_mem) dnnl_memory_destroy(p->scratch_mem);
	if (p->prim) dnnl_primitive_destroy(p->prim);
	if (p->pd) dnnl_primitive_desc_destroy(p->pd);
	free(p);
}

// rd_weights_md_equal reports whether argument 1 (forward: the weights) of
// p is in the layout md.
static int rd_weights_md_equal(rd_prim *p, const dnnl_memory_desc_t *md) {
	return dnnl_memory_desc_equal(&p->a[1].prim_md, md);
}

static int rd_run2(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
	dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
	return dnnl_primitive_execute(r, rd_strm, 2, args);
}

// rd_pack copies the user buffer of argument i into a new buffer in the
// primitive's layout (NULL if the layouts agree or on failure). Free with free.
static void *rd_pack(rd_prim *p, int i, void *user) {
	rd_arg *a = &p->a[i];
	if (!a->reorder || a->output) return NULL;
	void *b = aligned_alloc(4096, (a->prim_size + 4095) & ~(size_t)4095);
	if (!b) return NULL;
	if (dnnl_memory_set_data_handle(a->user_mem, user) != dnnl_success ||
		dnnl_memory_set_data_handle(a->prim_mem, b) != dnnl_success ||
		rd_run2(a->to_prim, a->user_mem, a->prim_mem) != dnnl_success ||
		dnnl_stream_wait(rd_strm) != dnnl_success) {
		free(b);
		return NULL;
	}
	return b;
}

// rd_exec runs p on the user buffers ptrs (one per registered argument, in
// registration order). If residual is not NULL, the output argument with index
// sum_arg is first filled with it (for the sum post-op). If packed is not
// NULL, it holds argument packed_arg already in the primitive's layout.
static int rd_exec(rd_prim *p, void **ptrs, void *residual, int sum_arg, int packed_arg, void *packed) {
	dnnl_exec_arg_t args[RD_MAXARGS + 1];
	dnnl_status_t s;
	int n = 0;
	for (int i = 0; i < p->nargs; i++) {
		rd_arg *a = &p->a[i];
		dnnl_memory_t m = a->user_mem;
		if (packed && i == packed_arg) {
			if ((s = dnnl_memory_set_data_handle(a->prim_mem, packed)) != dnnl_success) return s;
			args[n].arg = a->arg;
			args[n].memory = a->prim_mem;
			n++;
			continue;
		}
		if (a->reorder) {
			void *b = rd_buf(i, a->prim_size);
			if (!b) return dnnl_out_of_memory;
			if ((s = dnnl_memory_set_data_handle(a->prim_mem, b)) != dnnl_success) return s;
			m = a->prim_mem;
		}
		if (residual && i == sum_arg) {
			if (a->reorder) {
				if ((s = dnnl_memory_set_data_handle(a->user_mem, residual)) != dnnl_success) return s;
				if ((s = rd_run2(a->to_prim, a->user_mem, a->prim_mem)) != dnnl_success) return s;
			} else if (residual != ptrs[i]) {
				memcpy(ptrs[i], residual, dnnl_memory_desc_get_size(&a->user_md));
			}
		}
		if ((s = dnnl_memory_set_data_handle(a->user_mem, ptrs[i])) != dnnl_success) return s;
		if (a->reorder && !a->output) {
			if ((s = rd_run2(a->to_prim, a->user_mem, a->prim_mem)) != dnnl_success) return s;
		}
		args[n].arg = a->arg;
		args[n].memory = m;
		n++;
	}
	if (p->scratch_size > 0) {
		void *b = rd_buf(RD_MAXARGS, p->scratch_size);
		if (!b) return dnnl_out_of_memory;
		if ((s = dnnl_memory_set_data_handle(p->scratch_mem, b)) != dnnl_success) return s;
		args[n].arg = DNNL_ARG_SCRATCHPAD;
		args[n].memory = p->scratch_mem;
		n++;
	}
	if ((s = dnnl_primitive_execute(p->prim, rd_strm, n, args)) != dnnl_success) return s;
	for (int i = 0; i < p->nargs; i++) {
		rd_arg *a = &p->a[i];
		if (a->reorder && a->output) {
			if ((s = rd_run2(a->from_prim, a->prim_mem, a->user_mem)) != dnnl_success) return s;
		}
	}
	return dnnl_stream_wait(rd_strm);
}

static int rd_exec4(rd_prim *p, void *a0, void *a1, void *a2, void *a3, void *residual, int sum_arg, int packed_arg, void *packed) {
	void *ptrs[4] = {a0, a1, a2, a3};
	return rd_exec(p, ptrs, residual, sum_arg, packed_arg, packed);
}

static int rd_finish(rd_prim *p) {
	dnnl_status_t s = dnnl_primitive_create(&p->prim, p->pd);
	if (s != dnnl_success) return s;
	const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
	p->scratch_size = smd ? dnnl_memory_desc_get_size(smd) : 0;
	if (p->scratch_size > 0) return dnnl_memory_create(&p->scratch_mem, smd, rd_eng, DNNL_MEMORY_NONE);
	return dnnl_success;
}

static const char *rd_impl(rd_prim *p) {
	const char *s = NULL;
	dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &s);
	return s ? s : "?";
}

enum { RD_FWD = 0, RD_BWD_DATA = 1, RD_BWD_WEIGHTS = 2, RD_REORDER = 3, RD_MAXPOOL = 4 };

typedef struct {
	int kind;
	int64_t x[4], w[4], y[4];
	int64_t groups;
	int64_t stride[2], dil[2], pad[2];
	int bias, relu, sum, bf16, inference;
	int blk_in, blk_out; // x (resp. y) is nChw<blk>c instead of nchw
	int blk;             // channel block: 8 or 16
} rd_conv_params;

static dnnl_format_tag_t rd_tag(int blocked, int blk) {
	if (!blocked) return dnnl_nchw;
	return blk == 8 ? dnnl_nChw8c : dnnl_nChw16c;
}

// rd_reorder_create builds a layout conversion of an x-shaped tensor from
// rd_tag(blk_in) to rd_tag(blk_out). Arguments: from, to.
static int rd_reorder_create(rd_prim **out, const rd_conv_params *c) {
	dnnl_status_t s;
	dnnl_memory_desc_t from, to;
	dnnl_dims_t xd = {0};
	for (int i = 0; i < 4; i++) xd[i] = c->x[i];
	if ((s = dnnl_memory_desc_init_by_tag(&from, 4, xd, dnnl_f32, rd_tag(c->blk_in, c->blk)))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&to, 4, xd, dnnl_f32, rd_tag(c->blk_out, c->blk)))) return s;
	rd_prim *p = calloc(1, sizeof(rd_prim));
	s = dnnl_reorder_primitive_desc_create(&p->pd, &from, rd_eng, &to, rd_eng, NULL);
	if (!s) s = rd_add_arg(p, DNNL_ARG_FROM, 0, 0, &from);
	if (!s) s = rd_add_arg(p, DNNL_ARG_TO, 1, 0, &to);
	if (!s) s = rd_finish(p);
	if (s) { rd_destroy(p); return s; }
	*out = p;
	return dnnl_success;
}

// rd_maxpool_create builds an inference max pooling from x to y, kernel
// (w[2], w[3]), padded with -inf. Arguments: src, dst.
static int rd_maxpool_create(rd_prim **out, const rd_conv_params *c) {
	dnnl_status_t s;
	dnnl_memory_desc_t ux, uy, py;
	dnnl_dims_t xd = {0}, yd = {0}, k = {0}, stride = {0}, dil = {0}, padl = {0}, padr = {0};
	for (int i = 0; i < 4; i++) { xd[i] = c->x[i]; yd[i] = c->y[i]; }
	for (int i = 0; i < 2; i++) {
		k[i] = c->w[2 + i];
		stride[i] = c->stride[i];
		padl[i] = c->pad[i];
		padr[i] = (c->y[2 + i] - 1) * c->stride[i] + k[i] - c->x[2 + i] - c->pad[i];
	}
	if ((s = dnnl_memory_desc_init_by_tag(&ux, 4, xd, dnnl_f32, rd_tag(c->blk_in, c->blk)))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&uy, 4, yd, dnnl_f32, rd_tag(c->blk_out, c->blk)))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&py, 4, yd, dnnl_f32, dnnl_format_tag_any))) return s;
	dnnl_pooling_v2_desc_t pdesc;
	if ((s = dnnl_pooling_v2_forward_desc_init(&pdesc, dnnl_forward_inference, dnnl_pooling_max, &ux, &py,
			stride, k, dil, padl, padr))) return s;
	dnnl_primitive_attr_t attr;
	if ((s = dnnl_primitive_attr_create(&attr))) return s;
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	rd_prim *p = calloc(1, sizeof(rd_prim));
	s = dnnl_primitive_desc_create(&p->pd, &pdesc, attr, rd_eng, NULL);
	dnnl_primitive_attr_destroy(attr);
	if (!s) s = rd_add_arg(p, DNNL_ARG_SRC, 0, 0, &ux);
	if (!s) s = rd_add_arg(p, DNNL_ARG_DST, 1, 0, &uy);
	if (!s) s = rd_finish(p);
	if (s) { rd_destroy(p); return s; }
	*out = p;
	return dnnl_success;
}

static void rd_wdims(const rd_conv_params *c, int *nd, dnnl_dim_t *d) {
	if (c->groups > 1) {
		*nd = 5;
		d[0] = c->groups; d[1] = c->w[0] / c->groups;
		d[2] = c->w[1]; d[3] = c->w[2]; d[4] = c->w[3];
	} else {
		*nd = 4;
		for (int i = 0; i < 4; i++) d[i] = c->w[i];
	}
}

// rd_conv_create builds a convolution primitive. Arguments are registered
// in this order: forward: src, weights, [bias], dst; backward data:
// weights, diff_dst, diff_src; backward weights: src, diff_dst, diff_weights.
static int rd_conv_create(rd_prim **out, const rd_conv_params *c) {
	if (c->kind == RD_REORDER) return rd_reorder_create(out, c);
	if (c->kind == RD_MAXPOOL) return rd_maxpool_create(out, c);
	dnnl_status_t s;
	dnnl_memory_desc_t ux, uw, ub, uy, px, pw, pb, py;
	dnnl_dims_t xd = {0}, yd = {0}, wd = {0}, bd = {0}, stride = {0}, dil = {0}, padl = {0}, padr = {0};
	int wnd;
	rd_wdims(c, &wnd, wd);
	for (int i = 0; i < 4; i++) { xd[i] = c->x[i]; yd[i] = c->y[i]; }
	bd[0] = c->w[0];
	for (int i = 0; i < 2; i++) {
		stride[i] = c->stride[i];
		dil[i] = c->dil[i];
		padl[i] = c->pad[i];
		// oneDNN wants padding_r consistent with the output size.
		int64_t ext = (c->w[2 + i] - 1) * (c->dil[i] + 1) + 1;
		padr[i] = (c->y[2 + i] - 1) * c->stride[i] + ext - c->x[2 + i] - c->pad[i];
	}
	// Data types inside the primitive. f32: all f32. bf16 forward: src and
	// weights bf16, dst f32. bf16 backward data: weights and diff_dst bf16,
	// diff_src f32; bf16 backward weights: src and diff_dst bf16,
	// diff_weights f32 (accumulated in f32). The user buffers stay f32; the
	// argument reorders convert.
	dnnl_data_type_t lt = c->bf16 ? dnnl_bf16 : dnnl_f32;
	dnnl_data_type_t xt = lt, wt = lt, yt = dnnl_f32;
	if (c->bf16 && c->kind == RD_BWD_DATA) { xt = dnnl_f32; yt = dnnl_bf16; }
	if (c->bf16 && c->kind == RD_BWD_WEIGHTS) { wt = dnnl_f32; yt = dnnl_bf16; }
	if ((s = dnnl_memory_desc_init_by_tag(&ux, 4, xd, dnnl_f32, rd_tag(c->blk_in, c->blk)))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&uy, 4, yd, dnnl_f32, rd_tag(c->blk_out, c->blk)))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&uw, wnd, wd, dnnl_f32, wnd == 5 ? dnnl_goihw : dnnl_oihw))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&ub, 1, bd, dnnl_f32, dnnl_x))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&px, 4, xd, xt, dnnl_format_tag_any))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&py, 4, yd, yt, dnnl_format_tag_any))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&pw, wnd, wd, wt, dnnl_format_tag_any))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&pb, 1, bd, dnnl_f32, dnnl_x))) return s;
	// The forward hint of a bf16 backward primitive: src, weights and dst
	// bf16, as the backward sees them.
	dnnl_memory_desc_t hx, hw, hy;
	if ((s = dnnl_memory_desc_init_by_tag(&hx, 4, xd, lt, dnnl_format_tag_any))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&hw, wnd, wd, lt, dnnl_format_tag_any))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&hy, 4, yd, c->bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any))) return s;

	dnnl_convolution_desc_t fd, bd_;
	if (c->kind == RD_FWD) {
		dnnl_prop_kind_t prop = c->inference ? dnnl_forward_inference : dnnl_forward_training;
		s = dnnl_dilated_convolution_forward_desc_init(&fd, prop, dnnl_convolution_direct, &px, &pw,
			c->bias ? &pb : NULL, &py, stride, dil, padl, padr);
	} else {
		s = dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &hx, &hw,
			NULL, &hy, stride, dil, padl, padr);
	}
	if (s) return s;

	dnnl_primitive_attr_t attr;
	if ((s = dnnl_primitive_attr_create(&attr))) return s;
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	if (c->kind == RD_FWD && (c->relu || c->sum)) {
		dnnl_post_ops_t po;
		dnnl_post_ops_create(&po);
		if (c->sum) dnnl_post_ops_append_sum(po, 1.0f);
		if (c->relu) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
		s = dnnl_primitive_attr_set_post_ops(attr, po);
		dnnl_post_ops_destroy(po);
		if (s) { dnnl_primitive_attr_destroy(attr); return s; }
	}

	rd_prim *p = calloc(1, sizeof(rd_prim));
	if (c->kind == RD_FWD) {
		s = dnnl_primitive_desc_create(&p->pd, &fd, attr, rd_eng, NULL);
		if (!s) s = rd_add_arg(p, DNNL_ARG_SRC, 0, 0, &ux);
		if (!s) s = rd_add_arg(p, DNNL_ARG_WEIGHTS, 0, 0, &uw);
		if (!s && c->bias) s = rd_add_arg(p, DNNL_ARG_BIAS, 0, 0, &ub);
		if (!s) s = rd_add_arg(p, DNNL_ARG_DST, 1, c->sum, &uy);
	} else {
		dnnl_primitive_desc_t hint;
		s = dnnl_primitive_desc_create(&hint, &fd, NULL, rd_eng, NULL);
		if (s) { dnnl_primitive_attr_destroy(attr); free(p); return s; }
		if (c->kind == RD_BWD_DATA) {
			s = dnnl_dilated_convolution_backward_data_desc_init(&bd_, dnnl_convolution_direct, &px, &pw, &py,
				stride, dil, padl, padr);
			if (!s) s = dnnl_primitive_desc_create(&p->pd, &bd_, attr, rd_eng, hint);
			if (!s) s = rd_add_arg(p, DNNL_ARG_WEIGHTS, 0, 0, &uw);
			if (!s) s = rd_add_arg(p, DNNL_ARG_DIFF_DST, 0, 0, &uy);
			if (!s) s = rd_add_arg(p, DNNL_ARG_DIFF_SRC, 1, 0, &ux);
		} else {
			s = dnnl_dilated_convolution_backward_weights_desc_init(&bd_, dnnl_convolution_direct, &px, &pw, NULL, &py,
				stride, dil, padl, padr);
			if (!s) s = dnnl_primitive_desc_create(&p->pd, &bd_, attr, rd_eng, hint);
			if (!s) s = rd_add_arg(p, DNNL_ARG_SRC, 0, 0, &ux);
			if (!s) s = rd_add_arg(p, DNNL_ARG_DIFF_DST, 0, 0, &uy);
			if (!s) s = rd_add_arg(p, DNNL_ARG_DIFF_WEIGHTS, 1, 0, &uw);
		}
		dnnl_primitive_desc_destroy(hint);
	}
	dnnl_primitive_attr_destroy(attr);
	if (!s) s = rd_finish(p);
	if (s) { rd_destroy(p); return s; }
	*out = p;
	return dnnl_success;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// dnnlEngine runs every oneDNN call on one goroutine locked to its OS thread.
// The Debian oneDNN uses OpenMP, which keeps a thread team per calling OS
// thread; calling it from gorgonia's goroutines would create a team per
// thread and oversubscribe the cores. Serialising the calls also makes the
// shared arena and the cached primitives (which own scratch state) safe.
type dnnlEngine struct {
	jobs    chan func()
	threads int // current OpenMP team size; touched only on the engine thread

	// prims caches primitives by their parameters; packed caches constant
	// weights in a primitive's layout (ConvOpts.ConstWeights). Both are
	// touched only on the engine thread.
	prims  map[C.rd_conv_params]*C.rd_prim
	packed map[convPackKey]convPacked
}

// convPacked is constant weights in a primitive's layout (C memory, freed
// by ReleaseConvBuffers). It keeps the user's weights and scale reachable:
// the cache is keyed by their addresses, so the garbage collector must not
// give that memory to another tensor while the entry exists.
type convPacked struct {
	data     unsafe.Pointer
	md       C.dnnl_memory_desc_t // the layout data is in
	w, scale []float32
}

// convPackKey identifies constant weights: the addresses of the user's
// weights and scale, and the data type they are packed to. The input's
// batch and spatial size are not part of it: primitives for other inputs
// (the RoI heads see a different number of RoIs per image) share one copy
// when they want the same layout (convPacked.md), and replace it when not.
type convPackKey struct {
	w, scale uintptr
	bf16     C.int
}

var (
	dnnlOnce sync.Once
	dnnlEng  *dnnlEngine
	dnnlErr  error
)

// dnnlGet starts the engine thread on first use.
func dnnlGet() (*dnnlEngine, error) {
	dnnlOnce.Do(func() {
		e := &dnnlEngine{jobs: make(chan func()), prims: map[C.rd_conv_params]*C.rd_prim{},
			packed: map[convPackKey]convPacked{}}
		ready := make(chan error)
		go e.loop(ready)
		if err := <-ready; err != nil {
			dnnlErr = err
			return
		}
		dnnlEng = e
	})
	return dnnlEng, dnnlErr
}

func (e *dnnlEngine) loop(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread keeps its OpenMP team
	if s := C.rd_init(); s != 0 {
		ready <- fmt.Errorf("nn: oneDNN engine: %s", dnnlStatus(s))
		return
	}
	ready <- nil
	for f := range e.jobs {
		f()
	}
}

// do runs f on the engine thread and waits for it.
func (e *dnnlEngine) do(f func()) {
	done := make(chan struct{})
	e.jobs <- func() {
		defer close(done)
		if n := Threads(); n != e.threads {
			C.omp_set_num_threads(C.int(n))
			e.threads = n
		}
		f()
	}
	<-done
}

func dnnlStatus(s C.int) string {
	switch s {
	case C.dnnl_out_of_memory:
		return "out of memory"
	case C.dnnl_invalid_arguments:
		return "invalid arguments"
	case C.dnnl_unimplemented:
		return "unimplemented"
	case C.dnnl_runtime_error:
		return "runtime error"
	}
	return fmt.Sprintf("status %d", int(s))
}

// Kinds of convolution primitives.
const (
	dnnlFwd        = C.RD_FWD
	dnnlBwdData    = C.RD_BWD_DATA
	dnnlBwdWeights = C.RD_BWD_WEIGHTS
	dnnlReorder    = C.RD_REORDER // x layout BlockedIn -> BlockedOut; bufs: from, to
	dnnlMaxPool    = C.RD_MAXPOOL // inference max pooling x -> y, kernel W[2:4]; bufs: x, y
)

// dnnlConv describes one convolution primitive.
type dnnlConv struct {
	kind            int
	geom            convGeom
	bias, relu, sum bool
}

func convBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (d dnnlConv) params() C.rd_conv_params {
	g := d.geom
	var c C.rd_conv_params
	c.kind = C.int(d.kind)
	for i := 0; i < 4; i++ {
		c.x[i] = C.int64_t(g.X[i])
		c.w[i] = C.int64_t(g.W[i])
		c.y[i] = C.int64_t(g.Y[i])
	}
	c.groups = C.int64_t(g.Groups)
	for i := 0; i < 2; i++ {
		c.stride[i] = C.int64_t(g.Stride[i])
		c.dil[i] = C.int64_t(g.Dil[i] - 1) // oneDNN counts dilation from 0
		c.pad[i] = C.int64_t(g.Pad[i])
	}
	c.bias = convBool(d.bias)
	c.relu = convBool(d.relu)
	c.sum = convBool(d.sum)
	c.bf16 = convBool(g.BF16 && (d.kind == dnnlFwd || d.kind == dnnlBwdData || d.kind == dnnlBwdWeights))
	c.inference = convBool(g.BF16 && d.kind == dnnlFwd)
	c.blk_in = convBool(g.BlockedIn)
	c.blk_out = convBool(g.BlockedOut)
	c.blk = C.int(g.Block)
	return c
}

// prim returns the cached primitive for c, creating it if needed.
// Must run on the engine thread.
func (e *dnnlEngine) prim(c C.rd_conv_params) (*C.rd_prim, error) {
	if p, ok := e.prims[c]; ok {
		return p, nil
	}
	var p *C.rd_prim
	if s := C.rd_conv_create(&p, &c); s != 0 {
		return nil, fmt.Errorf("oneDNN convolution primitive: %s", dnnlStatus(s))
	}
	e.prims[c] = p
	return p, nil
}

// convExtra holds the optional inputs of dnnlConv.run.
type convExtra struct {
	// residual is added through the sum post-op (forward).
	residual []float32
	// scale scales the weights per output channel: the primitive uses
	// w*scale[o] (forward, backward data), or the weight gradient is
	// multiplied by scale[o] (backward weights).
	scale []float32
	// reluY, in the backward kinds, is the forward output of a fused ReLU:
	// dy (bufs[1]) is replaced by dy*(reluY > 0).
	reluY []float32
	// constWeights (forward only): the weights (and scale) are constant and
	// stay alive: keep them in the primitive's layout after the first call.
	constWeights bool
}

// run executes the convolution on bufs, in the argument order of
// rd_conv_create (forward: x, w, [b], y; backward data: w, dy, dx; backward
// weights: x, dy, dw; reorder: from, to; max pooling: x, y).
func (d dnnlConv) run(bufs [][]float32, ex convExtra) error {
	e, err := dnnlGet()
	if err != nil {
		return err
	}
	c := d.params()
	rows, per := C.int64_t(d.geom.W[0]), C.int64_t(d.geom.W[1]*d.geom.W[2]*d.geom.W[3])
	e.do(func() {
		p, perr := e.prim(c)
		if perr != nil {
			err = perr
			return
		}
		var ptrs [4]unsafe.Pointer
		for i, b := range bufs {
			ptrs[i] = unsafe.Pointer(&b[0])
		}
		var packed unsafe.Pointer
		var key convPackKey
		if ex.constWeights && d.kind == dnnlFwd {
			key = convPackKey{w: uintptr(ptrs[1]), bf16: c.bf16}
			if ex.scale != nil {
				key.scale = uintptr(unsafe.Pointer(&ex.scale[0]))
			}
			if old, ok := e.packed[key]; ok {
				if C.rd_weights_md_equal(p, &old.md) != 0 {
					packed = old.data
				} else { // another layout: repack below
					C.free(old.data)
					delete(e.packed, key)
				}
			}
		}
		if ex.scale != nil && d.kind != dnnlBwdWeights && packed == nil {
			wi := 1
			if d.kind == dnnlBwdData {
				wi = 0
			}
			ws := C.rd_scale_rows((*C.float)(ptrs[wi]), (*C.float)(unsafe.Pointer(&ex.scale[0])), rows, per)
			if ws == nil {
				err = fmt.Errorf("oneDNN convolution: out of memory scaling weights")
				return
			}
			ptrs[wi] = unsafe.Pointer(ws)
		}
		if ex.reluY != nil && (d.kind == dnnlBwdData || d.kind == dnnlBwdWeights) {
			m := C.rd_relu_mask((*C.float)(unsafe.Pointer(&ex.reluY[0])), (*C.float)(ptrs[1]), C.int64_t(len(bufs[1])))
			if m == nil {
				err = fmt.Errorf("oneDNN convolution: out of memory masking the gradient")
				return
			}
			ptrs[1] = unsafe.Pointer(m)
		}
		var res unsafe.Pointer
		if ex.residual != nil {
			res = unsafe.Pointer(&ex.residual[0])
		}
		if ex.constWeights && d.kind == dnnlFwd && packed == nil {
			// First call: pack the (scaled) weights once. If the layouts
			// agree there is nothing to pack and the weights are used as is.
			if packed = C.rd_pack(p, 1, ptrs[1]); packed != nil {
				e.packed[key] = convPacked{data: packed, md: p.a[1].prim_md, w: bufs[1], scale: ex.scale}
			}
		}
		if s := C.rd_exec4(p, ptrs[0], ptrs[1], ptrs[2], ptrs[3], res, C.int(len(bufs)-1), 1, packed); s != 0 {
			err = fmt.Errorf("oneDNN convolution: %s", dnnlStatus(s))
			return
		}
		if ex.scale != nil && d.kind == dnnlBwdWeights {
			C.rd_mul_rows((*C.float)(ptrs[2]), (*C.float)(unsafe.Pointer(&ex.scale[0])), rows, per)
		}
		runtime.KeepAlive(bufs)
		runtime.KeepAlive(ex)
	})
	return err
}

// impl names the oneDNN kernel chosen for d (for benchmarks and reports).
func (d dnnlConv) impl() (string, error) {
	e, err := dnnlGet()
	if err != nil {
		return "", err
	}
	var name string
	c := d.params()
	e.do(func() {
		p, perr := e.prim(c)
		if perr != nil {
			err = perr
			return
		}
		name = C.GoString(C.rd_impl(p))
	})
	return name, err
}

// dnnlArenaBytes reports the bytes held by the engine's shared buffers.
func dnnlArenaBytes() int {
	e, err := dnnlGet()
	if err != nil {
		return 0
	}
	var n int
	e.do(func() { n = int(C.rd_arena_bytes()) })
	return n
}

// ReleaseConvBuffers frees the convolution engine's shared scratch buffers
// (they regrow on use) and the weights kept by ConvOpts.ConstWeights. Call it
// when the graphs that used ConstWeights are gone, or to give memory back
// after a large input.
func ReleaseConvBuffers() {
	e, err := dnnlGet()
	if err != nil {
		return
	}
	e.do(func() {
		C.rd_arena_free()
		for k, p := range e.packed {
			C.free(p.data)
			delete(e.packed, k)
		}
	})
}

// convPackedCount reports how many constant weight tensors are kept.
func convPackedCount() int {
	e, err := dnnlGet()
	if err != nil {
		return 0
	}
	var n int
	e.do(func() { n = len(e.packed) })
	return n
}

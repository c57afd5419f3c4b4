// oneDNN 2-D convolution for XLA:CPU, as three XLA FFI handlers (forward, input gradient, weight gradient).
//
// Layouts are JAX's: activations NHWC, kernels HWIO ([kh, kw, Cin, Cout], flax's nn.Conv kernel), float32.
// Every handler takes the strides and the explicit paddings as int64 attributes:
//   sh, sw   - strides;
//   pt, pb   - top / bottom padding;  pl, pr - left / right padding (all >= 0).
//
//   ltjax_onednn_conv_fwd        (x [N,H,W,C],   w [kh,kw,C,O]) -> y  [N,Ho,Wo,O]
//       y[n,i,j,o] = sum_{a,b,c} xpad[n, i*sh+a, j*sw+b, c] * w[a,b,c,o]
//   ltjax_onednn_conv_bwd_data   (g [N,Ho,Wo,O], w [kh,kw,C,O]) -> dx [N,H,W,C]     (dL/dx for dL/dy = g)
//   ltjax_onednn_conv_bwd_weights(x [N,H,W,C],   g [N,Ho,Wo,O]) -> dw [kh,kw,C,O]   (dL/dw)
//
// Activations stay in NHWC (no reorder of the large tensors); the kernel is reordered into the layout oneDNN's
// primitive prefers (format_tag::any) and the weight gradient back into HWIO. Primitives are created once per
// shape and cached; execution uses a per-thread user scratchpad, so a cached primitive may run concurrently on
// several XLA threads (one process driving several CPU devices).
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using Dt = dnnl::memory::data_type;

namespace {

enum Op : int64_t { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

// The problem of one convolution: op, N, H, W, C, O, kh, kw, Ho, Wo, sh, sw, pt, pb, pl, pr.
using Key = std::array<int64_t, 16>;

struct Plan {
  dnnl::primitive prim;
  memory::desc act_in, act_out;  // the NHWC tensors the primitive reads / writes (op-dependent roles)
  memory::desc user_w, prim_w;   // HWIO kernel, and the primitive's own kernel layout
  bool reorder = false;          // prim_w != user_w
  dnnl::reorder w_reorder;       // HWIO -> prim_w (fwd, bwd data) or prim_w -> HWIO (bwd weights)
  memory::desc scratch;
  std::string impl;              // oneDNN's implementation name, for benchmarks and tests
};

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

std::shared_ptr<Plan> MakePlan(const Key& k) {
  const int64_t n = k[1], h = k[2], w = k[3], c = k[4], o = k[5], kh = k[6], kw = k[7], ho = k[8], wo = k[9];
  dnnl::engine& eng = Engine();
  memory::desc src({n, c, h, w}, Dt::f32, Tag::nhwc);
  memory::desc dst({n, o, ho, wo}, Dt::f32, Tag::nhwc);
  memory::desc w_any({o, c, kh, kw}, Dt::f32, Tag::any);
  memory::dims strides = {k[10], k[11]}, pad_l = {k[12], k[14]}, pad_r = {k[13], k[15]};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto plan = std::make_shared<Plan>();
  plan->user_w = memory::desc({o, c, kh, kw}, Dt::f32, Tag::hwio);
  dnnl::convolution_forward::primitive_desc fwd(eng, dnnl::prop_kind::forward_training,
                                                dnnl::algorithm::convolution_direct, src, w_any, dst, strides,
                                                pad_l, pad_r, attr);
  if (k[0] == kFwd) {
    plan->prim = dnnl::convolution_forward(fwd);
    plan->act_in = src, plan->act_out = dst, plan->prim_w = fwd.weights_desc();
    plan->scratch = fwd.scratchpad_desc(), plan->impl = fwd.impl_info_str();
  } else if (k[0] == kBwdData) {
    dnnl::convolution_backward_data::primitive_desc pd(eng, dnnl::algorithm::convolution_direct, src, w_any, dst,
                                                       strides, pad_l, pad_r, fwd, attr);
    plan->prim = dnnl::convolution_backward_data(pd);
    plan->act_in = dst, plan->act_out = src, plan->prim_w = pd.weights_desc();
    plan->scratch = pd.scratchpad_desc(), plan->impl = pd.impl_info_str();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(eng, dnnl::algorithm::convolution_direct, src, w_any,
                                                          dst, strides, pad_l, pad_r, fwd, attr);
    plan->prim = dnnl::convolution_backward_weights(pd);
    plan->act_in = src, plan->act_out = dst, plan->prim_w = pd.diff_weights_desc();
    plan->scratch = pd.scratchpad_desc(), plan->impl = pd.impl_info_str();
  }
  plan->reorder = plan->prim_w != plan->user_w;
  if (plan->reorder) {
    plan->w_reorder = k[0] == kBwdWeights ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, plan->prim_w, eng,
                                                                                          plan->user_w))
                                          : dnnl::reorder(dnnl::reorder::primitive_desc(eng, plan->user_w, eng,
                                                                                          plan->prim_w));
  }
  return plan;
}

std::shared_ptr<Plan> GetPlan(const Key& k) {
  static std::mutex mu;
  static auto* cache = new std::map<Key, std::shared_ptr<Plan>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(k);
  if (it != cache->end()) return it->second;
  auto plan = MakePlan(k);
  cache->emplace(k, plan);
  return plan;
}

// Checks the shapes of one call and builds its key; on error returns the message.
std::string MakeKey(Op op, ffi::Span<const int64_t> x, ffi::Span<const int64_t> wt, ffi::Span<const int64_t> y,
                    int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, Key* key) {
  if (x.size() != 4 || wt.size() != 4 || y.size() != 4) return "expected rank-4 NHWC / HWIO operands";
  if (sh < 1 || sw < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0) return "strides must be >= 1 and paddings >= 0";
  const int64_t n = x[0], h = x[1], w = x[2], c = x[3], kh = wt[0], kw = wt[1], o = wt[3];
  if (wt[2] != c) return "kernel input channels differ from the input's channels";
  const int64_t ho = (h + pt + pb - kh) / sh + 1, wo = (w + pl + pr - kw) / sw + 1;
  if (y[0] != n || y[1] != ho || y[2] != wo || y[3] != o) return "output shape does not match the convolution";
  *key = {op, n, h, w, c, o, kh, kw, ho, wo, sh, sw, pt, pb, pl, pr};
  return "";
}

// Per-thread scratch memory, grown as needed and kept: a fresh multi-MB allocation per call would be mmap'ed and
// page-faulted anew on every convolution (glibc serves large blocks by mmap).
struct ThreadBuffers {
  std::unique_ptr<char[]> scratch, kernel;
  size_t scratch_size = 0, kernel_size = 0;
};

void* Grow(std::unique_ptr<char[]>* buf, size_t* size, size_t need) {
  if (need > *size) {
    buf->reset(new char[need + 64]);
    *size = need;
  }
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf->get());
  return reinterpret_cast<void*>((p + 63) & ~uintptr_t{63});  // 64-byte aligned
}

ffi::Error Run(Op op, ffi::Span<const int64_t> x_dims, ffi::Span<const int64_t> w_dims,
               ffi::Span<const int64_t> y_dims, int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl,
               int64_t pr, void* act_in, void* act_out, void* kernel) {
  Key key;
  std::string err = MakeKey(op, x_dims, w_dims, y_dims, sh, sw, pt, pb, pl, pr, &key);
  if (!err.empty()) return ffi::Error::InvalidArgument("ltjax oneDNN conv: " + err);
  try {
    std::shared_ptr<Plan> plan = GetPlan(key);
    dnnl::engine& eng = Engine();
    dnnl::stream stream(eng);
    memory in(plan->act_in, eng, act_in), out(plan->act_out, eng, act_out);
    memory user_w(plan->user_w, eng, kernel);
    thread_local ThreadBuffers buffers;
    memory prim_w = plan->reorder ? memory(plan->prim_w, eng, Grow(&buffers.kernel, &buffers.kernel_size,
                                                                    plan->prim_w.get_size()))
                                  : user_w;
    memory scratch(plan->scratch, eng, Grow(&buffers.scratch, &buffers.scratch_size, plan->scratch.get_size()));
    if (op == kFwd || op == kBwdData) {
      if (plan->reorder) plan->w_reorder.execute(stream, user_w, prim_w);
      const int in_arg = op == kFwd ? DNNL_ARG_SRC : DNNL_ARG_DIFF_DST;
      const int out_arg = op == kFwd ? DNNL_ARG_DST : DNNL_ARG_DIFF_SRC;
      plan->prim.execute(stream, {{in_arg, in}, {DNNL_ARG_WEIGHTS, prim_w}, {out_arg, out},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      plan->prim.execute(stream, {{DNNL_ARG_SRC, in}, {DNNL_ARG_DIFF_DST, out}, {DNNL_ARG_DIFF_WEIGHTS, prim_w},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
      if (plan->reorder) plan->w_reorder.execute(stream, prim_w, user_w);
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("ltjax oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error ConvFwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y, int64_t sh,
                   int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Run(kFwd, x.dimensions(), w.dimensions(), y->dimensions(), sh, sw, pt, pb, pl, pr, x.untyped_data(),
             y->untyped_data(), w.untyped_data());
}

ffi::Error ConvBwdData(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> dx,
                       int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Run(kBwdData, dx->dimensions(), w.dimensions(), g.dimensions(), sh, sw, pt, pb, pl, pr,
             g.untyped_data(), dx->untyped_data(), w.untyped_data());
}

ffi::Error ConvBwdWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw,
                          int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Run(kBwdWeights, x.dimensions(), dw->dimensions(), g.dimensions(), sh, sw, pt, pb, pl, pr,
             x.untyped_data(), g.untyped_data(), dw->untyped_data());
}

#define LTJAX_CONV_ATTRS                                                                                   \
  .Attr<int64_t>("sh").Attr<int64_t>("sw").Attr<int64_t>("pt").Attr<int64_t>("pb").Attr<int64_t>("pl")  \
      .Attr<int64_t>("pr")

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(LtjaxOnednnConvFwd, ConvFwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() LTJAX_CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(LtjaxOnednnConvBwdData, ConvBwdData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() LTJAX_CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(LtjaxOnednnConvBwdWeights, ConvBwdWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() LTJAX_CONV_ATTRS);

// The implementation oneDNN chose for one problem (e.g. "brg_conv_fwd:avx512_core"), for benchmarks and tests.
// Writes at most `cap` bytes including the terminating NUL; returns 0, or -1 when oneDNN rejects the problem.
extern "C" int ltjax_onednn_impl(int64_t op, const int64_t* key15, char* buf, int64_t cap) {
  Key k;
  k[0] = op;
  for (int i = 0; i < 15; ++i) k[i + 1] = key15[i];
  try {
    std::string s = GetPlan(k)->impl;
    snprintf(buf, cap, "%s", s.c_str());
    return 0;
  } catch (const dnnl::error&) {
    return -1;
  }
}

// The quadratic MLP's blocked kernel on the CPU, one model, as three ATen operators (the
// forward, the backward and the MSE's training step in one pass): the same computation as
// the Python blocks of interp/models/mlp/fused.py (its reference), bit for bit, with the
// elementwise passes fused and run in cache. Per block of rows: the
// gather of two table rows, their sum z and its square h in one pass (h in the products'
// type); the products through ATen (the same calls as the reference's); in the backward
// gz = (2 g W) * z added into the two table rows of each example in one pass, in example
// order (threads split the N columns, so the order of every sum is the thread count's
// own). Built and loaded by interp/native.py.
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <vector>

namespace {

using at::Tensor;

// h[r] = (table[bags[r, 0]] + table[bags[r, 1]])^2 for the rows of a block, and z (the sum)
// where asked; H is float or BFloat16 (rounded to nearest even, as Tensor.to does).
template <typename H, bool keep_z>
void gather_square(const float* table, const int64_t* bags, int64_t rows, int64_t width,
                   float* z, H* h) {
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* u = table + bags[2 * r] * width;
      const float* v = table + bags[2 * r + 1] * width;
      H* hr = h + r * width;
      for (int64_t j = 0; j < width; ++j) {
        const float s = u[j] + v[j];
        if constexpr (keep_z) z[r * width + j] = s;
        hr[j] = static_cast<H>(s * s);
      }
    }
  });
}

// gtable[bags[r, k]] += gh[r] * z[r] for k = 0, 1, row after row.
template <typename H>
void scatter_gz(const H* gh, const float* z, const int64_t* bags, int64_t rows, int64_t width,
                float* gtable) {
  at::parallel_for(0, width, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t r = 0; r < rows; ++r) {
      const H* ghr = gh + r * width;
      const float* zr = z + r * width;
      float* gu = gtable + bags[2 * r] * width;
      float* gv = gtable + bags[2 * r + 1] * width;
      for (int64_t j = j0; j < j1; ++j) {
        float gz = static_cast<float>(ghr[j]) * zr[j];
        gu[j] += gz;
        gv[j] += gz;
      }
    }
  });
}

// A block's h (in hb's type: W's) from its bags bg, and its z (float32) where zb is
// defined (the backward's; the forward keeps none).
void gather_block(const Tensor& table, const int64_t* bg, int64_t len, const Tensor& zb,
                  const Tensor& hb) {
  const float* rows = table.data_ptr<float>();
  const int64_t width = table.size(1);
  float* z = zb.defined() ? zb.data_ptr<float>() : nullptr;
  if (hb.scalar_type() == at::kBFloat16) {
    c10::BFloat16* h = hb.data_ptr<c10::BFloat16>();
    if (z) gather_square<c10::BFloat16, true>(rows, bg, len, width, z, h);
    else gather_square<c10::BFloat16, false>(rows, bg, len, width, nullptr, h);
  } else {
    float* h = hb.data_ptr<float>();
    if (z) gather_square<float, true>(rows, bg, len, width, z, h);
    else gather_square<float, false>(rows, bg, len, width, nullptr, h);
  }
}

// The gradients of W and of the table rows (undefined where not wanted) and the buffers
// of one block: z (float32), h and gh (in W's type), of `rows` rows, and in bf16 the
// block's share of W's gradient before it is added in float32.
struct Gradients {
  Tensor gW, gtable, z, h, gh, share;
  Gradients(const Tensor& table, const Tensor& W, int64_t rows, bool want_w, bool want_uv)
      : gW(want_w ? at::zeros(W.sizes(), table.options()) : Tensor()),
        gtable(want_uv ? at::zeros(table.sizes(), table.options()) : Tensor()),
        z(at::empty({rows, table.size(1)}, table.options())),
        h(at::empty({rows, table.size(1)}, W.options())),
        gh(at::empty({rows, table.size(1)}, W.options())),
        share(want_w && W.scalar_type() == at::kBFloat16 ? at::empty(W.sizes(), W.options())
                                                         : Tensor()) {}
};

// Adds a block's share of W's gradient (gT @ h, summed in float32: in bf16 the product's
// bf16 result, as at::mm gives it, added in float) and of the table rows' (gh = g @ 2W,
// then gh * z into both rows of each example), given the transpose gT (p, len) of the
// logits' gradient and the block's h and z; into out's gW and gtable where defined.
void add_block_gradients(const Tensor& gT, const Tensor& hb, const Tensor& zb,
                         const Tensor& twice, Tensor& ghb, const int64_t* bg, int64_t len,
                         Gradients& out) {
  const bool bf16 = hb.scalar_type() == at::kBFloat16;
  if (out.gW.defined()) {
    if (bf16) {
      at::mm_out(out.share, gT, hb);
      const c10::BFloat16* part = out.share.data_ptr<c10::BFloat16>();
      float* gw = out.gW.data_ptr<float>();
      const int64_t size = out.gW.numel();
      at::parallel_for(0, size, 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) gw[i] += static_cast<float>(part[i]);
      });
    } else {
      out.gW.addmm_(gT, hb);
    }
  }
  if (out.gtable.defined()) {
    at::mm_out(ghb, gT.t(), twice);
    if (bf16)
      scatter_gz<c10::BFloat16>(ghb.data_ptr<c10::BFloat16>(), zb.data_ptr<float>(), bg, len,
                                zb.size(1), out.gtable.data_ptr<float>());
    else
      scatter_gz<float>(ghb.data_ptr<float>(), zb.data_ptr<float>(), bg, len, zb.size(1),
                        out.gtable.data_ptr<float>());
  }
}

void check(const Tensor& table, const Tensor& bags, const Tensor& W, int64_t block) {
  TORCH_CHECK(block > 0, "block must be a positive number of rows");
  TORCH_CHECK(table.is_cpu() && table.scalar_type() == at::kFloat && table.is_contiguous() &&
                  table.dim() == 2, "table must be a contiguous 2-d float32 CPU tensor");
  TORCH_CHECK(bags.scalar_type() == at::kLong && bags.is_contiguous() && bags.dim() == 2 &&
                  bags.size(1) == 2, "bags must be a contiguous (B, 2) int64 tensor");
  TORCH_CHECK(W.dim() == 2 && W.size(1) == table.size(1) &&
                  (W.scalar_type() == at::kFloat || W.scalar_type() == at::kBFloat16),
              "W must be (p, N) float32 or bfloat16");
  const int64_t* b = bags.data_ptr<int64_t>();
  for (int64_t i = 0; i < bags.numel(); ++i)
    TORCH_CHECK(b[i] >= 0 && b[i] < table.size(0), "bags must index rows of table");
}

// Whether a block's logits are W @ h.T, a (p, rows) product (on one thread, 10% faster
// than h @ W.T on these shapes), rather than h @ W.T (on more threads, where W @ h.T was
// slower: each thread then reads every row of h, which the threads gathered apart).
bool transposed_products() { return at::get_num_threads() == 1; }

// logits (B, p) = h @ W.T block by block, in W's type (as transposed_products() says).
Tensor forward(const Tensor& table, const Tensor& bags, const Tensor& W, int64_t block) {
  check(table, bags, W, block);
  const int64_t B = bags.size(0), width = table.size(1), p = W.size(0);
  const bool tp = transposed_products();
  Tensor out = at::empty({B, p}, W.options());
  const int64_t rows = std::min(block, B);
  Tensor h = at::empty({rows, width}, W.options());
  Tensor oT = at::empty({tp ? p * rows : 0}, W.options());
  for (int64_t start = 0; start < B; start += block) {
    const int64_t len = std::min(block, B - start);
    Tensor hb = h.narrow(0, 0, len), ob = out.narrow(0, start, len);
    const int64_t* bg = bags.data_ptr<int64_t>() + 2 * start;
    gather_block(table, bg, len, Tensor(), hb);
    if (tp) {  // transposed into the block's rows while it is in cache
      Tensor obT = oT.narrow(0, 0, p * len).view({p, len});
      at::mm_out(obT, W, hb.t());
      ob.copy_(obT.t());
    } else {
      at::mm_out(ob, hb, W.t());
    }
  }
  return out;
}

// The gradients of W (float32, summed block by block) and of the table rows, given the
// logits' gradient g; an undefined tensor where not wanted.
std::tuple<Tensor, Tensor> backward(const Tensor& table, const Tensor& bags, const Tensor& W,
                                    const Tensor& g_in, int64_t block, bool want_w,
                                    bool want_uv) {
  check(table, bags, W, block);
  TORCH_CHECK(g_in.dim() == 2 && g_in.size(0) == bags.size(0) && g_in.size(1) == W.size(0),
              "g must be (B, p), the logits' shape");
  const Tensor g = g_in.to(W.scalar_type()).contiguous();
  const Tensor twice = W.mul(2);
  const int64_t B = bags.size(0);
  Gradients out(table, W, std::min(block, B), want_w, want_uv);
  for (int64_t start = 0; start < B; start += block) {
    const int64_t len = std::min(block, B - start);
    Tensor zb = out.z.narrow(0, 0, len), hb = out.h.narrow(0, 0, len);
    Tensor ghb = out.gh.narrow(0, 0, len);
    const int64_t* bg = bags.data_ptr<int64_t>() + 2 * start;
    gather_block(table, bg, len, zb, hb);
    add_block_gradients(g.narrow(0, start, len).t(), hb, zb, twice, ghb, bg, len, out);
  }
  return {out.gW, out.gtable};
}

// The MSE's gradient as torch forms it, transposed: gT[c, i] = norm * (x - t) for the
// logits x (at logits[c * ld + i] when Transposed, else at logits[i * p + c]) and the
// one-hot target t = (labels[i] == c), and each class's sum of squared errors over the
// block in sq[c] (double, in eight lanes by example, summed in lane order: the same bits
// for any thread count).
template <typename H, bool Transposed>
void mse_grad(const H* logits, int64_t ld, const int64_t* labels, int64_t len, int64_t p,
              float norm, H* gT, double* sq) {
  const int64_t sc = Transposed ? ld : 1, si = Transposed ? 1 : p;
  at::parallel_for(0, p, 8, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const H* x = logits + c * sc;
      H* g = gT + c * len;
      double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= len; i += 8)
        for (int k = 0; k < 8; ++k) {
          const float d =
              static_cast<float>(x[(i + k) * si]) - (labels[i + k] == c ? 1.f : 0.f);
          g[i + k] = static_cast<H>(norm * d);
          lane[k] += static_cast<double>(d) * d;
        }
      for (; i < len; ++i) {
        const float d = static_cast<float>(x[i * si]) - (labels[i] == c ? 1.f : 0.f);
        g[i] = static_cast<H>(norm * d);
        lane[i % 8] += static_cast<double>(d) * d;
      }
      double total = 0;
      for (double v : lane) total += v;
      sq[c] = total;
    }
  });
}

// mse_grad on a block's logits ob, a (p, len) view of rows ld apart when tp, else rows.
template <typename H>
void mse_grad_of(const Tensor& ob, bool tp, int64_t ld, const int64_t* labels, int64_t len,
                 int64_t p, float norm, const Tensor& gT, double* sq) {
  if (tp) mse_grad<H, true>(ob.data_ptr<H>(), ld, labels, len, p, norm, gT.data_ptr<H>(), sq);
  else mse_grad<H, false>(ob.data_ptr<H>(), ld, labels, len, p, norm, gT.data_ptr<H>(), sq);
}

// One training step of the MSE loss against one-hot targets, block by block: the logits
// (B, p) as forward() gives them (on one thread the transpose of a (p, B) array), their
// loss (the mean of the squared errors, summed in double in a fixed order) and the
// gradients of W and of the table rows as backward() gives them for the MSE's gradient
// g = norm * (logits - onehot) (norm = 2 / numel, in float, as torch forms it). Each block is gathered and squared once and its gradient
// formed while it is in cache.
std::tuple<Tensor, Tensor, Tensor, Tensor> mse_step(const Tensor& table, const Tensor& bags,
                                                    const Tensor& W, const Tensor& labels,
                                                    int64_t block, bool want_w,
                                                    bool want_uv) {
  check(table, bags, W, block);
  const int64_t B = bags.size(0), p = W.size(0);
  TORCH_CHECK(labels.scalar_type() == at::kLong && labels.is_contiguous() &&
                  labels.dim() == 1 && labels.size(0) == B,
              "labels must be a contiguous (B,) int64 tensor");
  const int64_t* y = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < B; ++i)
    TORCH_CHECK(y[i] >= 0 && y[i] < p, "labels must be classes of the logits");
  const float norm = static_cast<float>(2. / static_cast<double>(B * p));
  const Tensor twice = W.mul(2);
  const bool bf16 = W.scalar_type() == at::kBFloat16;
  const bool tp = transposed_products();
  Tensor logits = tp ? at::empty({p, B}, W.options()) : at::empty({B, p}, W.options());
  const int64_t rows = std::min(block, B);
  Gradients out(table, W, rows, want_w, want_uv);
  Tensor g = at::empty({p * rows}, W.options());
  std::vector<double> sq(p);
  double total = 0;
  for (int64_t start = 0; start < B; start += block) {
    const int64_t len = std::min(block, B - start);
    Tensor zb = out.z.narrow(0, 0, len), hb = out.h.narrow(0, 0, len);
    Tensor ghb = out.gh.narrow(0, 0, len), gT = g.narrow(0, 0, p * len).view({p, len});
    Tensor ob = tp ? logits.narrow(1, start, len) : logits.narrow(0, start, len);
    const int64_t* bg = bags.data_ptr<int64_t>() + 2 * start;
    gather_block(table, bg, len, zb, hb);
    if (tp) at::mm_out(ob, W, hb.t());
    else at::mm_out(ob, hb, W.t());
    if (bf16) mse_grad_of<c10::BFloat16>(ob, tp, B, y + start, len, p, norm, gT, sq.data());
    else mse_grad_of<float>(ob, tp, B, y + start, len, p, norm, gT, sq.data());
    for (double v : sq) total += v;
    add_block_gradients(gT, hb, zb, twice, ghb, bg, len, out);
  }
  const Tensor loss = at::scalar_tensor(static_cast<float>(total / static_cast<double>(B * p)),
                                        table.options());
  return {tp ? logits.t() : logits, loss, out.gW, out.gtable};
}

}  // namespace

TORCH_LIBRARY(interp_quadratic, m) {
  m.def("forward(Tensor table, Tensor bags, Tensor W, int block) -> Tensor", &forward);
  m.def("backward(Tensor table, Tensor bags, Tensor W, Tensor g, int block, bool want_w, "
        "bool want_uv) -> (Tensor, Tensor)", &backward);
  m.def("mse_step(Tensor table, Tensor bags, Tensor W, Tensor labels, int block, bool want_w, "
        "bool want_uv) -> (Tensor, Tensor, Tensor, Tensor)", &mse_step);
}

//===- ModelImporter.cpp - a model description to the moe dialect ---------===//

#include "importer/ModelImporter.h"

#include "dialect/DenseBuilder.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeAttrs.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"
#include "runtime/model/ModelAbi.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

#include "llvm/Support/JSON.h"

#include <cmath>
#include <map>
#include <tuple>

using namespace mlir;
using namespace mlir::moe;
using namespace moec;

namespace {

constexpr auto kParallel = utils::IteratorType::parallel;
constexpr auto kReduction = utils::IteratorType::reduction;
constexpr int64_t kBufferAlignment = 64;

/// The functions the runtime calls (runtime/model/ModelAbi.h): a forward
/// pass, a forward pass that also fills the KV cache, and a decode step of
/// one token per sequence against the cache.
enum class Entry { Forward, Prefill, Decode };

/// What a decoder layer computes apart from its weights. Layers with equal
/// descriptions share one function; only the config makes layers differ.
struct LayerKind {
  bool sparse;        // a MoE block, else a dense SwiGLU MLP (qwen2_moe)
  int64_t numExperts; // E_l, under the expert schedule (sparse layers)
  AttentionKind attention;
  int64_t window, groupSize;
  int64_t multiHeadHeads; // 0: no MH-MoE
  /// Called by @decode, else by @forward and @prefill (which fills the
  /// cache; @forward passes an empty one and a false flag, and nothing is
  /// written).
  bool decode = false;

  auto key() const {
    return std::tuple(sparse, numExperts, attention, window, groupSize,
                      multiHeadHeads, decode);
  }
  bool operator<(const LayerKind &other) const { return key() < other.key(); }

  /// Sub-tokens per token: the MH-MoE heads, 1 without MH-MoE.
  int64_t subTokens() const { return std::max<int64_t>(multiHeadHeads, 1); }

  /// The layer function's name, e.g. `layer_moe_e8`, `layer_mlp`. It tells
  /// apart every two kinds a config can produce (attention and MH-MoE are
  /// the same for every layer today); a field that can differ between
  /// layers must show in it, or the module fails to verify.
  std::string name() const {
    return (sparse ? "layer_moe_e" + std::to_string(numExperts)
                   : std::string("layer_mlp")) +
           (decode ? "_decode" : "");
  }
};

/// A weight of the function being built: its tensor's name and type. The
/// weights of a function occupy consecutive slots of the weight table.
struct Weight {
  std::string name;
  RankedTensorType type;
};

/// The KV cache's layout for B sequences of at most C tokens
/// (docs/contracts.md §4.3), as index values of the function being built:
/// per layer, a key block then a value block, each [B, S + L, KVH, Dh] f32
/// row-major. Rows [S, S + L) are the ring of the latest keys; with GMHA,
/// rows [0, S) hold one summary per group, group g at row S - 1 - g, so that
/// the summaries of the completed groups and the ring's valid slots are one
/// contiguous range of rows.
struct CacheLayout {
  Value slots;     // L: C (full), min(W, C) (sliding), min(W, G) (GMHA)
  Value summaries; // S: ceil(C / G) with GMHA, else 0
  Value rows;      // S + L
  Value block;     // the elements of one block, B·(S + L)·KVH·Dh
  Value perLayer;  // the elements of one layer's part, 2·block
};

/// A decoder layer's function and what its callers need to know.
struct LayerFunction {
  func::FuncOp func;
  /// The weights it reads from its base slot on, named relative to
  /// "model.layers.<l>.".
  std::vector<Weight> weights;
  SmallVector<int64_t> layers; // the layers it computes
};

[[maybe_unused]] bool sameWeights(ArrayRef<Weight> a, ArrayRef<Weight> b) {
  return a.size() == b.size() &&
         llvm::all_of(llvm::zip_equal(a, b), [](auto pair) {
           auto [x, y] = pair;
           return x.name == y.name && x.type == y.type;
         });
}

/// Yields a group summary's cache value: the mean of the group's
/// `groupSize` members once it is `complete`, else their running `sum`.
void yieldSummary(OpBuilder &nb, Location nl, Value sum, Value complete,
                  int64_t groupSize) {
  Value inv = arith::ConstantOp::create(
      nb, nl, nb.getF32FloatAttr(1.0 / static_cast<double>(groupSize)));
  Value mean = arith::MulFOp::create(nb, nl, sum, inv);
  linalg::YieldOp::create(
      nb, nl, Value(arith::SelectOp::create(nb, nl, complete, mean, sum)));
}

class Importer {
public:
  Importer(MLIRContext &ctx, const ModelConfig &config, WeightType weightType,
           StringRef configName)
      : ctx(ctx), config(config), b(&ctx),
        fileLoc(FileLineColLoc::get(&ctx, configName, 1, 1)), loc(fileLoc),
        weightElement(weightType == WeightType::BF16 ? Type(b.getBF16Type())
                                                     : Type(b.getF32Type())) {}

  OwningOpRef<ModuleOp> run();

private:
  /// The function's next weight, tensor `name` (relative to the layer in a
  /// layer function), read from the weight table at the next slot.
  Value param(const std::string &name, ArrayRef<int64_t> shape) {
    auto type = RankedTensorType::get(shape, weightElement);
    Value slot = arith::ConstantIndexOp::create(b, loc, fn.weights.size());
    if (fn.base)
      slot = arith::AddIOp::create(b, loc, fn.base, slot);
    fn.weights.push_back({name, type});
    return WeightOp::create(b, loc, type, fn.table, slot, name);
  }

  /// Names the ops built from now on after a part of the model.
  void at(const std::string &part) {
    loc = NameLoc::get(b.getStringAttr(part), fileLoc);
  }

  DenseBuilder dense() { return DenseBuilder{b, loc}; }

  Value embed(Value flatTokens, Value table);
  Value lastPositions(Value x, Value positions);
  Value rmsNorm(Value x, Value weight);
  Value rope(Value x, Value offset);
  Value attention(const LayerKind &kind, Value h);
  Value attend(const LayerKind &kind, Value q, Value k, Value v);

  // The KV cache (prefill and decode entries).
  CacheLayout cacheLayout(Value batch, Value capacity);
  Value cacheView(Value at, Value rows);
  Value slice(Value buffer, Value from, Value count);
  void fillCache(const LayerKind &kind, Value k, Value v);
  void writeRing(Value fresh, Value ring, Value base, Value count, Value slots);
  void writeGroupSums(Value fresh, Value block, Value summaries,
                      int64_t groupSize);
  Value decodeAttention(const LayerKind &kind, Value q, Value k, Value v);
  void updateSummary(Value fresh, Value block, Value row, Value offset,
                     int64_t groupSize);
  MoeBlockOp moeBlock(const LayerKind &kind, Value h);
  RoutingPolicyAttrInterface policyFor(int64_t numExperts);

  LayerKind describeLayer(int64_t layer);
  LayerFunction &layerFunction(const LayerKind &kind);
  func::FuncOp buildLayerFunction(const LayerKind &kind,
                                  std::vector<Weight> &weights);
  void callLayer(int64_t layer, const LayerKind &kind);
  SmallVector<Value> allocateStatistics(ArrayRef<LayerKind> kinds);
  func::FuncOp buildEntry(Entry entry);
  void buildCacheSize();
  void setForwardAttributes();
  /// `moe.decode_step` on a function of the decode entry: its GEMMs have a
  /// few rows per group, and the CPU's kernels are chosen for that.
  void markDecodeStep(func::FuncOp func) {
    ctx.getLoadedDialect<MoeDialect>()->getDecodeStepAttrHelper().setAttr(
        func, b.getUnitAttr());
  }

  /// The residual stream's buffer type, `memref<?xDxf32>`.
  MemRefType residualType() {
    return MemRefType::get({ShapedType::kDynamic, config.hiddenSize},
                           b.getF32Type());
  }
  /// A buffer of `type`, aligned as bufferization aligns its own.
  Value allocate(MemRefType type, ValueRange dynamicSizes);
  /// `buffer` as a tensor (`bufferization.to_tensor restrict`), and `value`
  /// stored into `buffer` (`bufferization.materialize_in_destination`).
  Value asTensor(Value buffer, bool writable);
  void storeInto(Value value, Value buffer);

  /// `[N, heads * Dh]` as `[B, T, heads, Dh]`, and back.
  Value toHeads(Value x, int64_t heads);
  Value fromHeads(Value x);

  MLIRContext &ctx;
  const ModelConfig &config;
  OpBuilder b;
  Location fileLoc, loc;
  Type weightElement;
  ModuleOp module;
  /// @forward, and the entry being built (layer functions go before it).
  func::FuncOp forward, entryFunc;
  /// The function being built: its entry, its body, the weight table, the
  /// slot of its first weight (none in an entry: slot 0), its weights, B and
  /// T; the flat cache buffer, where the layer's part starts (in a layer
  /// function), C; in a layer function of @forward and @prefill whether to
  /// fill the cache (an i1: false from @forward), and in a decode step the
  /// position p of its tokens.
  struct FunctionState {
    Entry entry = Entry::Forward;
    Block *body = nullptr;
    Value table, base;
    std::vector<Weight> weights;
    Value batch, seqLen;
    Value cache, cacheAt, capacity, fill, position;
  } fn;
  /// In an entry: the cache elements of one layer (0 in @forward).
  Value cachePerLayer;
  std::map<LayerKind, LayerFunction> layerFunctions;
  /// In @forward: the residual stream's buffer, the buffers of the packed
  /// statistics, B·T, and the description of each MoE layer's segment.
  Value residual;
  SmallVector<Value> packedStats;
  Value statsRows;
  /// A MoE layer's statistics segment: its layer, E_l and sub-tokens, and
  /// the sums of the E_l and sub-tokens of the layers before it.
  struct StatsLayer {
    int64_t layer, experts, heads;
    int64_t expertsBefore, headsBefore;
  };
  std::vector<StatsLayer> statsLayers;
};

Value Importer::embed(Value flatTokens, Value table) {
  int64_t d = config.hiddenSize;
  Value init = tensor::EmptyOp::create(
      b, loc,
      ArrayRef<OpFoldResult>{tensor::getMixedSize(b, loc, flatTokens, 0),
                             b.getIndexAttr(d)},
      b.getF32Type());
  GenericBuilder gen{b, loc, {kParallel, kParallel}};
  return gen.build(
      flatTokens, {{0}}, init, {{0, 1}},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value row = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), a[0]);
        Value col = linalg::IndexOp::create(nb, nl, 1);
        Value v =
            tensor::ExtractOp::create(nb, nl, table, ValueRange{row, col});
        if (!v.getType().isF32())
          v = arith::ExtFOp::create(nb, nl, nb.getF32Type(), v);
        linalg::YieldOp::create(nb, nl, v);
      })[0];
}

/// The rows of the last `positions` positions of each sequence of `x`
/// ([B·T, D] → [B·P, D], P = `positions` in [1, T]): what the LM head needs
/// when only those positions' logits are wanted (generation needs the last
/// one). One parallel generic; at P = T a copy, small next to the LM head.
Value Importer::lastPositions(Value x, Value positions) {
  Value rows = arith::MulIOp::create(b, loc, fn.batch, positions);
  Value init = tensor::EmptyOp::create(
      b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(config.hiddenSize)},
      b.getF32Type());
  GenericBuilder gen{b, loc, {kParallel, kParallel}};
  return gen.build(
      {}, {}, init, {{0, 1}}, [&](OpBuilder &nb, Location nl, ValueRange) {
        // Output row r is position T - P + (r mod P) of sequence r / P.
        Value r = linalg::IndexOp::create(nb, nl, 0);
        Value col = linalg::IndexOp::create(nb, nl, 1);
        Value seq = arith::DivUIOp::create(nb, nl, r, positions);
        Value pos = arith::RemUIOp::create(nb, nl, r, positions);
        Value skipped = arith::SubIOp::create(nb, nl, fn.seqLen, positions);
        Value row = arith::AddIOp::create(
            nb, nl, arith::MulIOp::create(nb, nl, seq, fn.seqLen),
            arith::AddIOp::create(nb, nl, skipped, pos));
        Value v = tensor::ExtractOp::create(nb, nl, x, ValueRange{row, col});
        linalg::YieldOp::create(nb, nl, v);
      })[0];
}

Value Importer::rmsNorm(Value x, Value weight) {
  int64_t d = config.hiddenSize;
  OpFoldResult rows = tensor::getMixedSize(b, loc, x, 0);
  GenericBuilder reduce{b, loc, {kParallel, kReduction}};
  Value sumSquares = reduce.build(
      x, {{0, 1}}, filledTensor(b, loc, {rows}, b.getF32FloatAttr(0)), {{0}},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value sq = arith::MulFOp::create(nb, nl, a[0], a[0]);
        linalg::YieldOp::create(nb, nl,
                                Value(arith::AddFOp::create(nb, nl, a[1], sq)));
      })[0];
  GenericBuilder scale{b, loc, {kParallel, kParallel}};
  Value init = tensor::EmptyOp::create(b, loc, tensor::getMixedSizes(b, loc, x),
                                       b.getF32Type());
  return scale.build(
      ValueRange{x, sumSquares, weight}, {{0, 1}, {0}, {1}}, init, {{0, 1}},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Type f32 = nb.getF32Type();
        Value mean = arith::DivFOp::create(
            nb, nl, a[1],
            arith::ConstantOp::create(nb, nl, nb.getFloatAttr(f32, d)));
        Value eps = arith::ConstantOp::create(
            nb, nl,
            nb.getFloatAttr(f32, static_cast<float>(config.rmsNormEps)));
        Value inv = math::RsqrtOp::create(
            nb, nl, arith::AddFOp::create(nb, nl, mean, eps));
        Value w = a[2];
        if (!w.getType().isF32())
          w = arith::ExtFOp::create(nb, nl, f32, w);
        Value normed = arith::MulFOp::create(nb, nl, a[0], inv);
        linalg::YieldOp::create(
            nb, nl, Value(arith::MulFOp::create(nb, nl, normed, w)));
      })[0];
}

/// Rotary embedding in the rotate-half convention on `[B, T, heads, Dh]`:
/// element i < Dh/2 pairs with i + Dh/2, at angle t * theta^(-2i/Dh), t the
/// token's position: `offset` (if given) plus its index. The frequencies are
/// computed here in f32, as Hugging Face does.
Value Importer::rope(Value x, Value offset) {
  int64_t dh = config.headDim, half = dh / 2;
  SmallVector<float> invFreq;
  for (int64_t i = 0; i < half; ++i)
    invFreq.push_back(
        1.0f / std::pow(static_cast<float>(config.ropeTheta),
                        static_cast<float>(2 * i) / static_cast<float>(dh)));
  auto freqType = RankedTensorType::get({half}, b.getF32Type());
  Value freqs = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(freqType, ArrayRef<float>(invFreq)));
  Value init = tensor::EmptyOp::create(b, loc, tensor::getMixedSizes(b, loc, x),
                                       b.getF32Type());
  GenericBuilder gen{b, loc, {kParallel, kParallel, kParallel, kParallel}};
  return gen.build(
      x, {{0, 1, 2, 3}}, init, {{0, 1, 2, 3}},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Type f32 = nb.getF32Type();
        Value bi = linalg::IndexOp::create(nb, nl, 0);
        Value t = linalg::IndexOp::create(nb, nl, 1);
        Value h = linalg::IndexOp::create(nb, nl, 2);
        Value d = linalg::IndexOp::create(nb, nl, 3);
        Value halfV = arith::ConstantIndexOp::create(nb, nl, half);
        Value low =
            arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, d, halfV);
        Value i = arith::RemUIOp::create(nb, nl, d, halfV);
        Value partnerIndex = arith::SelectOp::create(
            nb, nl, low, arith::AddIOp::create(nb, nl, d, halfV),
            arith::SubIOp::create(nb, nl, d, halfV));
        Value partner = tensor::ExtractOp::create(
            nb, nl, x, ValueRange{bi, t, h, partnerIndex});
        Value freq = tensor::ExtractOp::create(nb, nl, freqs, ValueRange{i});
        Value position =
            offset ? Value(arith::AddIOp::create(nb, nl, t, offset)) : t;
        Value pos = arith::UIToFPOp::create(
            nb, nl, f32,
            arith::IndexCastUIOp::create(nb, nl, nb.getI64Type(), position));
        Value angle = arith::MulFOp::create(nb, nl, pos, freq);
        Value c = math::CosOp::create(nb, nl, angle);
        Value s = math::SinOp::create(nb, nl, angle);
        // rotate_half(x) = cat(-x[half:], x[:half]).
        Value rotated = arith::SelectOp::create(
            nb, nl, low, arith::NegFOp::create(nb, nl, partner), partner);
        Value out = arith::AddFOp::create(
            nb, nl, arith::MulFOp::create(nb, nl, a[0], c),
            arith::MulFOp::create(nb, nl, rotated, s));
        linalg::YieldOp::create(nb, nl, out);
      })[0];
}

Value Importer::toHeads(Value x, int64_t heads) {
  auto type = RankedTensorType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, heads, config.headDim},
      b.getF32Type());
  return tensor::ExpandShapeOp::create(
      b, loc, type, x, ArrayRef<ReassociationIndices>{{0, 1}, {2, 3}},
      ArrayRef<OpFoldResult>{fn.batch, fn.seqLen, b.getIndexAttr(heads),
                             b.getIndexAttr(config.headDim)});
}

Value Importer::fromHeads(Value x) {
  return tensor::CollapseShapeOp::create(
      b, loc, x, ArrayRef<ReassociationIndices>{{0, 1}, {2, 3}});
}

Value Importer::attention(const LayerKind &kind, Value h) {
  int64_t d = config.hiddenSize, dh = config.headDim;
  int64_t heads = config.numHeads, kvHeads = config.numKVHeads;
  bool bias = config.modelType == ModelType::Qwen2Moe;
  DenseBuilder db = dense();
  auto project = [&](StringRef name, int64_t outHeads) {
    std::string base = "self_attn." + name.str();
    Value w = param(base + ".weight", {outHeads * dh, d});
    if (bias)
      return db.affine(h, w, param(base + ".bias", {outHeads * dh}));
    return db.linear(h, w);
  };
  Value q = rope(toHeads(project("q_proj", heads), heads), fn.position);
  Value k = rope(toHeads(project("k_proj", kvHeads), kvHeads), fn.position);
  Value v = toHeads(project("v_proj", kvHeads), kvHeads);

  Value o;
  if (fn.entry == Entry::Decode) {
    o = decodeAttention(kind, q, k, v);
  } else {
    o = attend(kind, q, k, v);
    fillCache(kind, k, v);
  }
  return db.linear(fromHeads(o),
                   param("self_attn.o_proj.weight", {d, heads * dh}));
}

/// The attention of the layer's T queries to its T keys.
Value Importer::attend(const LayerKind &kind, Value q, Value k, Value v) {
  Value o;
  switch (kind.attention) {
  case AttentionKind::Full:
    o = AttentionOp::create(b, loc, q.getType(), q, k, v, /*offset=*/Value(),
                            IntegerAttr());
    break;
  case AttentionKind::Sliding:
    o = AttentionOp::create(b, loc, q.getType(), q, k, v, /*offset=*/Value(),
                            b.getI64IntegerAttr(kind.window));
    break;
  case AttentionKind::Grouped:
    o = GroupedAttentionOp::create(b, loc, q.getType(), q, k, v, kind.groupSize,
                                   kind.window);
    break;
  }
  return o;
}

//===----------------------------------------------------------------------===//
// The KV cache
//
// A prefill writes, per layer, what later decode steps attend to: the keys
// and values (after RoPE) of the positions they can still see, and with
// GMHA one summary per group. A decode step writes its token's key and value
// into the ring, then attends to the summaries of the completed groups and
// the ring's valid slots, one contiguous range of n rows, as
// `moe.attention offset(n - 1)`: RoPE is applied before caching, so the
// keys' order in the cache does not matter to the softmax. Keys live in ring
// slots numbered from the start of the token's segment: the whole sequence
// (full and sliding attention), the token's group (GMHA). Slot s holds the
// latest position base + s + k·L, so the valid slots are always a prefix
// [0, min(offset + 1, L)) of the ring.
//===----------------------------------------------------------------------===//

CacheLayout Importer::cacheLayout(Value batch, Value capacity) {
  const AttentionConfig &attn = config.attention;
  auto c = [&](int64_t n) -> Value {
    return arith::ConstantIndexOp::create(b, loc, n);
  };
  auto mul = [&](Value x, Value y) -> Value {
    return arith::MulIOp::create(b, loc, x, y);
  };
  CacheLayout layout;
  layout.summaries = c(0);
  switch (attn.kind) {
  case AttentionKind::Full:
    layout.slots = capacity;
    break;
  case AttentionKind::Sliding:
    layout.slots = arith::MinUIOp::create(b, loc, capacity, c(attn.window));
    break;
  case AttentionKind::Grouped:
    layout.slots = c(std::min(attn.window, attn.groupSize));
    layout.summaries =
        arith::CeilDivUIOp::create(b, loc, capacity, c(attn.groupSize));
    break;
  }
  layout.rows = arith::AddIOp::create(b, loc, layout.summaries, layout.slots);
  layout.block =
      mul(mul(batch, c(config.numKVHeads * config.headDim)), layout.rows);
  layout.perLayer = mul(layout.block, c(2));
  return layout;
}

/// The [B, rows, KVH, Dh] block of the cache that starts at element `at`.
Value Importer::cacheView(Value at, Value rows) {
  int64_t kvh = config.numKVHeads, dh = config.headDim;
  int64_t dyn = ShapedType::kDynamic;
  auto layout = StridedLayoutAttr::get(&ctx, dyn, {dyn, kvh * dh, dh, 1});
  auto type = MemRefType::get({dyn, dyn, kvh, dh}, b.getF32Type(), layout);
  Value rowStride = arith::MulIOp::create(
      b, loc, rows, arith::ConstantIndexOp::create(b, loc, kvh * dh));
  return memref::ReinterpretCastOp::create(
      b, loc, type, fn.cache, OpFoldResult(at),
      ArrayRef<OpFoldResult>{fn.batch, rows, b.getIndexAttr(kvh),
                             b.getIndexAttr(dh)},
      ArrayRef<OpFoldResult>{rowStride, b.getIndexAttr(kvh * dh),
                             b.getIndexAttr(dh), b.getIndexAttr(1)});
}

/// Rows [from, from + count) of every sequence of a cache block.
Value Importer::slice(Value buffer, Value from, Value count) {
  SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
  return memref::SubViewOp::create(
      b, loc, buffer,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), from, b.getIndexAttr(0),
                             b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{fn.batch, count, b.getIndexAttr(config.numKVHeads),
                             b.getIndexAttr(config.headDim)},
      strides);
}

/// Prefill: the cache of the layer's keys `k` and values `v` ([B, T, KVH,
/// Dh], positions 0 .. T - 1).
void Importer::fillCache(const LayerKind &kind, Value k, Value v) {
  // Nothing to fill when called from @forward. A flag rather than C != 0:
  // once the GPU pipeline inlines the layers, the branch folds away in both
  // entries.
  auto guard = scf::IfOp::create(b, loc, fn.fill, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard insertion(b);
  b.setInsertionPoint(guard.thenBlock()->getTerminator());
  CacheLayout layout = cacheLayout(fn.batch, fn.capacity);
  Value base = arith::ConstantIndexOp::create(b, loc, 0);
  Value count = fn.seqLen;
  bool grouped = kind.attention == AttentionKind::Grouped;
  if (grouped) {
    // The ring holds the positions of the group the next token joins.
    Value g = arith::ConstantIndexOp::create(b, loc, kind.groupSize);
    base = arith::MulIOp::create(
        b, loc, arith::DivUIOp::create(b, loc, fn.seqLen, g), g);
    count = arith::SubIOp::create(b, loc, fn.seqLen, base);
  }
  Value vAt = arith::AddIOp::create(b, loc, fn.cacheAt, layout.block);
  for (auto [fresh, at] : {std::pair(k, fn.cacheAt), std::pair(v, vAt)}) {
    Value block = cacheView(at, layout.rows);
    writeRing(fresh, slice(block, layout.summaries, layout.slots), base, count,
              layout.slots);
    if (grouped)
      writeGroupSums(fresh, block, layout.summaries, kind.groupSize);
  }
}

/// Writes into the `slots`-slot ring the latest positions of the segment
/// [base, base + count) of `fresh`: slot s, for s < min(count, slots), gets
/// position base + s + k·slots, the largest below base + count.
void Importer::writeRing(Value fresh, Value ring, Value base, Value count,
                         Value slots) {
  Value n = arith::MinUIOp::create(b, loc, count, slots);
  Value init = tensor::EmptyOp::create(
      b, loc,
      ArrayRef<OpFoldResult>{fn.batch, n, b.getIndexAttr(config.numKVHeads),
                             b.getIndexAttr(config.headDim)},
      b.getF32Type());
  GenericBuilder gen{b, loc, {kParallel, kParallel, kParallel, kParallel}};
  Value gathered =
      gen.build({}, {}, init, {{0, 1, 2, 3}},
                [&](OpBuilder &nb, Location nl, ValueRange) {
                  Value s = linalg::IndexOp::create(nb, nl, 1);
                  Value left = arith::SubIOp::create(
                      nb, nl, arith::SubIOp::create(nb, nl, count, s),
                      arith::ConstantIndexOp::create(nb, nl, 1));
                  Value laps = arith::DivUIOp::create(nb, nl, left, slots);
                  Value j = arith::AddIOp::create(
                      nb, nl, arith::AddIOp::create(nb, nl, base, s),
                      arith::MulIOp::create(nb, nl, laps, slots));
                  Value x = tensor::ExtractOp::create(
                      nb, nl, fresh,
                      ValueRange{linalg::IndexOp::create(nb, nl, 0), j,
                                 linalg::IndexOp::create(nb, nl, 2),
                                 linalg::IndexOp::create(nb, nl, 3)});
                  linalg::YieldOp::create(nb, nl, x);
                })[0];
  storeInto(gathered,
            slice(ring, arith::ConstantIndexOp::create(b, loc, 0), n));
}

/// Writes, per group of `groupSize` positions of `fresh`, the mean of a
/// complete group and the running sum of the last, partial one (which the
/// decode steps complete) into the summary rows of `block` (group g at row
/// summaries - 1 - g). The sums run in position order, as the attention's
/// group means do.
void Importer::writeGroupSums(Value fresh, Value block, Value summaries,
                              int64_t groupSize) {
  Value g = arith::ConstantIndexOp::create(b, loc, groupSize);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value groups = arith::CeilDivUIOp::create(b, loc, fn.seqLen, g);
  SmallVector<OpFoldResult> sizes{fn.batch, groups,
                                  b.getIndexAttr(config.numKVHeads),
                                  b.getIndexAttr(config.headDim)};
  Type f32 = b.getF32Type();
  // A [G] zero operand gives the reduction over the members its extent.
  auto membersType = RankedTensorType::get({groupSize}, f32);
  Value zeros = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(membersType, b.getF32FloatAttr(0)));
  GenericBuilder reduce{
      b, loc, {kParallel, kParallel, kParallel, kParallel, kReduction}};
  Value summed = reduce.build(
      zeros, {{4}}, filledTensor(b, loc, sizes, b.getF32FloatAttr(0)),
      {{0, 1, 2, 3}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value j = arith::AddIOp::create(
            nb, nl,
            arith::MulIOp::create(nb, nl, linalg::IndexOp::create(nb, nl, 1),
                                  g),
            linalg::IndexOp::create(nb, nl, 4));
        Value inside = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult,
                                             j, fn.seqLen);
        Value at = arith::SelectOp::create(
            nb, nl, inside, j, arith::ConstantIndexOp::create(nb, nl, 0));
        Value x = tensor::ExtractOp::create(
            nb, nl, fresh,
            ValueRange{linalg::IndexOp::create(nb, nl, 0), at,
                       linalg::IndexOp::create(nb, nl, 2),
                       linalg::IndexOp::create(nb, nl, 3)});
        x = arith::SelectOp::create(nb, nl, inside, x, a[0]);
        linalg::YieldOp::create(nb, nl,
                                Value(arith::AddFOp::create(nb, nl, a[1], x)));
      })[0];
  // Row r of the output is group groups - 1 - r: the cache's order.
  GenericBuilder scale{b, loc, {kParallel, kParallel, kParallel, kParallel}};
  Value init = tensor::EmptyOp::create(b, loc, sizes, f32);
  Value means =
      scale.build({}, {}, init, {{0, 1, 2, 3}},
                  [&](OpBuilder &nb, Location nl, ValueRange) {
                    Value group = arith::SubIOp::create(
                        nb, nl, arith::SubIOp::create(nb, nl, groups, one),
                        linalg::IndexOp::create(nb, nl, 1));
                    Value sum = tensor::ExtractOp::create(
                        nb, nl, summed,
                        ValueRange{linalg::IndexOp::create(nb, nl, 0), group,
                                   linalg::IndexOp::create(nb, nl, 2),
                                   linalg::IndexOp::create(nb, nl, 3)});
                    Value end = arith::MulIOp::create(
                        nb, nl, arith::AddIOp::create(nb, nl, group, one), g);
                    Value complete = arith::CmpIOp::create(
                        nb, nl, arith::CmpIPredicate::ule, end, fn.seqLen);
                    yieldSummary(nb, nl, sum, complete, groupSize);
                  })[0];
  storeInto(
      means,
      slice(block, arith::SubIOp::create(b, loc, summaries, groups), groups));
}

/// Decode: the attention of the token at position p (`q`, `k`, `v`:
/// [B, 1, heads, Dh]) to the cache, after writing its key and value there.
Value Importer::decodeAttention(const LayerKind &kind, Value q, Value k,
                                Value v) {
  CacheLayout layout = cacheLayout(fn.batch, fn.capacity);
  auto c = [&](int64_t n) -> Value {
    return arith::ConstantIndexOp::create(b, loc, n);
  };
  bool grouped = kind.attention == AttentionKind::Grouped;
  // The completed groups before the token's, and where its segment starts.
  Value groups = c(0), base = c(0);
  if (grouped) {
    groups = arith::DivUIOp::create(b, loc, fn.position, c(kind.groupSize));
    base = arith::MulIOp::create(b, loc, groups, c(kind.groupSize));
  }
  // The token's place in its segment, its slot, and the valid slots.
  Value offset = arith::SubIOp::create(b, loc, fn.position, base);
  Value slot = arith::AddIOp::create(
      b, loc, layout.summaries,
      arith::RemUIOp::create(b, loc, offset, layout.slots));
  Value valid = arith::MinUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, offset, c(1)), layout.slots);
  // The keys: the summaries of groups groups - 1 .. 0, then the ring.
  Value first = arith::SubIOp::create(b, loc, layout.summaries, groups);
  Value n = arith::AddIOp::create(b, loc, groups, valid);
  Value vAt = arith::AddIOp::create(b, loc, fn.cacheAt, layout.block);
  SmallVector<Value, 2> seen;
  for (auto [fresh, at] : {std::pair(k, fn.cacheAt), std::pair(v, vAt)}) {
    Value block = cacheView(at, layout.rows);
    storeInto(fresh, slice(block, slot, c(1)));
    if (grouped)
      updateSummary(fresh, block, arith::SubIOp::create(b, loc, first, c(1)),
                    offset, kind.groupSize);
    seen.push_back(asTensor(slice(block, first, n), /*writable=*/false));
  }
  // The query is the last of the n keys' positions: it sees them all.
  Value last = arith::SubIOp::create(b, loc, n, c(1));
  return AttentionOp::create(b, loc, q.getType(), q, seen[0], seen[1], last,
                             IntegerAttr());
}

/// Adds `fresh` ([B, 1, KVH, Dh]), the member at `offset` of its group, to
/// that group's summary at `row` of `block`: a running sum that the group's
/// last member turns into the mean (the first member starts it).
void Importer::updateSummary(Value fresh, Value block, Value row, Value offset,
                             int64_t groupSize) {
  Value slotBuffer =
      slice(block, row, arith::ConstantIndexOp::create(b, loc, 1));
  Value old = asTensor(slotBuffer, /*writable=*/false);
  Value first =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, offset,
                            arith::ConstantIndexOp::create(b, loc, 0));
  Value complete = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::eq, offset,
      arith::ConstantIndexOp::create(b, loc, groupSize - 1));
  Value init = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, fresh), b.getF32Type());
  GenericBuilder gen{b, loc, {kParallel, kParallel, kParallel, kParallel}};
  Value updated = gen.build(
      ValueRange{fresh, old}, {{0, 1, 2, 3}, {0, 1, 2, 3}}, init,
      {{0, 1, 2, 3}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0));
        Value sum = arith::AddFOp::create(
            nb, nl, arith::SelectOp::create(nb, nl, first, zero, a[1]), a[0]);
        yieldSummary(nb, nl, sum, complete, groupSize);
      })[0];
  storeInto(updated, slotBuffer);
}

RoutingPolicyAttrInterface Importer::policyFor(int64_t numExperts) {
  const RoutingConfig &r = config.routing;
  switch (r.policy) {
  case RoutingPolicy::TopK:
    return TopKAttr::get(&ctx, std::min(config.expertsPerToken, numExperts),
                         config.normalizeTopK);
  case RoutingPolicy::TopP:
    return TopPAttr::get(&ctx, APFloat(r.threshold), r.maxExperts, r.normalize);
  case RoutingPolicy::Threshold:
    return ThresholdAttr::get(&ctx, APFloat(r.threshold), r.maxExperts,
                              r.normalize);
  }
  llvm_unreachable("unknown routing policy");
}

MoeBlockOp Importer::moeBlock(const LayerKind &kind, Value h) {
  int64_t d = config.hiddenSize;
  std::string prefix = config.moeBlockName() + ".";
  bool mixtral = config.modelType == ModelType::Mixtral;
  int64_t numExperts = kind.numExperts;
  int64_t heads = kind.subTokens();
  int64_t dr = d / heads, f = config.expertIntermediateSize;

  StringRef w1Name = mixtral ? "w1" : "gate_proj";
  StringRef w3Name = mixtral ? "w3" : "up_proj";
  StringRef w2Name = mixtral ? "w2" : "down_proj";
  auto expert = [&](StringRef name, ArrayRef<int64_t> shape) {
    SmallVector<int64_t> stacked{numExperts};
    stacked.append(shape.begin(), shape.end());
    return param(prefix + "experts.{e}." + name.str() + ".weight", stacked);
  };
  Value gate = param(prefix + "gate.weight", {numExperts, dr});
  Value w1 = expert(w1Name, {f, dr});
  Value w3 = expert(w3Name, {f, dr});
  Value w2 = expert(w2Name, {dr, f});

  IntegerAttr headsAttr;
  Value headW, headB, mergeW, mergeB;
  if (kind.multiHeadHeads) {
    headsAttr = b.getI64IntegerAttr(heads);
    headW = param(prefix + "multi_head.weight", {d, d});
    headB = param(prefix + "multi_head.bias", {d});
    mergeW = param(prefix + "merge.weight", {d, d});
    mergeB = param(prefix + "merge.bias", {d});
  }
  Value sharedW1, sharedW3, sharedW2, sharedGate;
  if (!mixtral) {
    int64_t fs = config.sharedExpertIntermediateSize;
    sharedW1 = param(prefix + "shared_expert.gate_proj.weight", {fs, d});
    sharedW3 = param(prefix + "shared_expert.up_proj.weight", {fs, d});
    sharedW2 = param(prefix + "shared_expert.down_proj.weight", {d, fs});
    sharedGate = param(prefix + "shared_expert_gate.weight", {1, d});
  }
  Value shallow[3], deep[3];
  if (const std::optional<DualScaleConfig> &dual = config.dualScale) {
    auto swigluExpert = [&](StringRef name, int64_t size, Value(&w)[3]) {
      std::string base = prefix + name.str() + ".";
      w[0] = param(base + "w1.weight", {size, d});
      w[1] = param(base + "w3.weight", {size, d});
      w[2] = param(base + "w2.weight", {d, size});
    };
    swigluExpert("shallow_expert", dual->shallowIntermediateSize, shallow);
    swigluExpert("deep_expert", dual->deepIntermediateSize, deep);
  }
  Value complexityW, complexityB;
  FloatAttr level;
  IntegerAttr simpleMax;
  if (const std::optional<AdaptiveRoutingConfig> &adr =
          config.adaptiveRouting) {
    complexityW = param(prefix + "complexity_gate.weight", {1, d});
    complexityB = param(prefix + "complexity_gate.bias", {1});
    level = b.getF64FloatAttr(adr->levelThreshold);
    simpleMax = b.getI64IntegerAttr(adr->simpleMaxExperts);
  }
  // Routing statistics: experts per (sub-)token, rows per expert, ADR level.
  Type i32 = b.getI32Type();
  SmallVector<Type> statsTypes{
      RankedTensorType::get({ShapedType::kDynamic}, i32),
      RankedTensorType::get({numExperts}, i32),
      RankedTensorType::get({ShapedType::kDynamic}, i32)};
  return MoeBlockOp::create(
      b, loc, h.getType(), statsTypes, h, gate, w1, w3, w2,
      policyFor(numExperts), headsAttr, headW, headB, mergeW, mergeB, sharedW1,
      sharedW3, sharedW2, sharedGate, shallow[0], shallow[1], shallow[2],
      deep[0], deep[1], deep[2], complexityW, complexityB, level, simpleMax);
}

LayerKind Importer::describeLayer(int64_t layer) {
  LayerKind kind{
      config.isSparseLayer(layer), 0,
      config.attention.kind,       config.attention.window,
      config.attention.groupSize,  config.multiHeadHeads.value_or(0)};
  if (!kind.sparse)
    return kind;
  kind.numExperts = config.numExperts;
  if (const std::optional<ExpertScheduleConfig> &s = config.expertSchedule) {
    auto scheduleKind = symbolizeExpertScheduleKind(s->kind);
    auto schedule = ExpertScheduleAttr::get(&ctx, *scheduleKind, s->minExperts,
                                            s->maxExperts, s->period);
    kind.numExperts = schedule.getNumExperts(layer, config.numLayers);
  }
  return kind;
}

/// One decoder layer as its own function:
///
///   func.func private @layer_moe_e8(%x: memref<?xDxf32>, %B: index,
///       %T: index, %table: !llvm.ptr, %base: index[, %counts: memref<?xi32>,
///       %load: memref<sum of E_l x i32>, %level: memref<?xi32>, %countsAt,
///       %loadAt, %levelAt: index], %cache: memref<?xf32>, %cacheAt: index,
///       %capacity: index, %fill: i1 | %position: index)
///
/// `x` is the buffer of the residual stream's B·T rows, which the layer
/// reads and updates in place; a MoE layer also writes its statistics into
/// its segments of the packed vectors (at the offsets given). The body is on
/// tensors (`bufferization.to_tensor restrict writable` of `x`, results
/// materialised back into the buffers), but the caller passes buffers: a
/// chain of tensor values through the calls made bufferization's alias
/// analysis of @forward grow with the cube of the depth. The weights come
/// from the table at slots `base`, `base + 1`, ...; `weights` receives their
/// names (relative to the layer) and types. Every layer function takes the
/// cache, where the layer's part of it starts and C; those of @forward and
/// @prefill then whether to fill it (@forward: false, with an empty cache),
/// those of the decode step the position p of their tokens.
func::FuncOp Importer::buildLayerFunction(const LayerKind &kind,
                                          std::vector<Weight> &weights) {
  OpBuilder::InsertionGuard guard(b);
  FunctionState caller = std::exchange(fn, {});
  Location callerLoc = loc;
  // Before the entry, in the order of first use.
  b.setInsertionPoint(entryFunc);
  auto func =
      func::FuncOp::create(b, fileLoc, kind.name(), b.getFunctionType({}, {}));
  func.setPrivate();
  int64_t d = config.hiddenSize;
  fn.body = func.addEntryBlock();
  Value xBuffer = fn.body->addArgument(residualType(), fileLoc);
  fn.batch = fn.body->addArgument(b.getIndexType(), fileLoc);
  fn.seqLen = fn.body->addArgument(b.getIndexType(), fileLoc);
  fn.table = fn.body->addArgument(caller.table.getType(), fileLoc);
  fn.base = fn.body->addArgument(b.getIndexType(), fileLoc);
  SmallVector<Value> statsBuffers, statsAt;
  if (kind.sparse) {
    for (Value buffer : packedStats)
      statsBuffers.push_back(fn.body->addArgument(buffer.getType(), fileLoc));
    for (unsigned i = 0; i < statsBuffers.size(); ++i)
      statsAt.push_back(fn.body->addArgument(b.getIndexType(), fileLoc));
  }
  fn.entry = kind.decode ? Entry::Decode : Entry::Prefill;
  fn.cache = fn.body->addArgument(caller.cache.getType(), fileLoc);
  fn.cacheAt = fn.body->addArgument(b.getIndexType(), fileLoc);
  fn.capacity = fn.body->addArgument(b.getIndexType(), fileLoc);
  if (!kind.decode)
    fn.fill = fn.body->addArgument(b.getI1Type(), fileLoc);
  if (kind.decode) {
    fn.position = fn.body->addArgument(b.getIndexType(), fileLoc);
    markDecodeStep(func);
  }
  b.setInsertionPointToStart(fn.body);
  Value x = asTensor(xBuffer, /*writable=*/true);

  at("model.layers.{l}.self_attn");
  Value h = rmsNorm(x, param("input_layernorm.weight", {d}));
  x = dense().accumulate(x, attention(kind, h));

  at("model.layers.{l}.mlp");
  h = rmsNorm(x, param("post_attention_layernorm.weight", {d}));
  Value y;
  if (kind.sparse) {
    MoeBlockOp block = moeBlock(kind, h);
    y = block.getResult();
    for (auto [buffer, at, value] :
         llvm::zip_equal(statsBuffers, statsAt, block.getStats())) {
      Value segment = memref::SubViewOp::create(
          b, loc, buffer, ArrayRef<OpFoldResult>{at},
          ArrayRef<OpFoldResult>{tensor::getMixedSize(b, loc, value, 0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
      storeInto(value, segment);
    }
  } else {
    int64_t f = config.denseIntermediateSize;
    y = dense().swiglu(h, param("mlp.gate_proj.weight", {f, d}),
                       param("mlp.up_proj.weight", {f, d}),
                       param("mlp.down_proj.weight", {d, f}));
  }
  storeInto(dense().accumulate(x, y), xBuffer);
  func::ReturnOp::create(b, loc);
  func.setFunctionType(
      b.getFunctionType(fn.body->getArgumentTypes(), TypeRange()));
  weights = std::move(fn.weights);
  fn = std::move(caller);
  loc = callerLoc;
  return func;
}

LayerFunction &Importer::layerFunction(const LayerKind &kind) {
  auto [it, inserted] = layerFunctions.try_emplace(kind);
  if (inserted)
    it->second.func = buildLayerFunction(kind, it->second.weights);
  return it->second;
}

/// Calls the function of layer `layer`, of kind `kind`, on the residual
/// stream's buffer, with the slot of that layer's first weight (its weights
/// are the model's next table entries) and, for a MoE layer, the offsets of
/// its statistics segments.
void Importer::callLayer(int64_t layer, const LayerKind &kind) {
  LayerFunction &callee = layerFunction(kind);
  // @forward and @prefill call the same functions for the same layers.
  if (!llvm::is_contained(callee.layers, layer))
    callee.layers.push_back(layer);
  std::string prefix = "model.layers." + std::to_string(layer);
  at(prefix);
  SmallVector<Value> args{
      residual, fn.batch, fn.seqLen, fn.table,
      arith::ConstantIndexOp::create(b, loc, fn.weights.size())};
  for (const Weight &w : callee.weights)
    fn.weights.push_back({prefix + "." + w.name, w.type});
  if (kind.sparse) {
    // This layer's segments follow those of the MoE layers before it;
    // counts and levels have B·T entries per sub-token or layer.
    int64_t heads = 0, experts = 0;
    if (!statsLayers.empty()) {
      const StatsLayer &last = statsLayers.back();
      heads = last.headsBefore + last.heads;
      experts = last.expertsBefore + last.experts;
    }
    auto times = [&](int64_t n) -> Value {
      return arith::MulIOp::create(b, loc, statsRows,
                                   arith::ConstantIndexOp::create(b, loc, n));
    };
    llvm::append_range(args, packedStats);
    args.append({times(heads), arith::ConstantIndexOp::create(b, loc, experts),
                 times(statsLayers.size())});
    statsLayers.push_back(
        {layer, kind.numExperts, kind.subTokens(), experts, heads});
  }
  args.append({fn.cache,
               arith::MulIOp::create(
                   b, loc, arith::ConstantIndexOp::create(b, loc, layer),
                   cachePerLayer),
               fn.capacity});
  if (!kind.decode)
    args.push_back(arith::ConstantIntOp::create(
        b, loc, b.getI1Type(), fn.entry == Entry::Prefill ? 1 : 0));
  if (fn.position)
    args.push_back(fn.position);
  auto call = func::CallOp::create(b, loc, callee.func, args);
  // One body per kind of layer: MLIR's inliner must not undo that.
  call.setNoInline(true);
}

static_assert(moec::abi::kNumStatsResults == 3,
              "moe.moe_block reports three statistics");

/// The buffers of the packed statistics that the MoE layers fill, layer
/// after layer: experts per (sub-)token ([B·T·sum of h_l]), rows per expert
/// ([sum of E_l]) and the ADR level ([B·T·MoE layers]). Three vectors
/// whatever the depth; empty without MoE layers.
SmallVector<Value> Importer::allocateStatistics(ArrayRef<LayerKind> kinds) {
  int64_t heads = 0, experts = 0, moeLayers = 0;
  for (const LayerKind &kind : kinds) {
    if (!kind.sparse)
      continue;
    heads += kind.subTokens();
    experts += kind.numExperts;
    ++moeLayers;
  }
  statsRows = arith::MulIOp::create(b, loc, fn.batch, fn.seqLen);
  Type i32 = b.getI32Type();
  auto perRow = [&](int64_t n) -> Value {
    Value size = arith::MulIOp::create(
        b, loc, statsRows, arith::ConstantIndexOp::create(b, loc, n));
    return allocate(MemRefType::get({ShapedType::kDynamic}, i32), size);
  };
  return {perRow(heads), allocate(MemRefType::get({experts}, i32), {}),
          perRow(moeLayers)};
}

Value Importer::allocate(MemRefType type, ValueRange dynamicSizes) {
  return memref::AllocOp::create(b, loc, type, dynamicSizes,
                                 b.getI64IntegerAttr(kBufferAlignment));
}

Value Importer::asTensor(Value buffer, bool writable) {
  auto type = cast<MemRefType>(buffer.getType());
  return bufferization::ToTensorOp::create(
      b, loc, RankedTensorType::get(type.getShape(), type.getElementType()),
      buffer, /*restrict=*/true, writable);
}

void Importer::storeInto(Value value, Value buffer) {
  // Not `restrict`: that would promise no `to_tensor restrict` of the same
  // buffer, and the residual stream's buffer has one.
  bufferization::MaterializeInDestinationOp::create(b, loc, TypeRange(), value,
                                                    buffer, /*restrict=*/false,
                                                    /*writable=*/true);
}

OwningOpRef<ModuleOp> Importer::run() {
  ctx.loadDialect<MoeDialect, arith::ArithDialect,
                  bufferization::BufferizationDialect, func::FuncDialect,
                  linalg::LinalgDialect, LLVM::LLVMDialect, math::MathDialect,
                  memref::MemRefDialect, scf::SCFDialect,
                  tensor::TensorDialect>();
  OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc);
  module = *owned;
  forward = buildEntry(Entry::Forward);
  std::vector<Weight> weights = fn.weights;
  setForwardAttributes();
  for (Entry entry : {Entry::Prefill, Entry::Decode}) {
    buildEntry(entry);
    // One weight table for every entry: the manifest lists @forward's.
    assert(sameWeights(fn.weights, weights) &&
           "the entries read different weight tables");
  }
  (void)weights;
  buildCacheSize();
  auto *dialect = ctx.getLoadedDialect<MoeDialect>();
  for (auto &entry : layerFunctions)
    dialect->getLayersAttrHelper().setAttr(
        entry.second.func, b.getDenseI64ArrayAttr(entry.second.layers));
  return owned;
}

/// An entry of the ABI (runtime/model/ModelAbi.h):
///
///   @forward(%tokens: tensor<?x?xi32>, %weights: !llvm.ptr, %P: index)
///   @prefill(%tokens, %weights, %P, %cache: memref<?xf32>, %C: index)
///   @decode(%tokens: tensor<?x1xi32>, %weights, %cache, %C, %p: index)
///
/// the embedding, one call per decoder layer on the residual stream's
/// buffer, the final norm and the LM head on the last P positions of each
/// sequence (decode: its one position); their logits [B, P, V] and the
/// packed statistics (of every token).
func::FuncOp Importer::buildEntry(Entry entry) {
  fn = {};
  fn.entry = entry;
  statsLayers.clear();
  loc = fileLoc;
  b.setInsertionPointToEnd(module.getBody());

  int64_t d = config.hiddenSize, v = config.vocabSize;
  bool decode = entry == Entry::Decode;
  auto tokensType = RankedTensorType::get(
      {ShapedType::kDynamic, decode ? 1 : ShapedType::kDynamic},
      b.getI32Type());
  auto logitsType = RankedTensorType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, v}, b.getF32Type());
  Type index = b.getIndexType();
  SmallVector<Type> inputs{tokensType, LLVM::LLVMPointerType::get(&ctx)};
  if (!decode)
    inputs.push_back(index);
  if (entry != Entry::Forward)
    inputs.append(
        {MemRefType::get({ShapedType::kDynamic}, b.getF32Type()), index});
  if (decode)
    inputs.push_back(index);
  StringRef name = entry == Entry::Forward   ? moec::abi::kEntry
                   : entry == Entry::Prefill ? moec::abi::kPrefillEntry
                                             : moec::abi::kDecodeEntry;
  entryFunc = func::FuncOp::create(b, fileLoc, name,
                                   b.getFunctionType(inputs, {logitsType}));
  entryFunc->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                     b.getUnitAttr());
  fn.body = entryFunc.addEntryBlock();
  b.setInsertionPointToStart(fn.body);
  auto args = fn.body->getArguments();
  Value tokens = args[0];
  fn.table = args[1];
  Value positions =
      decode ? Value(arith::ConstantIndexOp::create(b, loc, 1)) : args[2];
  if (entry != Entry::Forward) {
    fn.cache = args[decode ? 2 : 3];
    fn.capacity = args[decode ? 3 : 4];
  } else {
    // The prefill's layer functions with an empty cache (C = 0), under which
    // they write nothing: one body per kind of layer serves both entries.
    fn.capacity = arith::ConstantIndexOp::create(b, loc, 0);
    fn.cache = allocate(MemRefType::get({ShapedType::kDynamic}, b.getF32Type()),
                        fn.capacity);
  }
  if (decode) {
    fn.position = args[4];
    markDecodeStep(entryFunc);
  }

  at("embedding");
  fn.batch = tensor::DimOp::create(b, loc, tokens, 0);
  fn.seqLen = tensor::DimOp::create(b, loc, tokens, 1);
  cachePerLayer = cacheLayout(fn.batch, fn.capacity).perLayer;
  Value flatTokens = tensor::CollapseShapeOp::create(
      b, loc, tokens, ArrayRef<ReassociationIndices>{{0, 1}});
  Value embedTable = param("model.embed_tokens.weight", {v, d});
  Value x = embed(flatTokens, embedTable);

  SmallVector<LayerKind> kinds;
  for (int64_t l = 0; l < config.numLayers; ++l) {
    kinds.push_back(describeLayer(l));
    kinds.back().decode = decode;
  }
  packedStats = allocateStatistics(kinds);
  residual =
      allocate(residualType(), getValueOrCreateConstantIndexOp(
                                   b, loc, tensor::getMixedSize(b, loc, x, 0)));
  storeInto(x, residual);
  for (auto [l, kind] : llvm::enumerate(kinds))
    callLayer(l, kind);
  x = asTensor(residual, /*writable=*/false);

  at("lm_head");
  x = rmsNorm(lastPositions(x, positions), param("model.norm.weight", {d}));
  Value head =
      config.tieWordEmbeddings ? embedTable : param("lm_head.weight", {v, d});
  Value logits = dense().linear(x, head);
  Value shaped = tensor::ExpandShapeOp::create(
      b, loc, logitsType, logits, ArrayRef<ReassociationIndices>{{0, 1}, {2}},
      ArrayRef<OpFoldResult>{fn.batch, positions, b.getIndexAttr(v)});
  SmallVector<Value> results{shaped};
  for (Value buffer : packedStats)
    results.push_back(asTensor(buffer, /*writable=*/false));
  func::ReturnOp::create(b, loc, results);
  entryFunc.setFunctionType(b.getFunctionType(fn.body->getArgumentTypes(),
                                              ValueRange(results).getTypes()));
  return entryFunc;
}

/// @cache_size(%B: index, %C: index) -> index: the cache's f32 elements for
/// B sequences of at most C tokens, under the layout the layers use.
void Importer::buildCacheSize() {
  fn = {};
  loc = fileLoc;
  b.setInsertionPointToEnd(module.getBody());
  Type index = b.getIndexType();
  auto func = func::FuncOp::create(b, fileLoc, moec::abi::kCacheSizeEntry,
                                   b.getFunctionType({index, index}, {index}));
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(), b.getUnitAttr());
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  Value perLayer =
      cacheLayout(body->getArgument(0), body->getArgument(1)).perLayer;
  Value total = arith::MulIOp::create(
      b, loc, perLayer,
      arith::ConstantIndexOp::create(b, loc, config.numLayers));
  func::ReturnOp::create(b, loc, total);
}

/// What the manifest and readers of the IR need: the C interface the
/// runtime calls, the weight table's entries, the statistics segments, and
/// the layers each layer function computes.
void Importer::setForwardAttributes() {
  auto *dialect = ctx.getLoadedDialect<MoeDialect>();
  SmallVector<Attribute> weights;
  for (const Weight &w : fn.weights)
    weights.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(kWeightNameKey, b.getStringAttr(w.name)),
         b.getNamedAttr(kWeightTypeKey, TypeAttr::get(w.type))}));
  dialect->getWeightsAttrHelper().setAttr(forward, b.getArrayAttr(weights));
  // The layer, expert count and MH-MoE heads of each packed stats segment.
  SmallVector<int64_t> layers, experts, heads;
  for (const StatsLayer &s : statsLayers) {
    layers.push_back(s.layer);
    experts.push_back(s.experts);
    heads.push_back(s.heads);
  }
  dialect->getStatsLayersAttrHelper().setAttr(forward,
                                              b.getDenseI64ArrayAttr(layers));
  dialect->getStatsExpertsAttrHelper().setAttr(forward,
                                               b.getDenseI64ArrayAttr(experts));
  dialect->getStatsHeadsAttrHelper().setAttr(forward,
                                             b.getDenseI64ArrayAttr(heads));
}

} // namespace

OwningOpRef<ModuleOp> moec::importModel(MLIRContext &context,
                                        const ModelConfig &config,
                                        WeightType weightType,
                                        StringRef configName) {
  return Importer(context, config, weightType, configName).run();
}

std::string moec::modelManifest(ModuleOp module, const ModelConfig &config,
                                llvm::StringRef target) {
  namespace key = moec::abi::manifest;
  auto forward = module.lookupSymbol<func::FuncOp>(moec::abi::kEntry);
  auto *dialect = module.getContext()->getLoadedDialect<MoeDialect>();
  llvm::json::Array params;
  ArrayAttr weights = dialect->getWeightsAttrHelper().getAttr(forward);
  for (auto weight : weights.getAsRange<DictionaryAttr>()) {
    auto type = cast<RankedTensorType>(
        weight.getAs<TypeAttr>(kWeightTypeKey).getValue());
    llvm::json::Array shape;
    for (int64_t d : type.getShape())
      shape.push_back(d);
    params.push_back(llvm::json::Object{
        {key::kName, weight.getAs<StringAttr>(kWeightNameKey).getValue()},
        {key::kDtype, type.getElementType().isF32() ? key::kF32 : key::kBF16},
        {key::kShape, std::move(shape)}});
  }
  llvm::json::Array stats;
  auto layers = dialect->getStatsLayersAttrHelper().getAttr(forward);
  auto experts = dialect->getStatsExpertsAttrHelper().getAttr(forward);
  auto heads = dialect->getStatsHeadsAttrHelper().getAttr(forward);
  for (auto [layer, e, h] : llvm::zip_equal(
           layers.asArrayRef(), experts.asArrayRef(), heads.asArrayRef()))
    stats.push_back(llvm::json::Object{
        {key::kLayer, layer}, {key::kExperts, e}, {key::kHeads, h}});
  llvm::json::Object manifest{{key::kFormat, moec::abi::kManifestFormat},
                              {key::kTarget, target},
                              {key::kVocabSize, config.vocabSize},
                              {key::kParams, std::move(params)},
                              {key::kStats, std::move(stats)}};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::json::Value(std::move(manifest));
  return text;
}

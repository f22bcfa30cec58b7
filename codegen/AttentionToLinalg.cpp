//===- AttentionToLinalg.cpp - moe attention ops to tensors ---------------===//
//
// Lowers moe.attention (full causal or sliding-window) and
// moe.grouped_attention (GMHA, docs/semantics.md §7) to scf/tensor/linalg/arith
// on tensors.
//
// The generic lowering (the GPU's; on the CPU moe-tile-attention runs
// first): every (batch, query, few heads of one GQA group) is one iteration
// of an scf.forall, so the bufferized loop becomes an scf.parallel and then an
// OpenMP worksharing loop. Each iteration walks its key range once, reading
// each key and value row once for all its heads, with an online softmax per
// head (a running max m, a running sum l and an f32 accumulator rescaled by
// exp(m_old - m_new) whenever the max grows), so no score matrix exists at
// all: memory is the f32 output plus, for GMHA, the group means, and the
// work per query is its key count (i + 1, min(W, i + 1), or the local keys
// plus one summary per earlier group). The accumulators are the heads' rows
// of the forall's shared output, which bufferizes in place: the loop body
// allocates nothing.
//
//===----------------------------------------------------------------------===//

#include "codegen/AttentionUtils.h"
#include "codegen/Passes.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;

namespace {

auto kParallel = utils::IteratorType::parallel;
auto kReduction = utils::IteratorType::reduction;

/// The running state of one query's online softmax.
struct SoftmaxState {
  Value max; // f32, the largest score so far (-inf before the first key)
  Value sum; // f32, sum of exp(score - max)
  Value acc; // vector<Dh x f32>, sum of exp(score - max) * value
};

Value f32Constant(OpBuilder &b, Location loc, double value) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(value));
}

Value indexConstant(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

/// Builds the attention of one op; `query`, `key`, `value` are
/// [B, T, H, Dh], [B, T, KVH, Dh], [B, T, KVH, Dh].
class AttentionBuilder {
public:
  /// `headsPerStep` heads of a GQA group per iteration; it divides
  /// H / KVH.
  AttentionBuilder(OpBuilder &b, Location loc, Value query, Value key,
                   Value value, AttentionKeyRange range, int64_t headsPerStep)
      : b(b), loc(loc), query(query), key(key), value(value), range(range),
        step(headsPerStep) {
    auto qType = cast<RankedTensorType>(query.getType());
    heads = qType.getDimSize(2);
    headDim = qType.getDimSize(3);
    kvHeads = cast<RankedTensorType>(key.getType()).getDimSize(2);
  }

  /// The attention output in f32, [B, T, H, Dh].
  Value build() {
    Value keyMeans, valueMeans;
    if (range.groupSize)
      std::tie(keyMeans, valueMeans) =
          buildGroupMeans(b, loc, key, value, *range.groupSize);

    // Each iteration serves `step` consecutive heads of one GQA group, so
    // every key and value row it loads feeds `step` queries, and their
    // independent softmax chains overlap.
    SmallVector<OpFoldResult> outSizes = tensor::getMixedSizes(b, loc, query);
    Value init = filledTensor(b, loc, outSizes, b.getF32FloatAttr(0));
    SmallVector<OpFoldResult> ubs{outSizes[0], outSizes[1],
                                  b.getIndexAttr(heads / step)};
    auto forall = scf::ForallOp::create(b, loc, ubs, ValueRange{init},
                                        /*mapping=*/std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forall.getTerminator());
    Value batch = forall.getInductionVar(0);
    Value firstHead = arith::MulIOp::create(b, loc, forall.getInductionVar(2),
                                            indexConstant(b, loc, step));
    Value pos = balancedCausalIndex(
        b, loc, forall.getInductionVar(1),
        getValueOrCreateConstantIndexOp(b, loc, outSizes[1]));
    Value shared = forall.getRegionIterArgs()[0];

    // The output rows of the iteration's heads are their accumulators.
    SmallVector<OpFoldResult> offsets{batch, pos, firstHead, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes{b.getIndexAttr(1), b.getIndexAttr(1),
                                    b.getIndexAttr(step),
                                    b.getIndexAttr(headDim)};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    auto blockType = RankedTensorType::get({step, headDim}, b.getF32Type());
    Value block = tensor::ExtractSliceOp::create(b, loc, blockType, shared,
                                                 offsets, sizes, strides);

    // Grouped-query sharing: H / KVH consecutive heads read one kv-head.
    Value kvHead = arith::DivUIOp::create(
        b, loc, firstHead, indexConstant(b, loc, heads / kvHeads));
    // The query rows, widened once; the accumulators live in registers.
    auto vecType = VectorType::get({headDim}, b.getF32Type());
    Value zeros = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0)));
    SmallVector<Value> queries;
    SmallVector<SoftmaxState> states;
    for (int64_t g = 0; g < step; ++g) {
      Value head = g == 0 ? firstHead
                          : Value(arith::AddIOp::create(
                                b, loc, firstHead, indexConstant(b, loc, g)));
      queries.push_back(readRow(query, {batch, pos, head}));
      // Before any key: max -inf, sum 0, accumulator 0 (see foldKey).
      states.push_back(
          {f32Constant(b, loc, -std::numeric_limits<double>::infinity()),
           f32Constant(b, loc, 0), zeros});
    }

    // Local keys: [lo, pos], pos the query's position among the keys'.
    if (range.queryOffset)
      pos = arith::AddIOp::create(b, loc, pos, range.queryOffset);
    Value c1 = indexConstant(b, loc, 1);
    Value lo = indexConstant(b, loc, 0);
    Value groupIndex;
    if (range.groupSize) {
      Value g = indexConstant(b, loc, *range.groupSize);
      groupIndex = arith::DivUIOp::create(b, loc, pos, g);
      lo = arith::MulIOp::create(b, loc, groupIndex, g);
    }
    if (range.window) {
      Value first = arith::SubIOp::create(
          b, loc, pos, indexConstant(b, loc, *range.window - 1));
      lo = arith::MaxSIOp::create(b, loc, lo, first);
    }
    Value hi = arith::AddIOp::create(b, loc, pos, c1);
    states = attendRange(states, queries, lo, hi, key, value, batch, kvHead);

    // GMHA summaries: one mean key and value per earlier complete group.
    if (range.groupSize)
      states = attendRange(states, queries, indexConstant(b, loc, 0),
                           groupIndex, keyMeans, valueMeans, batch, kvHead);

    // Normalise: every query sees at least its own key, so sum > 0.
    for (auto [g, state] : llvm::enumerate(states)) {
      Value inv =
          arith::DivFOp::create(b, loc, f32Constant(b, loc, 1.0), state.sum);
      Value normalised = arith::MulFOp::create(
          b, loc, state.acc, vector::BroadcastOp::create(b, loc, vecType, inv));
      block =
          vector::TransferWriteOp::create(
              b, loc, normalised, block,
              ValueRange{indexConstant(b, loc, g), indexConstant(b, loc, 0)},
              ArrayRef<bool>{true})
              .getResult();
    }

    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(b, loc, block, shared, offsets, sizes,
                                          strides);
    return forall.getResult(0);
  }

private:
  /// Row `[indices..., 0:Dh]` of a [B, T, heads, Dh] tensor as a
  /// vector<Dh x f32> (one read, widened to f32).
  Value readRow(Value tensor, ArrayRef<Value> indices) {
    return readRowAt(b, loc, tensor, indices);
  }

  Value readRowAt(OpBuilder &rb, Location rl, Value tensor,
                  ArrayRef<Value> indices) {
    Type element = cast<RankedTensorType>(tensor.getType()).getElementType();
    SmallVector<Value> at(indices.begin(), indices.end());
    at.push_back(indexConstant(rb, rl, 0));
    Value padding = arith::ConstantOp::create(rb, rl, rb.getZeroAttr(element));
    Value row = vector::TransferReadOp::create(
        rb, rl, VectorType::get({headDim}, element), tensor, at, padding,
        ArrayRef<bool>{true});
    return extendToF32(rb, rl, row);
  }

  /// `state` after one more key, of `score` and f32 value row `v`.
  static SoftmaxState foldKey(OpBuilder &kb, Location kl, SoftmaxState state,
                              Value score, Value v) {
    // One exp per key: with d = score - max, the new key's weight is exp(d)
    // and the old state's rescale 1 when d <= 0, and the other way round
    // when the key raises the max; both are exp(-|d|) or 1. The initial max
    // -inf gives d = +inf, so rescale 0, weight 1.
    Value d = arith::SubFOp::create(kb, kl, score, state.max);
    Value raises = arith::CmpFOp::create(kb, kl, arith::CmpFPredicate::OGT, d,
                                         f32Constant(kb, kl, 0));
    auto exp = math::ExpOp::create(
        kb, kl, arith::NegFOp::create(kb, kl, math::AbsFOp::create(kb, kl, d)));
    // The per-key exp dominates long sequences: convert-moe-to-linalg
    // expands it inline (MLIR's polynomial) instead of calling expf.
    exp->setAttr(kApproximateAttrName, kb.getUnitAttr());
    Value e = exp;
    Value one = f32Constant(kb, kl, 1.0);
    Value max = arith::SelectOp::create(kb, kl, raises, score, state.max);
    Value rescale = arith::SelectOp::create(kb, kl, raises, e, one);
    Value weight = arith::SelectOp::create(kb, kl, raises, one, e);
    Value sum = arith::AddFOp::create(
        kb, kl, arith::MulFOp::create(kb, kl, state.sum, rescale), weight);
    Type vecType = state.acc.getType();
    Value acc = multiplyAdd(
        kb, kl, vector::BroadcastOp::create(kb, kl, vecType, weight), v,
        arith::MulFOp::create(
            kb, kl, state.acc,
            vector::BroadcastOp::create(kb, kl, vecType, rescale)));
    return {max, sum, acc};
  }

  /// Folds the keys `keys[batch, j, kvHead]` (values likewise) for j in
  /// [lo, hi) into the online softmaxes of the queries whose f32 rows are
  /// `queries`, one state each. Each key row is read once per step; each
  /// query then costs one vector dot product and one vector FMA over Dh.
  SmallVector<SoftmaxState> attendRange(ArrayRef<SoftmaxState> states,
                                        ArrayRef<Value> queries, Value lo,
                                        Value hi, Value keys, Value values,
                                        Value batch, Value kvHead) {
    Value scale = f32Constant(b, loc, 1.0 / std::sqrt(double(headDim)));
    size_t n = states.size();
    SmallVector<Value> inits;
    for (const SoftmaxState &state : states)
      inits.append({state.max, state.sum, state.acc});
    auto loop = scf::ForOp::create(
        b, loc, lo, hi, indexConstant(b, loc, 1), inits,
        [&](OpBuilder &kb, Location kl, Value j, ValueRange args) {
          Value k = readRowAt(kb, kl, keys, {batch, j, kvHead});
          Value v = readRowAt(kb, kl, values, {batch, j, kvHead});
          SmallVector<Value> yields;
          for (size_t g = 0; g < n; ++g) {
            // score = q . k / sqrt(Dh), in f32; the sum may reassociate (a
            // tree of vector adds instead of Dh serial ones).
            Value dot = vector::ReductionOp::create(
                kb, kl, vector::CombiningKind::ADD,
                arith::MulFOp::create(kb, kl, queries[g], k),
                arith::FastMathFlags::reassoc);
            Value score = arith::MulFOp::create(kb, kl, dot, scale);
            SoftmaxState next =
                foldKey(kb, kl, {args[3 * g], args[3 * g + 1], args[3 * g + 2]},
                        score, v);
            yields.append({next.max, next.sum, next.acc});
          }
          scf::YieldOp::create(kb, kl, yields);
        });
    SmallVector<SoftmaxState> result;
    for (size_t g = 0; g < n; ++g)
      result.push_back({loop.getResult(3 * g), loop.getResult(3 * g + 1),
                        loop.getResult(3 * g + 2)});
    return result;
  }

  OpBuilder &b;
  Location loc;
  Value query, key, value;
  AttentionKeyRange range;
  int64_t step;
  int64_t heads, kvHeads, headDim;
};

/// The f32 attention result as `type`: converted elementwise when the
/// element type differs, then cast to the op's (possibly static) shape.
Value toResultType(OpBuilder &b, Location loc, Value result, Type type) {
  auto resultType = cast<RankedTensorType>(type);
  Type element = resultType.getElementType();
  if (!element.isF32()) {
    Value init = tensor::EmptyOp::create(
        b, loc, tensor::getMixedSizes(b, loc, result), element);
    GenericBuilder cast{b, loc, {kParallel, kParallel, kParallel, kParallel}};
    result = cast.build(
        ValueRange{result}, {{0, 1, 2, 3}}, ValueRange{init}, {{0, 1, 2, 3}},
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(nb, nl,
                                  truncateFromF32(nb, nl, args[0], element));
        })[0];
  }
  if (result.getType() != type)
    result = tensor::CastOp::create(b, loc, type, result);
  return result;
}

template <typename OpTy> struct AttentionLowering : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    auto qType = cast<RankedTensorType>(op.getQuery().getType());
    int64_t group = qType.getDimSize(2) /
                    cast<RankedTensorType>(op.getKey().getType()).getDimSize(2);
    // One head per iteration unless a `moe.kernel` says otherwise (on the
    // CPU, moe-tile-attention lowers the ops that carry one first; this
    // lowering follows only its heads_per_step). Queries with an offset (a
    // decode step's one position per sequence against a cache) take their
    // whole GQA group: each cached key and value row is then read once, and
    // B x KVH iterations still outnumber the CPU's workers. At Dh = 64 on
    // AVX2 two heads' rows exceed the register file and spill, and still
    // the step at T = 4096 took 31-35 ms against 37-48 ms with one head
    // (docs/performance.md).
    int64_t step = AttentionKeyRange::of(op).queryOffset ? group : 1;
    if (auto kernel = dyn_cast_if_present<AttentionKernelAttr>(
            MoeDialect::KernelAttrHelper(op->getContext()).getAttr(op))) {
      step = kernel.getHeadsPerStep();
      if (group % step)
        return op.emitOpError()
               << "kernel heads_per_step " << step
               << " does not divide the heads per kv-head (" << group << ")";
    }
    Value result =
        AttentionBuilder(rewriter, op.getLoc(), op.getQuery(), op.getKey(),
                         op.getValue(), AttentionKeyRange::of(op), step)
            .build();
    rewriter.replaceOp(
        op, toResultType(rewriter, op.getLoc(), result, op.getType()));
    return success();
  }
};

} // namespace

void mlir::moe::populateAttentionToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionLowering<AttentionOp>,
               AttentionLowering<GroupedAttentionOp>>(patterns.getContext());
}

AttentionKeyRange mlir::moe::AttentionKeyRange::of(Operation *op) {
  AttentionKeyRange range;
  if (auto attention = dyn_cast<AttentionOp>(op)) {
    if (std::optional<uint64_t> window = attention.getWindow())
      range.window = static_cast<int64_t>(*window);
    range.queryOffset = attention.getOffset();
  } else if (auto grouped = dyn_cast<GroupedAttentionOp>(op)) {
    range.window = static_cast<int64_t>(grouped.getWindow());
    range.groupSize = static_cast<int64_t>(grouped.getGroupSize());
  }
  return range;
}

Value mlir::moe::balancedCausalIndex(OpBuilder &b, Location loc, Value i,
                                     Value n) {
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value c2 = arith::ConstantIndexOp::create(b, loc, 2);
  Value half = arith::DivUIOp::create(b, loc, i, c2);
  Value odd = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                    arith::RemUIOp::create(b, loc, i, c2),
                                    arith::ConstantIndexOp::create(b, loc, 0));
  Value mirrored =
      arith::SubIOp::create(b, loc, arith::SubIOp::create(b, loc, n, c1), half);
  return arith::SelectOp::create(b, loc, odd, mirrored, half);
}

std::pair<Value, Value> mlir::moe::buildGroupMeans(OpBuilder &b, Location loc,
                                                   Value key, Value value,
                                                   int64_t g) {
  auto keyType = cast<RankedTensorType>(key.getType());
  int64_t kvHeads = keyType.getDimSize(2), headDim = keyType.getDimSize(3);
  OpFoldResult batches = tensor::getMixedSize(b, loc, key, 0);
  Value tokens = getValueOrCreateConstantIndexOp(
      b, loc, tensor::getMixedSize(b, loc, key, 1));
  Value groupSize = indexConstant(b, loc, g);
  Value numGroups = arith::DivUIOp::create(b, loc, tokens, groupSize);
  Value covered = arith::MulIOp::create(b, loc, numGroups, groupSize);
  // View the grouped prefix of the tokens as [B, T / G, G, KVH, Dh]; a
  // partial last group is left out.
  auto grouped = [&](Value x) -> Value {
    auto type = cast<RankedTensorType>(x.getType());
    SmallVector<OpFoldResult> offsets(4, b.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes{batches, covered, b.getIndexAttr(kvHeads),
                                    b.getIndexAttr(headDim)};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    Value prefix =
        tensor::ExtractSliceOp::create(b, loc, x, offsets, sizes, strides);
    auto expandedType = RankedTensorType::get(
        {type.getDimSize(0), ShapedType::kDynamic, g, kvHeads, headDim},
        type.getElementType());
    SmallVector<ReassociationIndices> reassociation{{0}, {1, 2}, {3}, {4}};
    SmallVector<OpFoldResult> shape{batches, numGroups, b.getIndexAttr(g),
                                    b.getIndexAttr(kvHeads),
                                    b.getIndexAttr(headDim)};
    return tensor::ExpandShapeOp::create(b, loc, expandedType, prefix,
                                         reassociation, shape);
  };
  Value keys = grouped(key), values = grouped(value);
  SmallVector<OpFoldResult> meanSizes{batches, OpFoldResult(numGroups),
                                      b.getIndexAttr(kvHeads),
                                      b.getIndexAttr(headDim)};
  Value keySums = filledTensor(b, loc, meanSizes, b.getF32FloatAttr(0));
  Value valueSums = filledTensor(b, loc, meanSizes, b.getF32FloatAttr(0));

  // Sums over (batch, group, kv-head, d, member), then the division.
  GenericBuilder sums{
      b, loc, {kParallel, kParallel, kParallel, kParallel, kReduction}};
  ValueRange summed =
      sums.build(ValueRange{keys, values}, {{0, 1, 4, 2, 3}, {0, 1, 4, 2, 3}},
                 ValueRange{keySums, valueSums}, {{0, 1, 2, 3}, {0, 1, 2, 3}},
                 [&](OpBuilder &nb, Location nl, ValueRange args) {
                   Value k = arith::AddFOp::create(
                       nb, nl, args[2], extendToF32(nb, nl, args[0]));
                   Value v = arith::AddFOp::create(
                       nb, nl, args[3], extendToF32(nb, nl, args[1]));
                   linalg::YieldOp::create(nb, nl, ValueRange{k, v});
                 });
  GenericBuilder means{b, loc, {kParallel, kParallel, kParallel, kParallel}};
  ValueRange result = means.build(
      ValueRange{}, {}, summed, {{0, 1, 2, 3}, {0, 1, 2, 3}},
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value inv = f32Constant(nb, nl, 1.0 / static_cast<double>(g));
        linalg::YieldOp::create(
            nb, nl,
            ValueRange{arith::MulFOp::create(nb, nl, args[0], inv),
                       arith::MulFOp::create(nb, nl, args[1], inv)});
      });
  return {result[0], result[1]};
}

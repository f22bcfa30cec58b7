//===- AttentionToLinalg.cpp - moe attention ops to tensors ---------------===//
//
// Lowers moe.attention (full causal or sliding-window) and
// moe.grouped_attention (GMHA, SEEDS.md §7) to scf/tensor/linalg/arith on
// tensors.
//
// Every (batch, query, head) is one iteration of an scf.forall, so the
// bufferized loop becomes an scf.parallel and then an OpenMP worksharing
// loop. Each iteration walks its own key range once with an online softmax
// (a running max m, a running sum l and an f32 accumulator rescaled by
// exp(m_old - m_new) whenever the max grows), so no score matrix exists at
// all: memory is the f32 output plus, for GMHA, the group means, and the
// work per query is its key count (i + 1, min(W, i + 1), or the local keys
// plus one summary per earlier group). The accumulator is the query's row of
// the forall's shared output, which bufferizes in place: the loop body
// allocates nothing.
//
//===----------------------------------------------------------------------===//

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

/// Which keys a query sees, besides the causal bound j <= i.
struct KeyRange {
  /// Keep key j only when i - window < j (sliding window, and GMHA's local
  /// keys).
  std::optional<int64_t> window;
  /// GMHA: local keys stay in the query's group, and every earlier complete
  /// group contributes its mean key and value.
  std::optional<int64_t> groupSize;
};

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
  AttentionBuilder(OpBuilder &b, Location loc, Value query, Value key,
                   Value value, KeyRange range)
      : b(b), loc(loc), query(query), key(key), value(value), range(range) {
    auto qType = cast<RankedTensorType>(query.getType());
    heads = qType.getDimSize(2);
    headDim = qType.getDimSize(3);
    kvHeads = cast<RankedTensorType>(key.getType()).getDimSize(2);
  }

  /// The attention output in f32, [B, T, H, Dh].
  Value build() {
    Value keyMeans, valueMeans;
    if (range.groupSize)
      std::tie(keyMeans, valueMeans) = groupMeans();

    SmallVector<OpFoldResult> outSizes = tensor::getMixedSizes(b, loc, query);
    Value init = filledTensor(b, loc, outSizes, b.getF32FloatAttr(0));
    SmallVector<OpFoldResult> ubs{outSizes[0], outSizes[1],
                                  b.getIndexAttr(heads)};
    auto forall = scf::ForallOp::create(b, loc, ubs, ValueRange{init},
                                        /*mapping=*/std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forall.getTerminator());
    Value batch = forall.getInductionVar(0);
    Value head = forall.getInductionVar(2);
    // Causal rows grow with the position, and OpenMP splits the iterations
    // into contiguous chunks: iteration i takes position i / 2 when i is
    // even and T - 1 - i / 2 when odd, so every chunk mixes short and long
    // rows and the workers finish together.
    Value pos;
    {
      Value i = forall.getInductionVar(1);
      Value c2 = indexConstant(b, loc, 2);
      Value half = arith::DivUIOp::create(b, loc, i, c2);
      Value odd = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                        arith::RemUIOp::create(b, loc, i, c2),
                                        indexConstant(b, loc, 0));
      Value tokens = getValueOrCreateConstantIndexOp(b, loc, outSizes[1]);
      Value mirrored = arith::SubIOp::create(
          b, loc,
          arith::SubIOp::create(b, loc, tokens, indexConstant(b, loc, 1)),
          half);
      pos = arith::SelectOp::create(b, loc, odd, mirrored, half);
    }
    Value shared = forall.getRegionIterArgs()[0];

    // The query's output row is its accumulator.
    SmallVector<OpFoldResult> offsets{batch, pos, head, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes{b.getIndexAttr(1), b.getIndexAttr(1),
                                    b.getIndexAttr(1), b.getIndexAttr(headDim)};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    auto rowType = RankedTensorType::get({headDim}, b.getF32Type());
    Value row = tensor::ExtractSliceOp::create(b, loc, rowType, shared, offsets,
                                               sizes, strides);

    // Grouped-query sharing: H / KVH consecutive heads read one kv-head.
    Value kvHead = arith::DivUIOp::create(
        b, loc, head, indexConstant(b, loc, heads / kvHeads));
    // The query row, widened once; the accumulator lives in registers.
    auto vecType = VectorType::get({headDim}, b.getF32Type());
    Value q = readRow(query, {batch, pos, head});
    Value zeros = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0)));
    SoftmaxState state{
        f32Constant(b, loc, -std::numeric_limits<double>::infinity()),
        f32Constant(b, loc, 0), zeros};

    // Local keys: [lo, pos].
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
    state = attendRange(state, q, lo, hi, key, value, batch, kvHead);

    // GMHA summaries: one mean key and value per earlier complete group.
    if (range.groupSize)
      state = attendRange(state, q, indexConstant(b, loc, 0), groupIndex,
                          keyMeans, valueMeans, batch, kvHead);

    // Normalise: every query sees at least its own key, so sum > 0.
    Value inv =
        arith::DivFOp::create(b, loc, f32Constant(b, loc, 1.0), state.sum);
    Value normalised = arith::MulFOp::create(
        b, loc, state.acc, vector::BroadcastOp::create(b, loc, vecType, inv));
    Value out = vector::TransferWriteOp::create(
                    b, loc, normalised, row,
                    ValueRange{indexConstant(b, loc, 0)}, ArrayRef<bool>{true})
                    .getResult();

    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(b, loc, out, shared, offsets, sizes,
                                          strides);
    return forall.getResult(0);
  }

private:
  /// The per-group means of `key` and `value` over the complete groups only,
  /// [B, T / G, KVH, Dh] in f32: computed once, read by every later query.
  std::pair<Value, Value> groupMeans() {
    int64_t g = *range.groupSize;
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
                     Type f32 = nb.getF32Type();
                     Value k = arith::AddFOp::create(
                         nb, nl, args[2], castFloat(nb, nl, args[0], f32));
                     Value v = arith::AddFOp::create(
                         nb, nl, args[3], castFloat(nb, nl, args[1], f32));
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

  /// Folds the keys `keys[batch, j, kvHead]` (values likewise) for j in
  /// [lo, hi) into the online softmax of the query whose f32 row is `q`.
  /// Each key costs one vector dot product and one vector FMA over Dh.
  SoftmaxState attendRange(SoftmaxState state, Value q, Value lo, Value hi,
                           Value keys, Value values, Value batch,
                           Value kvHead) {
    Value scale = f32Constant(b, loc, 1.0 / std::sqrt(double(headDim)));
    auto loop = scf::ForOp::create(
        b, loc, lo, hi, indexConstant(b, loc, 1),
        ValueRange{state.max, state.sum, state.acc},
        [&](OpBuilder &kb, Location kl, Value j, ValueRange args) {
          // score = q . k / sqrt(Dh), in f32; the sum may reassociate (a
          // tree of vector adds instead of Dh serial ones).
          Value k = readRowAt(kb, kl, keys, {batch, j, kvHead});
          Value dot =
              vector::ReductionOp::create(kb, kl, vector::CombiningKind::ADD,
                                          arith::MulFOp::create(kb, kl, q, k),
                                          arith::FastMathFlags::reassoc);
          Value score = arith::MulFOp::create(kb, kl, dot, scale);
          // One exp per key: with d = score - max, the new key's weight is
          // exp(d) and the old state's rescale 1 when d <= 0, and the other
          // way round when the key raises the max; both are exp(-|d|) or 1.
          // The initial max -inf gives d = +inf, so rescale 0, weight 1.
          Value d = arith::SubFOp::create(kb, kl, score, args[0]);
          Value raises = arith::CmpFOp::create(
              kb, kl, arith::CmpFPredicate::OGT, d, f32Constant(kb, kl, 0));
          auto exp = math::ExpOp::create(
              kb, kl,
              arith::NegFOp::create(kb, kl, math::AbsFOp::create(kb, kl, d)));
          // The per-key exp dominates long sequences: convert-moe-to-linalg
          // expands it inline (MLIR's polynomial) instead of calling expf.
          exp->setAttr(kApproximateAttrName, kb.getUnitAttr());
          Value e = exp;
          Value one = f32Constant(kb, kl, 1.0);
          Value max = arith::SelectOp::create(kb, kl, raises, score, args[0]);
          Value rescale = arith::SelectOp::create(kb, kl, raises, e, one);
          Value weight = arith::SelectOp::create(kb, kl, raises, one, e);
          Value sum = arith::AddFOp::create(
              kb, kl, arith::MulFOp::create(kb, kl, args[1], rescale), weight);
          Type vecType = args[2].getType();
          Value v = readRowAt(kb, kl, values, {batch, j, kvHead});
          Value acc = vector::FMAOp::create(
              kb, kl, vector::BroadcastOp::create(kb, kl, vecType, weight), v,
              arith::MulFOp::create(
                  kb, kl, args[2],
                  vector::BroadcastOp::create(kb, kl, vecType, rescale)));
          scf::YieldOp::create(kb, kl, ValueRange{max, sum, acc});
        });
    return {loop.getResult(0), loop.getResult(1), loop.getResult(2)};
  }

  OpBuilder &b;
  Location loc;
  Value query, key, value;
  KeyRange range;
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
          linalg::YieldOp::create(nb, nl, castFloat(nb, nl, args[0], element));
        })[0];
  }
  if (result.getType() != type)
    result = tensor::CastOp::create(b, loc, type, result);
  return result;
}

struct AttentionLowering : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    KeyRange range;
    if (std::optional<uint64_t> window = op.getWindow())
      range.window = static_cast<int64_t>(*window);
    Value result = AttentionBuilder(rewriter, op.getLoc(), op.getQuery(),
                                    op.getKey(), op.getValue(), range)
                       .build();
    rewriter.replaceOp(
        op, toResultType(rewriter, op.getLoc(), result, op.getType()));
    return success();
  }
};

struct GroupedAttentionLowering : OpRewritePattern<GroupedAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GroupedAttentionOp op,
                                PatternRewriter &rewriter) const override {
    KeyRange range{static_cast<int64_t>(op.getWindow()),
                   static_cast<int64_t>(op.getGroupSize())};
    Value result = AttentionBuilder(rewriter, op.getLoc(), op.getQuery(),
                                    op.getKey(), op.getValue(), range)
                       .build();
    rewriter.replaceOp(
        op, toResultType(rewriter, op.getLoc(), result, op.getType()));
    return success();
  }
};

} // namespace

void mlir::moe::populateAttentionToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionLowering, GroupedAttentionLowering>(
      patterns.getContext());
}

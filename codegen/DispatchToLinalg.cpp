//===- DispatchToLinalg.cpp - moe.dispatch as parallel generics ----------===//
//
// Lowers moe.dispatch to linalg generics on tensors, every one of them
// parallel over its output, so that the placement runs as parallel loops on
// the CPU and as kernels on the GPU (no sequential scan over the tokens, no
// scatter). The slots are cut into chunks of kChunkTokens tokens:
//
//   chunkCounts[c, e]  slots of chunk c routed to e (a scan of the chunk)
//   rowsPerExpert[e]   sum over c;  offsets = its exclusive prefix sum
//   chunkStart[c, e]   offsets[e] + sum of chunkCounts[c' < c, e]
//   slotToRow[t, k]    chunkStart[chunk(t), e] + the slots of chunk(t)
//                      before (t, k) routed to e = ids[t, k]
//   rowToToken[r]      for r's expert e (from the offsets), the chunk whose
//                      rows of e hold r, then the token of its
//                      (r - chunkStart)-th slot routed to e
//
// which is the stable placement (token order within an expert): each output
// element is found by a bounded scan of one chunk (and of the chunk starts),
// so the work is O(T·K·(kChunkTokens·K + T / kChunkTokens)) at most, small
// beside the GEMMs the rows feed.
//
// The number of rows is offsets[E], read back to size the row buffers, or,
// with a static row bound (the GPU's: no host read of device memory), the
// T·K slots: rows past offsets[E] are then token 0's row, which the grouped
// GEMM computes and the combine never reads.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

auto kParallel = utils::IteratorType::parallel;
auto kReduction = utils::IteratorType::reduction;

/// Tokens per chunk of the placement: a slot's row is found by a scan of
/// its chunk (kChunkTokens·K slots), a row's token by a scan of the chunk
/// starts (T / kChunkTokens) and then of one chunk.
constexpr int64_t kChunkTokens = 32;

class DispatchBuilder {
public:
  DispatchBuilder(OpBuilder &b, DispatchOp op, bool staticRowBound)
      : b(b), loc(op.getLoc()), ctx(op.getContext()), op(op),
        staticRowBound(staticRowBound), i32(b.getI32Type()),
        ids(op.getExpertIds()), counts(op.getCounts()),
        numExperts(op.getNumExperts()),
        slots(cast<RankedTensorType>(ids.getType()).getDimSize(1)) {}

  /// rows, offsets, rowToToken, slotToRow.
  SmallVector<Value> build() {
    Value tokens = getValueOrCreateConstantIndexOp(
        b, loc, tensor::getMixedSize(b, loc, op.getTokens(), 0));
    numChunks = arith::CeilDivUIOp::create(b, loc, tokens, index(kChunkTokens));
    numTokens = tokens;
    Value chunkCounts = countChunks();
    Value perExpert = sumOverChunks(chunkCounts);
    Value offsets = exclusivePrefix(perExpert);
    Value chunkStart = startOfChunks(chunkCounts, offsets);
    Value slotToRow = placeSlots(chunkStart);
    Value numRows =
        staticRowBound
            ? Value(arith::MulIOp::create(b, loc, tokens, index(slots)))
            : Value(arith::IndexCastOp::create(
                  b, loc, b.getIndexType(),
                  tensor::ExtractOp::create(b, loc, offsets,
                                            ValueRange{index(numExperts)})));
    Value rowToToken = tokensOfRows(numRows, offsets, chunkStart, chunkCounts);
    return {gatherRows(numRows, rowToToken), offsets, rowToToken, slotToRow};
  }

private:
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }

  Value toIndex(OpBuilder &nb, Location nl, Value v) {
    return arith::IndexCastOp::create(nb, nl, nb.getIndexType(), v);
  }

  Value toI32(OpBuilder &nb, Location nl, Value v) {
    return arith::IndexCastOp::create(nb, nl, i32, v);
  }

  /// Calls `body(t, k)` for the used slots of tokens [first, first + n)
  /// in order, threading `init` (i32 scalars) through; `body` returns the
  /// next values.
  ValueRange
  scanSlots(OpBuilder &sb, Location sl, Value first, Value n, ValueRange init,
            function_ref<SmallVector<Value>(OpBuilder &, Location, Value, Value,
                                            ValueRange)>
                body) {
    Value c0 = arith::ConstantIndexOp::create(sb, sl, 0);
    Value c1 = arith::ConstantIndexOp::create(sb, sl, 1);
    auto loop = scf::ForOp::create(
        sb, sl, c0, n, c1, init,
        [&](OpBuilder &tb, Location tl, Value i, ValueRange tokenState) {
          Value t = arith::AddIOp::create(tb, tl, first, i);
          Value used = arith::MinSIOp::create(
              tb, tl,
              toIndex(tb, tl,
                      tensor::ExtractOp::create(tb, tl, counts, ValueRange{t})),
              arith::ConstantIndexOp::create(tb, tl, slots));
          auto inner = scf::ForOp::create(
              tb, tl, c0, used, c1, tokenState,
              [&](OpBuilder &kb, Location kl, Value k, ValueRange state) {
                scf::YieldOp::create(kb, kl, body(kb, kl, t, k, state));
              });
          scf::YieldOp::create(tb, tl, inner.getResults());
        });
    return loop.getResults();
  }

  /// Tokens of chunk `c`: [c·C, min(T, (c + 1)·C)), as (first, count).
  std::pair<Value, Value> chunkTokens(OpBuilder &nb, Location nl, Value c) {
    Value first = arith::MulIOp::create(
        nb, nl, c, arith::ConstantIndexOp::create(nb, nl, kChunkTokens));
    Value n = arith::MinUIOp::create(
        nb, nl, arith::ConstantIndexOp::create(nb, nl, kChunkTokens),
        arith::SubIOp::create(nb, nl, numTokens, first));
    return {first, n};
  }

  Value isExpert(OpBuilder &nb, Location nl, Value t, Value k, Value expert) {
    Value id = tensor::ExtractOp::create(nb, nl, ids, ValueRange{t, k});
    return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, id, expert);
  }

  Value increment(OpBuilder &nb, Location nl, Value count, Value hit) {
    return arith::AddIOp::create(nb, nl, count,
                                 arith::ExtUIOp::create(nb, nl, i32, hit));
  }

  /// A [chunks, E] i32 tensor whose element (c, e) `element` computes
  /// from c and e.
  Value perChunkAndExpert(
      function_ref<Value(OpBuilder &, Location, Value, Value)> element) {
    Value init = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{numChunks, b.getIndexAttr(numExperts)},
        i32);
    return linalg::GenericOp::create(
               b, loc, init.getType(), ValueRange{}, ValueRange{init},
               ArrayRef<AffineMap>{b.getMultiDimIdentityMap(2)},
               ArrayRef<utils::IteratorType>{kParallel, kParallel},
               [&](OpBuilder &nb, Location nl, ValueRange) {
                 linalg::YieldOp::create(
                     nb, nl,
                     element(nb, nl, linalg::IndexOp::create(nb, nl, 0),
                             linalg::IndexOp::create(nb, nl, 1)));
               })
        .getResult(0);
  }

  /// chunkCounts[c, e]: the used slots of chunk c routed to expert e.
  Value countChunks() {
    return perChunkAndExpert([&](OpBuilder &nb, Location nl, Value c, Value e) {
      Value expert = toI32(nb, nl, e);
      auto [first, n] = chunkTokens(nb, nl, c);
      Value zero = arith::ConstantIntOp::create(nb, nl, 0, 32);
      return scanSlots(nb, nl, first, n, zero,
                       [&](OpBuilder &sb, Location sl, Value t, Value k,
                           ValueRange state) -> SmallVector<Value> {
                         return {increment(sb, sl, state[0],
                                           isExpert(sb, sl, t, k, expert))};
                       })
          .front();
    });
  }

  /// rowsPerExpert[e] = sum over c of chunkCounts[c, e].
  Value sumOverChunks(Value chunkCounts) {
    Value zeros = filledTensor(b, loc, {b.getIndexAttr(numExperts)},
                               b.getI32IntegerAttr(0));
    return linalg::GenericOp::create(
               b, loc, zeros.getType(), ValueRange{chunkCounts},
               ValueRange{zeros},
               ArrayRef<AffineMap>{projectionMap(ctx, 2, {1, 0}),
                                   projectionMap(ctx, 2, {0})},
               ArrayRef<utils::IteratorType>{kParallel, kReduction},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 linalg::YieldOp::create(
                     nb, nl, Value(arith::AddIOp::create(nb, nl, a[1], a[0])));
               })
        .getResult(0);
  }

  /// offsets[i] = rowsPerExpert[0] + ... + rowsPerExpert[i - 1], i <= E.
  Value exclusivePrefix(Value perExpert) {
    Value zeros = filledTensor(b, loc, {b.getIndexAttr(numExperts + 1)},
                               b.getI32IntegerAttr(0));
    return linalg::GenericOp::create(
               b, loc, zeros.getType(), ValueRange{perExpert},
               ValueRange{zeros},
               ArrayRef<AffineMap>{projectionMap(ctx, 2, {1}),
                                   projectionMap(ctx, 2, {0})},
               ArrayRef<utils::IteratorType>{kParallel, kReduction},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value before =
                     arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult,
                                           linalg::IndexOp::create(nb, nl, 1),
                                           linalg::IndexOp::create(nb, nl, 0));
                 Value sum = arith::AddIOp::create(nb, nl, a[1], a[0]);
                 linalg::YieldOp::create(
                     nb, nl,
                     Value(arith::SelectOp::create(nb, nl, before, sum, a[1])));
               })
        .getResult(0);
  }

  /// chunkStart[c, e] = offsets[e] + sum over c' < c of chunkCounts[c', e].
  Value startOfChunks(Value chunkCounts, Value offsets) {
    return perChunkAndExpert([&](OpBuilder &nb, Location nl, Value c, Value e) {
      Value start = tensor::ExtractOp::create(nb, nl, offsets, ValueRange{e});
      auto loop = scf::ForOp::create(
          nb, nl, arith::ConstantIndexOp::create(nb, nl, 0), c,
          arith::ConstantIndexOp::create(nb, nl, 1), ValueRange{start},
          [&](OpBuilder &lb, Location ll, Value before, ValueRange sum) {
            Value n = tensor::ExtractOp::create(lb, ll, chunkCounts,
                                                ValueRange{before, e});
            scf::YieldOp::create(
                lb, ll, Value(arith::AddIOp::create(lb, ll, sum[0], n)));
          });
      return loop.getResult(0);
    });
  }

  /// slotToRow[t, k]: -1 for an unused slot, else the row of its expert e
  /// after the chunk's earlier slots routed to e.
  Value placeSlots(Value chunkStart) {
    Value init = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{numTokens, b.getIndexAttr(slots)}, i32);
    return linalg::GenericOp::create(
               b, loc, init.getType(), ValueRange{counts}, ValueRange{init},
               ArrayRef<AffineMap>{projectionMap(ctx, 2, {0}),
                                   b.getMultiDimIdentityMap(2)},
               ArrayRef<utils::IteratorType>{kParallel, kParallel},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value t = linalg::IndexOp::create(nb, nl, 0);
                 Value k = linalg::IndexOp::create(nb, nl, 1);
                 Value used = arith::CmpIOp::create(
                     nb, nl, arith::CmpIPredicate::slt, toI32(nb, nl, k), a[0]);
                 Value expert =
                     tensor::ExtractOp::create(nb, nl, ids, ValueRange{t, k});
                 // An unused slot's id may be anything: clamp the lookup.
                 Value e = arith::MinUIOp::create(
                     nb, nl, toIndex(nb, nl, expert),
                     arith::ConstantIndexOp::create(nb, nl, numExperts - 1));
                 Value c = arith::DivUIOp::create(
                     nb, nl, t,
                     arith::ConstantIndexOp::create(nb, nl, kChunkTokens));
                 Value start = tensor::ExtractOp::create(nb, nl, chunkStart,
                                                         ValueRange{c, e});
                 // The chunk's slots before (t, k): its tokens before t, then
                 // t's slots before k.
                 auto [first, n] = chunkTokens(nb, nl, c);
                 Value earlier = arith::SubIOp::create(nb, nl, t, first);
                 ValueRange row = scanSlots(
                     nb, nl, first, earlier, start,
                     [&](OpBuilder &sb, Location sl, Value tt, Value kk,
                         ValueRange state) -> SmallVector<Value> {
                       return {increment(sb, sl, state[0],
                                         isExpert(sb, sl, tt, kk, expert))};
                     });
                 auto own = scf::ForOp::create(
                     nb, nl, arith::ConstantIndexOp::create(nb, nl, 0), k,
                     arith::ConstantIndexOp::create(nb, nl, 1), row,
                     [&](OpBuilder &kb, Location kl, Value kk,
                         ValueRange state) {
                       scf::YieldOp::create(
                           kb, kl,
                           increment(kb, kl, state[0],
                                     isExpert(kb, kl, t, kk, expert)));
                     });
                 Value unused = arith::ConstantIntOp::create(nb, nl, -1, 32);
                 linalg::YieldOp::create(
                     nb, nl,
                     Value(arith::SelectOp::create(nb, nl, used,
                                                   own.getResult(0), unused)));
               })
        .getResult(0);
  }

  /// rowToToken[r]: the token whose slot holds row r (0 past offsets[E]).
  Value tokensOfRows(Value numRows, Value offsets, Value chunkStart,
                     Value chunkCounts) {
    Value init =
        tensor::EmptyOp::create(b, loc, ArrayRef<OpFoldResult>{numRows}, i32);
    // The expert of each row (E past the last row).
    Value experts = groupOfRows(b, loc, offsets, numExperts, numRows);
    return linalg::GenericOp::create(
               b, loc, init.getType(), ValueRange{experts}, ValueRange{init},
               ArrayRef<AffineMap>{b.getMultiDimIdentityMap(1),
                                   b.getMultiDimIdentityMap(1)},
               ArrayRef<utils::IteratorType>{kParallel},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value row = toI32(nb, nl, linalg::IndexOp::create(nb, nl, 0));
                 Value valid = arith::CmpIOp::create(
                     nb, nl, arith::CmpIPredicate::ult, a[0],
                     arith::ConstantIntOp::create(nb, nl, numExperts, 32));
                 Value e = arith::MinUIOp::create(
                     nb, nl, toIndex(nb, nl, a[0]),
                     arith::ConstantIndexOp::create(nb, nl, numExperts - 1));
                 Value token =
                     tokenOfRow(nb, nl, row, e, chunkStart, chunkCounts);
                 Value zero = arith::ConstantIntOp::create(nb, nl, 0, 32);
                 linalg::YieldOp::create(nb, nl,
                                         Value(arith::SelectOp::create(
                                             nb, nl, valid, token, zero)));
               })
        .getResult(0);
  }

  /// The token of row `row` of expert `e`: the chunk whose rows of e start
  /// at or before it (the last such chunk with any), then the token of that
  /// chunk's (row - start)-th slot routed to e.
  Value tokenOfRow(OpBuilder &nb, Location nl, Value row, Value e,
                   Value chunkStart, Value chunkCounts) {
    Value c0 = arith::ConstantIndexOp::create(nb, nl, 0);
    Value c1 = arith::ConstantIndexOp::create(nb, nl, 1);
    auto find = scf::ForOp::create(
        nb, nl, c0, numChunks, c1, ValueRange{c0},
        [&](OpBuilder &lb, Location ll, Value c, ValueRange found) {
          Value start =
              tensor::ExtractOp::create(lb, ll, chunkStart, ValueRange{c, e});
          Value n =
              tensor::ExtractOp::create(lb, ll, chunkCounts, ValueRange{c, e});
          Value holds = arith::AndIOp::create(
              lb, ll,
              arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::sle, start,
                                    row),
              arith::CmpIOp::create(
                  lb, ll, arith::CmpIPredicate::sgt, n,
                  arith::ConstantIntOp::create(lb, ll, 0, 32)));
          scf::YieldOp::create(
              lb, ll,
              Value(arith::SelectOp::create(lb, ll, holds, c, found[0])));
        });
    Value c = find.getResult(0);
    Value expert = toI32(nb, nl, e);
    // The wanted occurrence, counted down; the token where it reaches -1.
    Value rank = arith::SubIOp::create(
        nb, nl, row,
        tensor::ExtractOp::create(nb, nl, chunkStart, ValueRange{c, e}));
    auto [first, n] = chunkTokens(nb, nl, c);
    Value minusOne = arith::ConstantIntOp::create(nb, nl, -1, 32);
    Value zero = arith::ConstantIntOp::create(nb, nl, 0, 32);
    ValueRange state = scanSlots(
        nb, nl, first, n, ValueRange{rank, zero},
        [&](OpBuilder &sb, Location sl, Value t, Value k,
            ValueRange st) -> SmallVector<Value> {
          Value hit = isExpert(sb, sl, t, k, expert);
          Value left = arith::SubIOp::create(
              sb, sl, st[0], arith::ExtUIOp::create(sb, sl, i32, hit));
          Value here = arith::AndIOp::create(
              sb, sl, hit,
              arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::eq, left,
                                    minusOne));
          Value token =
              arith::SelectOp::create(sb, sl, here, toI32(sb, sl, t), st[1]);
          return {left, token};
        });
    return state[1];
  }

  /// rows[r] = tokens[rowToToken[r]].
  Value gatherRows(Value numRows, Value rowToToken) {
    OpFoldResult width = tensor::getMixedSize(b, loc, op.getTokens(), 1);
    Value init = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{numRows, width},
        cast<RankedTensorType>(op.getTokens().getType()).getElementType());
    return linalg::GenericOp::create(
               b, loc, init.getType(), ValueRange{rowToToken}, ValueRange{init},
               ArrayRef<AffineMap>{projectionMap(ctx, 2, {0}),
                                   projectionMap(ctx, 2, {0, 1})},
               ArrayRef<utils::IteratorType>{kParallel, kParallel},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value t = toIndex(nb, nl, a[0]);
                 Value d = linalg::IndexOp::create(nb, nl, 1);
                 linalg::YieldOp::create(
                     nb, nl,
                     Value(tensor::ExtractOp::create(nb, nl, op.getTokens(),
                                                     ValueRange{t, d})));
               })
        .getResult(0);
  }

  OpBuilder &b;
  Location loc;
  MLIRContext *ctx;
  DispatchOp op;
  bool staticRowBound;
  Type i32;
  Value ids, counts;
  int64_t numExperts, slots;
  Value numChunks, numTokens;
};

struct DispatchLowering : OpRewritePattern<DispatchOp> {
  DispatchLowering(MLIRContext *ctx, bool staticRowBound)
      : OpRewritePattern(ctx), staticRowBound(staticRowBound) {}

  LogicalResult matchAndRewrite(DispatchOp op,
                                PatternRewriter &rewriter) const override {
    int64_t slots =
        cast<RankedTensorType>(op.getExpertIds().getType()).getDimSize(1);
    if (ShapedType::isDynamic(slots))
      return rewriter.notifyMatchFailure(op, "needs a static slot count");
    SmallVector<Value> results =
        DispatchBuilder(rewriter, op, staticRowBound).build();
    for (auto [value, type] : llvm::zip_equal(results, op.getResultTypes()))
      value = castToType(rewriter, op.getLoc(), value, type);
    rewriter.replaceOp(op, results);
    return success();
  }

  bool staticRowBound;
};

} // namespace

void mlir::moe::populateDispatchToLinalgPatterns(RewritePatternSet &patterns,
                                                 bool staticRowBound) {
  patterns.add<DispatchLowering>(patterns.getContext(), staticRowBound);
}

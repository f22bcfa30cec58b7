//===- ConvertMoeToLinalg.cpp - moe kernel ops to linalg ------------------===//
//
// Target-independent lowering of the moe kernel ops to linalg on tensors. The
// generics are written so that every access but the weight (or row) gather is
// affine; the gather is a tensor.extract inside the body, which bufferizes to
// a plain load on both the CPU and the GPU.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

auto kParallel = utils::IteratorType::parallel;
auto kReduction = utils::IteratorType::reduction;

/// Elementwise `f32 -> elementType` over a 2-D accumulator, or the
/// accumulator itself when it already has that type.
Value castAccumulator(OpBuilder &b, Location loc, Value acc, Type resultType) {
  auto type = cast<RankedTensorType>(resultType);
  if (type.getElementType().isF32())
    return acc;
  Value init = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, acc), type.getElementType());
  AffineMap id = b.getMultiDimIdentityMap(2);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{acc}, ValueRange{init},
             ArrayRef<AffineMap>{id, id},
             ArrayRef<utils::IteratorType>{kParallel, kParallel},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(
                   nb, nl,
                   truncateFromF32(nb, nl, args[0], type.getElementType()));
             })
      .getResult(0);
}

//===----------------------------------------------------------------------===//
// moe.grouped_matmul
//===----------------------------------------------------------------------===//

struct GroupedMatmulLowering : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value input = op.getInput(), weight = op.getWeight();
    Value upWeight = op.getUpWeight(), scale = op.getRowScale();
    int64_t numGroups = op.getNumGroups();
    if (ShapedType::isDynamic(numGroups))
      return rewriter.notifyMatchFailure(op, "needs a static group count");

    OpFoldResult rows = tensor::getMixedSize(rewriter, loc, input, 0);
    OpFoldResult cols = tensor::getMixedSize(rewriter, loc, weight, 1);

    Value groups =
        groupOfRows(rewriter, loc, op.getGroupOffsets(), numGroups, rows);

    // Products over (row, n, k), reading weight[group(row), n, k].
    SmallVector<Value> accs{
        filledTensor(rewriter, loc, {rows, cols}, rewriter.getF32FloatAttr(0))};
    if (upWeight)
      accs.push_back(accs.front());
    SmallVector<AffineMap> maps{projectionMap(ctx, 3, {0, 2}),
                                projectionMap(ctx, 3, {0})};
    maps.append(accs.size(), projectionMap(ctx, 3, {0, 1}));
    SmallVector<Type> accTypes(accs.size(), accs.front().getType());
    auto products = linalg::GenericOp::create(
        rewriter, loc, accTypes, ValueRange{input, groups}, accs, maps,
        ArrayRef<utils::IteratorType>{kParallel, kParallel, kReduction},
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value n = linalg::IndexOp::create(b, l, 1);
          Value k = linalg::IndexOp::create(b, l, 2);
          // Clamp so that malformed offsets cannot read out of bounds.
          Value g = arith::MinUIOp::create(
              b, l, args[1],
              arith::ConstantIntOp::create(b, l, numGroups - 1, 32));
          Value gi = arith::IndexCastUIOp::create(b, l, b.getIndexType(), g);
          Value x = extendToF32(b, l, args[0]);
          SmallVector<Value> results;
          for (auto [i, w] :
               llvm::enumerate(upWeight ? SmallVector<Value>{weight, upWeight}
                                        : SmallVector<Value>{weight})) {
            Value wv = extendToF32(
                b, l, tensor::ExtractOp::create(b, l, w, ValueRange{gi, n, k}));
            Value prod = arith::MulFOp::create(b, l, x, wv);
            results.push_back(arith::AddFOp::create(b, l, args[2 + i], prod));
          }
          linalg::YieldOp::create(b, l, results);
        });

    auto resultType = cast<RankedTensorType>(op.getType());
    bool swiglu = op.getEpilogue() == Epilogue::swiglu;
    if (!swiglu && !scale) {
      Value result =
          castAccumulator(rewriter, loc, products.getResult(0), resultType);
      rewriter.replaceOp(op, castToType(rewriter, loc, result, resultType));
      return success();
    }

    // Epilogue over (row, n): silu(gate) * up, then the row scale.
    AffineMap id = rewriter.getMultiDimIdentityMap(2);
    SmallVector<Value> ins(products.getResults());
    SmallVector<AffineMap> epilogueMaps(ins.size(), id);
    if (scale) {
      ins.push_back(scale);
      epilogueMaps.push_back(projectionMap(ctx, 2, {0}));
    }
    Value init = tensor::EmptyOp::create(
        rewriter, loc, tensor::getMixedSizes(rewriter, loc, ins.front()),
        resultType.getElementType());
    epilogueMaps.push_back(id);
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, init.getType(), ins, ValueRange{init}, epilogueMaps,
            ArrayRef<utils::IteratorType>{kParallel, kParallel},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value v = args[0];
              if (swiglu) {
                v = buildSwiglu(b, l, v, args[1]);
              }
              if (scale)
                v = arith::MulFOp::create(b, l, v, args[swiglu ? 2 : 1]);
              linalg::YieldOp::create(
                  b, l, truncateFromF32(b, l, v, resultType.getElementType()));
            })
            .getResult(0);
    rewriter.replaceOp(op, castToType(rewriter, loc, result, resultType));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.tile_schedule
//===----------------------------------------------------------------------===//

/// Two sequential scans over the groups: the first counts the tiles to size
/// the result, the second writes them. Both cost O(G + tiles), next to
/// nothing beside the GEMM the tiles describe, so a parallel scan would not
/// pay for itself at today's group counts.
struct TileScheduleLowering : OpRewritePattern<TileScheduleOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TileScheduleOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value offsets = op.getGroupOffsets();
    Type i32 = b.getI32Type();
    Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
    Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
    Value numGroups = arith::ConstantIndexOp::create(b, loc, op.getNumGroups());
    Value tileRows = arith::ConstantIndexOp::create(b, loc, op.getTileRows());

    // First row and row count of group g; decreasing (malformed) offsets
    // make an empty group rather than a negative tile count.
    auto groupRows = [&](OpBuilder &nb, Location nl,
                         Value g) -> std::pair<Value, Value> {
      auto offset = [&](Value i) -> Value {
        return arith::IndexCastOp::create(
            nb, nl, nb.getIndexType(),
            tensor::ExtractOp::create(nb, nl, offsets, ValueRange{i}));
      };
      Value first = offset(g);
      Value last = offset(arith::AddIOp::create(nb, nl, g, c1));
      Value rows = arith::MaxSIOp::create(
          nb, nl, arith::SubIOp::create(nb, nl, last, first), c0);
      return {first, rows};
    };
    // ceil(rows / tileRows), rows >= 0.
    auto tilesOf = [&](OpBuilder &nb, Location nl, Value rows) -> Value {
      Value up = arith::AddIOp::create(
          nb, nl, rows, arith::SubIOp::create(nb, nl, tileRows, c1));
      return arith::DivUIOp::create(nb, nl, up, tileRows);
    };

    auto count = scf::ForOp::create(
        b, loc, c0, numGroups, c1, ValueRange{c0},
        [&](OpBuilder &nb, Location nl, Value g, ValueRange acc) {
          Value tiles = tilesOf(nb, nl, groupRows(nb, nl, g).second);
          scf::YieldOp::create(
              nb, nl, ValueRange{arith::AddIOp::create(nb, nl, acc[0], tiles)});
        });
    Value init = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{count.getResult(0), b.getIndexAttr(3)},
        i32);
    auto fill = scf::ForOp::create(
        b, loc, c0, numGroups, c1, ValueRange{c0, init},
        [&](OpBuilder &gb, Location gl, Value g, ValueRange state) {
          Value first, rows;
          std::tie(first, rows) = groupRows(gb, gl, g);
          Value tiles = tilesOf(gb, gl, rows);
          Value group = arith::IndexCastOp::create(gb, gl, i32, g);
          auto inner = scf::ForOp::create(
              gb, gl, c0, tiles, c1, ValueRange{state[1]},
              [&](OpBuilder &tb, Location tl, Value j, ValueRange out) {
                // Tile j of t: rows / t rows, one more for the first
                // rows % t tiles.
                Value base = arith::DivUIOp::create(tb, tl, rows, tiles);
                Value extra = arith::RemUIOp::create(tb, tl, rows, tiles);
                Value start = arith::AddIOp::create(
                    tb, tl, first,
                    arith::AddIOp::create(
                        tb, tl, arith::MulIOp::create(tb, tl, j, base),
                        arith::MinUIOp::create(tb, tl, j, extra)));
                Value longer = arith::CmpIOp::create(
                    tb, tl, arith::CmpIPredicate::ult, j, extra);
                Value size = arith::SelectOp::create(
                    tb, tl, longer, arith::AddIOp::create(tb, tl, base, c1),
                    base);
                Value tile = arith::AddIOp::create(tb, tl, state[0], j);
                Value result = out[0];
                int64_t column = 0;
                for (Value field : {group, start, size}) {
                  if (field.getType() != i32)
                    field = arith::IndexCastOp::create(tb, tl, i32, field);
                  Value c = arith::ConstantIndexOp::create(tb, tl, column++);
                  result = tensor::InsertOp::create(tb, tl, field, result,
                                                    ValueRange{tile, c});
                }
                scf::YieldOp::create(tb, tl, result);
              });
          Value next = arith::AddIOp::create(gb, gl, state[0], tiles);
          scf::YieldOp::create(gb, gl, ValueRange{next, inner.getResult(0)});
        });
    rewriter.replaceOp(
        op, castToType(rewriter, loc, fill.getResult(1), op.getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

struct CombineLowering : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value rows = op.getRows();
    OpFoldResult tokens =
        tensor::getMixedSize(rewriter, loc, op.getSlotToRow(), 0);
    OpFoldResult width = tensor::getMixedSize(rewriter, loc, rows, 1);
    Value acc = filledTensor(rewriter, loc, {tokens, width},
                             rewriter.getF32FloatAttr(0));

    // Iterate (token, d, slot); the slot dimension reduces.
    auto map3 = [&](ArrayRef<unsigned> dims) {
      return projectionMap(ctx, 3, dims);
    };
    // Without weights, the rows already carry them.
    Value weights = op.getWeights();
    SmallVector<Value> ins{op.getSlotToRow(), op.getCounts()};
    SmallVector<AffineMap> maps{map3({0, 2}), map3({0})};
    if (weights) {
      ins.push_back(weights);
      maps.push_back(map3({0, 2}));
    }
    maps.push_back(map3({0, 1}));
    Value sum =
        linalg::GenericOp::create(
            rewriter, loc, acc.getType(), ins, ValueRange{acc}, maps,
            ArrayRef<utils::IteratorType>{kParallel, kParallel, kReduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value row = args[0], count = args[1];
              Value weight = weights ? args[2] : Value();
              Value partial = args.back();
              Value d = linalg::IndexOp::create(b, l, 1);
              Value slot = arith::IndexCastOp::create(
                  b, l, b.getI32Type(), linalg::IndexOp::create(b, l, 2));
              Value used = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::slt, slot, count);
              // Unused slots hold row -1: never read through them.
              auto ifOp = scf::IfOp::create(
                  b, l, used,
                  [&](OpBuilder &tb, Location tl) {
                    Value r = arith::IndexCastOp::create(
                        tb, tl, tb.getIndexType(), row);
                    Value v = extendToF32(tb, tl,
                                          tensor::ExtractOp::create(
                                              tb, tl, rows, ValueRange{r, d}));
                    if (weight)
                      v = arith::MulFOp::create(tb, tl, weight, v);
                    scf::YieldOp::create(
                        tb, tl,
                        Value(arith::AddFOp::create(tb, tl, partial, v)));
                  },
                  [&](OpBuilder &eb, Location el) {
                    scf::YieldOp::create(eb, el, partial);
                  });
              linalg::YieldOp::create(b, l, ifOp.getResult(0));
            })
            .getResult(0);
    Value result = castAccumulator(rewriter, loc, sum, op.getType());
    rewriter.replaceOp(op, castToType(rewriter, loc, result, op.getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.row_weights
//===----------------------------------------------------------------------===//

/// A generic over (row, slot) that keeps the weight of the slot of the row's
/// token that points back at the row.
struct RowWeightsLowering : OpRewritePattern<RowWeightsOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RowWeightsOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpFoldResult rows =
        tensor::getMixedSize(rewriter, loc, op.getRowToToken(), 0);
    Value acc =
        filledTensor(rewriter, loc, {rows}, rewriter.getF32FloatAttr(0));
    Value weights = op.getWeights(), slotToRow = op.getSlotToRow();
    // The (row, slot) loop nest needs an operand indexed by the slot to
    // bound it: an empty [K] tensor, of a static or dynamic K.
    Value slots = tensor::EmptyOp::create(
        rewriter, loc,
        ArrayRef<OpFoldResult>{tensor::getMixedSize(rewriter, loc, weights, 1)},
        rewriter.getI32Type());
    MLIRContext *ctx = op.getContext();
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, acc.getType(), ValueRange{op.getRowToToken(), slots},
            ValueRange{acc},
            ArrayRef<AffineMap>{projectionMap(ctx, 2, {0}),
                                projectionMap(ctx, 2, {1}),
                                projectionMap(ctx, 2, {0})},
            ArrayRef<utils::IteratorType>{kParallel, kReduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value token =
                  arith::IndexCastOp::create(b, l, b.getIndexType(), args[0]);
              Value row = linalg::IndexOp::create(b, l, 0);
              Value slot = linalg::IndexOp::create(b, l, 1);
              Value target = tensor::ExtractOp::create(b, l, slotToRow,
                                                       ValueRange{token, slot});
              Value mine = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::eq, target,
                  arith::IndexCastOp::create(b, l, b.getI32Type(), row));
              Value w = tensor::ExtractOp::create(b, l, weights,
                                                  ValueRange{token, slot});
              linalg::YieldOp::create(
                  b, l, Value(arith::SelectOp::create(b, l, mine, w, args[2])));
            })
            .getResult(0);
    rewriter.replaceOp(op, castToType(rewriter, loc, result, op.getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.split_tokens / moe.merge_tokens
//===----------------------------------------------------------------------===//

/// Both are a reshape through [T, heads, D / heads].
template <typename OpTy, bool isSplit>
struct TokenReshapeLowering : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto inType = cast<RankedTensorType>(op.getInput().getType());
    int64_t heads = op.getHeads();
    SmallVector<ReassociationIndices> splitLast{{0}, {1, 2}};
    SmallVector<ReassociationIndices> splitFirst{{0, 1}, {2}};
    Value result;
    if (isSplit) {
      // [T, D] -> [T, h, D/h] -> [T*h, D/h]
      int64_t d = inType.getDimSize(1);
      auto midType = RankedTensorType::get(
          {inType.getDimSize(0), heads, d / heads}, inType.getElementType());
      SmallVector<OpFoldResult> midSizes{
          tensor::getMixedSize(rewriter, loc, op.getInput(), 0),
          rewriter.getIndexAttr(heads), rewriter.getIndexAttr(d / heads)};
      Value mid = tensor::ExpandShapeOp::create(
          rewriter, loc, midType, op.getInput(), splitLast, midSizes);
      result = tensor::CollapseShapeOp::create(rewriter, loc, mid, splitFirst);
    } else {
      // [T*h, d] -> [T, h, d] -> [T, h*d]
      int64_t s = inType.getDimSize(0), w = inType.getDimSize(1);
      int64_t t = ShapedType::isDynamic(s) ? ShapedType::kDynamic : s / heads;
      auto midType =
          RankedTensorType::get({t, heads, w}, inType.getElementType());
      OpFoldResult subTokens =
          tensor::getMixedSize(rewriter, loc, op.getInput(), 0);
      AffineExpr s0 = rewriter.getAffineSymbolExpr(0);
      OpFoldResult tokens = affine::makeComposedFoldedAffineApply(
          rewriter, loc, s0.floorDiv(heads), {subTokens});
      SmallVector<OpFoldResult> midSizes{tokens, rewriter.getIndexAttr(heads),
                                         rewriter.getIndexAttr(w)};
      Value mid = tensor::ExpandShapeOp::create(
          rewriter, loc, midType, op.getInput(), splitFirst, midSizes);
      result = tensor::CollapseShapeOp::create(rewriter, loc, mid, splitLast);
    }
    rewriter.replaceOp(op, castToType(rewriter, loc, result, op.getType()));
    return success();
  }
};

/// A weight as a tensor: `bufferization.to_tensor restrict` of the weight's
/// buffer (the memref form of moe.weight), not writable, so bufferization
/// reads the table entry in place and copies before any write.
struct WeightLowering : OpRewritePattern<WeightOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(WeightOp op,
                                PatternRewriter &rewriter) const override {
    auto type = dyn_cast<RankedTensorType>(op.getType());
    if (!type)
      return failure();
    Value buffer = WeightOp::create(
        rewriter, op.getLoc(),
        MemRefType::get(type.getShape(), type.getElementType()), op.getTable(),
        op.getSlot(), op.getName());
    rewriter.replaceOpWithNewOp<bufferization::ToTensorOp>(
        op, type, buffer, /*restrict=*/true, /*writable=*/false);
    return success();
  }
};

struct ConvertMoeToLinalgPass
    : moe::impl::ConvertMoeToLinalgBase<ConvertMoeToLinalgPass> {
  using ConvertMoeToLinalgBase::ConvertMoeToLinalgBase;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    populateMoeToLinalgConversionPatterns(patterns, staticRowBound);
    ConversionTarget target(*ctx);
    target.addIllegalDialect<MoeDialect>();
    // Weights stay, as buffers; the LLVM lowering reads them from the table.
    target.addDynamicallyLegalOp<WeightOp>(
        [](WeightOp op) { return isa<MemRefType>(op.getType()); });
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns)))) {
      signalPassFailure();
      return;
    }

    // The math ops the lowerings marked, as inline polynomials.
    RewritePatternSet approximations(ctx);
    populateMathPolynomialApproximationPatterns(approximations);
    FrozenRewritePatternSet frozen(std::move(approximations));
    // The walk driver rewrites what a root holds, so each marked op's parent
    // is the root; the lowerings mark only ops whose parent holds no other
    // math op.
    llvm::SetVector<Operation *> parents;
    getOperation()->walk([&](Operation *op) {
      if (op->hasAttr(kApproximateAttrName))
        parents.insert(op->getParentOp());
    });
    for (Operation *parent : parents) {
      walkAndApplyPatterns(parent, frozen);
      contractFmas(parent);
    }
  }
};

} // namespace

void mlir::moe::populateMoeToLinalgConversionPatterns(
    RewritePatternSet &patterns, bool staticRowBound) {
  populateDispatchToLinalgPatterns(patterns, staticRowBound);
  patterns.add<GroupedMatmulLowering, TileScheduleLowering, CombineLowering,
               RowWeightsLowering, WeightLowering,
               TokenReshapeLowering<SplitTokensOp, true>,
               TokenReshapeLowering<MergeTokensOp, false>>(
      patterns.getContext());
  populateAttentionToLinalgPatterns(patterns);
}

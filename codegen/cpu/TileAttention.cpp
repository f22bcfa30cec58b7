//===- TileAttention.cpp - blocked attention kernel for the CPU ----------===//
//
// The CPU lowering of moe.attention and moe.grouped_attention: flash-style
// attention on tiles. A work item is a block of query positions times some
// heads of one GQA group (#moe.attention_kernel, chosen per target by
// moe-select-cpu-kernels); its query rows are the lanes of every vector, so
// the online softmax runs on whole vectors and no horizontal reduction
// exists. Per block of keys:
//
//   scores  S[j, r] = K[j, :] . Q[r, :] / sqrt(Dh)   a register-blocked GEMM
//   softmax m' = max(m, max_j S), P = exp(S - m'), l = l e^(m - m') + sum_j P
//   values  O[d, r] = O[d, r] e^(m - m') + sum_j V[j, d] P[j, r]   another
//
// Both GEMMs broadcast one element of a key or value row and multiply it
// with row vectors of the transposed queries or of P, so each key and value
// element loaded serves every query row of the item. Keys outside a row's
// range (causal, sliding window, GMHA's group) score -inf, so the blocks on
// the diagonal need no separate path. Rows past T repeat the last position
// and are not stored.
//
//===----------------------------------------------------------------------===//

#include "codegen/AttentionUtils.h"
#include "codegen/Passes.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <cmath>
#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_TILEATTENTION
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

Value indexConstant(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// The online softmax of a work item's rows: per row vector the running
/// max and sum, and the f32 accumulators as a transposed tile [Dh, rows].
struct RowState {
  SmallVector<Value> max, sum;
  Value out;
};

/// Which keys each row keeps: lo <= j <= hi, per row vector (i32 lanes).
struct RowBounds {
  SmallVector<Value> lo, hi;
};

/// Builds the kernel of one attention op.
class AttentionKernel {
public:
  AttentionKernel(OpBuilder &b, Location loc, Operation *op,
                  AttentionKernelAttr shape)
      : b(b), loc(loc), op(op), range(AttentionKeyRange::of(op)),
        heads(shape.getHeadsPerStep()), positions(shape.getQueryBlock()),
        keyBlock(shape.getKeyBlock()), microRows(shape.getMicroRows()),
        lanes(shape.getVectorWidth()), rows(shape.getQueryRows()) {
    query = op->getOperand(0);
    key = op->getOperand(1);
    value = op->getOperand(2);
    auto qType = cast<RankedTensorType>(query.getType());
    numHeads = qType.getDimSize(2);
    headDim = qType.getDimSize(3);
    group = numHeads / cast<RankedTensorType>(key.getType()).getDimSize(2);
    f32 = b.getF32Type();
    vecType = VectorType::get({lanes}, f32);
    maskType = VectorType::get({lanes}, b.getI32Type());
  }

  /// The attention output, [B, T, H, Dh] in the op's element type, and the
  /// loop that computes it.
  std::pair<Value, Operation *> build();

private:
  int64_t rowVectors() const { return rows / lanes; }

  Value index(int64_t v) { return indexConstant(b, loc, v); }

  Value splat(OpBuilder &vb, Location vl, double v) {
    return arith::ConstantOp::create(
        vb, vl, DenseElementsAttr::get(vecType, vb.getF32FloatAttr(v)));
  }

  /// The state before any key: max -inf, sum 0, accumulators 0.
  RowState initialState();

  /// Which keys each row keeps: its local keys lo(p) <= j <= p, where lo is
  /// the window's start and, for GMHA, its group's; and GMHA's summaries,
  /// the groups before the row's (c <= p / G - 1).
  std::pair<RowBounds, RowBounds> rowBounds(Value q0, Value lastToken);

  /// lo(p) for a position or a vector of them (i32 lanes). It grows with p,
  /// so a work item's keys start at its first row's.
  Value lowestKey(Value p);

  Value i32Vector(int64_t c) {
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(maskType, b.getI32IntegerAttr(c)));
  }

  /// The queries of the item, widened, as a transposed tile [Dh, rows]: row
  /// r is position q0 + r / heads (clamped to T - 1), head h0 + r % heads.
  Value packQueries(Value batch, Value q0, Value h0, Value lastToken);

  /// The positions of the rows of row vector `v` (i32 lanes), clamped to
  /// `lastToken`.
  Value rowPositions(int64_t v, Value q0, Value lastToken);

  /// Folds the keys j in [lo, hi) of `keys` / `values` ([B, *, KVH, Dh]) into
  /// `state`, each row keeping those within its `bounds`.
  RowState attendKeys(RowState state, Value keys, Value values, Value lo,
                      Value hi, const RowBounds &bounds);

  /// Scores of the key block at `j0` against the rows, into `scores`
  /// [keyBlock, rows], masked by `bounds`; also returns the block's max per
  /// row vector. Keys from `hi` on (a last, partial block) read key hi - 1
  /// and lie past every row's bound.
  std::pair<Value, SmallVector<Value>>
  scoreBlock(OpBuilder &sb, Location sl, Value keys, Value j0, Value hi,
             const RowBounds &bounds, Value scores);

  /// Adds the values of the key block at `j0` (clamped to hi - 1 as the
  /// keys are), weighted by `weights` [keyBlock, rows], to `out` [Dh, rows]
  /// after scaling it by `rescale`.
  Value accumulateValues(OpBuilder &vb, Location vl, Value values, Value j0,
                         Value hi, Value weights, ArrayRef<Value> rescale,
                         Value out);

  /// A register block of microRows x rowVectors accumulators, `inits`,
  /// plus sum over k in [0, count) of broadcast(a(i, k)) * b(k, v).
  SmallVector<Value>
  registerBlock(OpBuilder &rb, Location rl, Value count, ArrayRef<Value> inits,
                function_ref<Value(OpBuilder &, Location, int64_t, Value)> a,
                function_ref<Value(OpBuilder &, Location, Value, int64_t)> bv);

  /// Writes the normalised rows of `state` to `block` [1, valid, heads, Dh].
  Value writeRows(const RowState &state, Value block, Value valid);

  Value readScalar(OpBuilder &rb, Location rl, Value tensor,
                   ValueRange indices) {
    return extendToF32(rb, rl,
                       tensor::ExtractOp::create(rb, rl, tensor, indices));
  }

  Value readVector(OpBuilder &rb, Location rl, Value tensor, Value row,
                   int64_t v) {
    Value padding = arith::ConstantOp::create(rb, rl, rb.getF32FloatAttr(0));
    return vector::TransferReadOp::create(
        rb, rl, vecType, tensor,
        ValueRange{row, indexConstant(rb, rl, v * lanes)}, padding,
        ArrayRef<bool>{true});
  }

  Value writeVector(OpBuilder &wb, Location wl, Value vec, Value tensor,
                    Value row, int64_t v) {
    return vector::TransferWriteOp::create(
               wb, wl, vec, tensor,
               ValueRange{row, indexConstant(wb, wl, v * lanes)},
               ArrayRef<bool>{true})
        .getResult();
  }

  Value exp(OpBuilder &eb, Location el, Value x) {
    return math::ExpOp::create(eb, el, x);
  }

  OpBuilder &b;
  Location loc;
  Operation *op;
  AttentionKeyRange range;
  int64_t heads, positions, keyBlock, microRows, lanes, rows;
  Value query, key, value;
  // Of the work item being built: its batch, kv-head and transposed
  // queries [Dh, rows].
  Value batch, kvHead, queriesT;
  int64_t numHeads, headDim, group;
  Type f32;
  VectorType vecType, maskType;
};

std::pair<Value, Operation *> AttentionKernel::build() {
  Value keyMeans, valueMeans;
  if (range.groupSize)
    std::tie(keyMeans, valueMeans) =
        buildGroupMeans(b, loc, key, value, *range.groupSize);

  auto resultType = cast<RankedTensorType>(op->getResult(0).getType());
  SmallVector<OpFoldResult> outSizes = tensor::getMixedSizes(b, loc, query);
  Value init =
      tensor::EmptyOp::create(b, loc, outSizes, resultType.getElementType());
  Value tokens = getValueOrCreateConstantIndexOp(b, loc, outSizes[1]);
  Value numBlocks =
      arith::CeilDivUIOp::create(b, loc, tokens, index(positions));
  SmallVector<OpFoldResult> ubs{outSizes[0], numBlocks,
                                b.getIndexAttr(numHeads / heads)};
  auto forall = scf::ForallOp::create(b, loc, ubs, ValueRange{init},
                                      /*mapping=*/std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  batch = forall.getInductionVar(0);
  Value blockIndex =
      balancedCausalIndex(b, loc, forall.getInductionVar(1), numBlocks);
  Value q0 = arith::MulIOp::create(b, loc, blockIndex, index(positions));
  Value h0 =
      arith::MulIOp::create(b, loc, forall.getInductionVar(2), index(heads));
  kvHead = arith::DivUIOp::create(b, loc, h0, index(group));
  Value valid = arith::MinUIOp::create(
      b, loc, index(positions), arith::SubIOp::create(b, loc, tokens, q0));
  Value lastToken = arith::SubIOp::create(
      b, loc, arith::AddIOp::create(b, loc, q0, valid), index(1));

  queriesT = packQueries(batch, q0, h0, lastToken);

  RowState state = initialState();
  auto [local, summaries] = rowBounds(q0, lastToken);
  Value hi = arith::AddIOp::create(b, loc, lastToken, index(1));
  state = attendKeys(state, key, value, lowestKey(q0), hi, local);
  if (range.groupSize)
    state = attendKeys(
        state, keyMeans, valueMeans, index(0),
        arith::DivUIOp::create(b, loc, lastToken, index(*range.groupSize)),
        summaries);

  Value shared = forall.getRegionIterArgs()[0];
  SmallVector<OpFoldResult> offsets{batch, q0, h0, b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes{
      b.getIndexAttr(1), valid, b.getIndexAttr(heads), b.getIndexAttr(headDim)};
  SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
  Value block =
      tensor::ExtractSliceOp::create(b, loc, shared, offsets, sizes, strides);
  block = writeRows(state, block, valid);

  b.setInsertionPointToStart(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(b, loc, block, shared, offsets, sizes,
                                        strides);
  return {forall.getResult(0), forall};
}

RowState AttentionKernel::initialState() {
  RowState state;
  for (int64_t v = 0; v < rowVectors(); ++v) {
    state.max.push_back(
        splat(b, loc, -std::numeric_limits<double>::infinity()));
    state.sum.push_back(splat(b, loc, 0));
  }
  Value out =
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{headDim, rows}, f32);
  state.out = scf::ForOp::create(
                  b, loc, index(0), index(headDim), index(1), ValueRange{out},
                  [&](OpBuilder &zb, Location zl, Value d, ValueRange args) {
                    Value tile = args[0];
                    for (int64_t v = 0; v < rowVectors(); ++v)
                      tile = writeVector(zb, zl, splat(zb, zl, 0), tile, d, v);
                    scf::YieldOp::create(zb, zl, tile);
                  })
                  .getResult(0);
  return state;
}
std::pair<RowBounds, RowBounds> AttentionKernel::rowBounds(Value q0,
                                                           Value lastToken) {
  RowBounds local, summaries;
  for (int64_t v = 0; v < rowVectors(); ++v) {
    Value p = rowPositions(v, q0, lastToken);
    local.lo.push_back(lowestKey(p));
    local.hi.push_back(p);
    if (range.groupSize) {
      // Summaries: the groups before the row's, c <= p / G - 1.
      summaries.lo.push_back(i32Vector(0));
      summaries.hi.push_back(arith::SubIOp::create(
          b, loc,
          arith::DivUIOp::create(b, loc, p, i32Vector(*range.groupSize)),
          i32Vector(1)));
    }
  }
  return {local, summaries};
}

Value AttentionKernel::lowestKey(Value p) {
  bool vector = isa<VectorType>(p.getType());
  auto constant = [&](int64_t c) { return vector ? i32Vector(c) : index(c); };
  Value lo = constant(0);
  if (range.groupSize) {
    Value g = constant(*range.groupSize);
    lo = arith::MulIOp::create(b, loc, arith::DivUIOp::create(b, loc, p, g), g);
  }
  if (range.window) {
    Value first = arith::SubIOp::create(b, loc, p, constant(*range.window - 1));
    lo = arith::MaxSIOp::create(b, loc, lo, first);
  }
  return lo;
}

Value AttentionKernel::packQueries(Value batch, Value q0, Value h0,
                                   Value lastToken) {
  Value tile =
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{headDim, rows}, f32);
  // Once per work item, against its whole key range: scalar moves suffice.
  auto loop = scf::ForOp::create(
      b, loc, index(0), index(rows), index(1), ValueRange{tile},
      [&](OpBuilder &rb, Location rl, Value r, ValueRange rowArgs) {
        Value p = arith::MinUIOp::create(
            rb, rl,
            arith::AddIOp::create(rb, rl, q0,
                                  arith::DivUIOp::create(
                                      rb, rl, r, indexConstant(rb, rl, heads))),
            lastToken);
        Value h = arith::AddIOp::create(
            rb, rl, h0,
            arith::RemUIOp::create(rb, rl, r, indexConstant(rb, rl, heads)));
        auto dims = scf::ForOp::create(
            rb, rl, indexConstant(rb, rl, 0), indexConstant(rb, rl, headDim),
            indexConstant(rb, rl, 1), rowArgs,
            [&](OpBuilder &db, Location dl, Value d, ValueRange args) {
              Value x = readScalar(db, dl, query, {batch, p, h, d});
              scf::YieldOp::create(
                  db, dl,
                  tensor::InsertOp::create(db, dl, x, args[0], ValueRange{d, r})
                      .getResult());
            });
        scf::YieldOp::create(rb, rl, dims.getResults());
      });
  return loop.getResult(0);
}

Value AttentionKernel::rowPositions(int64_t v, Value q0, Value lastToken) {
  SmallVector<int32_t> offsets;
  for (int64_t l = 0; l < lanes; ++l)
    offsets.push_back(static_cast<int32_t>((v * lanes + l) / heads));
  Value offsetVec = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(maskType, ArrayRef<int32_t>(offsets)));
  auto splatIndex = [&](Value i) {
    Value i32 = arith::IndexCastOp::create(b, loc, b.getI32Type(), i);
    return vector::BroadcastOp::create(b, loc, maskType, i32).getResult();
  };
  Value p = arith::AddIOp::create(b, loc, splatIndex(q0), offsetVec);
  return arith::MinSIOp::create(b, loc, p, splatIndex(lastToken));
}

RowState AttentionKernel::attendKeys(RowState state, Value keys, Value values,
                                     Value lo, Value hi,
                                     const RowBounds &bounds) {
  int64_t nv = rowVectors();
  SmallVector<Value> inits(state.max);
  llvm::append_range(inits, state.sum);
  inits.push_back(state.out);
  inits.push_back(
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{keyBlock, rows}, f32));
  auto loop = scf::ForOp::create(
      b, loc, lo, hi, index(keyBlock), inits,
      [&](OpBuilder &kb, Location kl, Value j0, ValueRange args) {
        // Whole blocks, so that every loop has a static trip count: a last,
        // partial block weighs its missing keys by exp(-inf) = 0.
        auto [scores, blockMax] =
            scoreBlock(kb, kl, keys, j0, hi, bounds, args[2 * nv + 1]);
        // A row whose keys so far are all masked keeps max -inf; it then
        // subtracts 0, so that its weights and rescale are exp(-inf) = 0
        // rather than NaN.
        Value negInf = splat(kb, kl, -std::numeric_limits<double>::infinity());
        SmallVector<Value> maxes, offsets, rescale;
        for (int64_t v = 0; v < nv; ++v) {
          Value m = arith::MaximumFOp::create(kb, kl, args[v], blockMax[v]);
          Value empty = arith::CmpFOp::create(kb, kl, arith::CmpFPredicate::OEQ,
                                              m, negInf);
          Value offset =
              arith::SelectOp::create(kb, kl, empty, splat(kb, kl, 0), m);
          maxes.push_back(m);
          offsets.push_back(offset);
          rescale.push_back(
              exp(kb, kl, arith::SubFOp::create(kb, kl, args[v], offset)));
        }
        // P = exp(S - m') in place of the scores, and its sums.
        SmallVector<Value> weightInits{scores};
        for (int64_t v = 0; v < nv; ++v)
          weightInits.push_back(splat(kb, kl, 0));
        auto weights = scf::ForOp::create(
            kb, kl, indexConstant(kb, kl, 0), indexConstant(kb, kl, keyBlock),
            indexConstant(kb, kl, 1), weightInits,
            [&](OpBuilder &wb, Location wl, Value j, ValueRange wargs) {
              Value tile = wargs[0];
              SmallVector<Value> yields;
              for (int64_t v = 0; v < nv; ++v) {
                Value s = readVector(wb, wl, tile, j, v);
                Value p =
                    exp(wb, wl, arith::SubFOp::create(wb, wl, s, offsets[v]));
                tile = writeVector(wb, wl, p, tile, j, v);
                yields.push_back(
                    arith::AddFOp::create(wb, wl, wargs[1 + v], p));
              }
              yields.insert(yields.begin(), tile);
              scf::YieldOp::create(wb, wl, yields);
            });
        SmallVector<Value> yields(maxes);
        for (int64_t v = 0; v < nv; ++v)
          yields.push_back(multiplyAdd(kb, kl, args[nv + v], rescale[v],
                                       weights.getResult(1 + v)));
        yields.push_back(accumulateValues(kb, kl, values, j0, hi,
                                          weights.getResult(0), rescale,
                                          args[2 * nv]));
        yields.push_back(weights.getResult(0));
        scf::YieldOp::create(kb, kl, yields);
      });
  RowState next;
  next.max.assign(loop.getResults().begin(), loop.getResults().begin() + nv);
  next.sum.assign(loop.getResults().begin() + nv,
                  loop.getResults().begin() + 2 * nv);
  next.out = loop.getResult(2 * nv);
  return next;
}

std::pair<Value, SmallVector<Value>>
AttentionKernel::scoreBlock(OpBuilder &sb, Location sl, Value keys, Value j0,
                            Value hi, const RowBounds &bounds, Value scores) {
  int64_t nv = rowVectors();
  Value scale = splat(sb, sl, 1.0 / std::sqrt(double(headDim)));
  Value negInf = splat(sb, sl, -std::numeric_limits<double>::infinity());
  SmallVector<Value> inits{scores};
  for (int64_t v = 0; v < nv; ++v)
    inits.push_back(negInf);
  Value lastKey = arith::SubIOp::create(sb, sl, hi, indexConstant(sb, sl, 1));
  auto loop = scf::ForOp::create(
      sb, sl, indexConstant(sb, sl, 0), indexConstant(sb, sl, keyBlock),
      indexConstant(sb, sl, microRows), inits,
      [&](OpBuilder &mb, Location ml, Value k0, ValueRange args) {
        SmallVector<Value> keyIds, keyIdsI32;
        for (int64_t i = 0; i < microRows; ++i) {
          Value j = arith::AddIOp::create(
              mb, ml, j0,
              arith::AddIOp::create(mb, ml, k0, indexConstant(mb, ml, i)));
          keyIds.push_back(arith::MinUIOp::create(mb, ml, j, lastKey));
          keyIdsI32.push_back(vector::BroadcastOp::create(
              mb, ml, maskType,
              arith::IndexCastOp::create(mb, ml, mb.getI32Type(), j)));
        }
        SmallVector<Value> zeros(microRows * nv, splat(mb, ml, 0));
        SmallVector<Value> sums = registerBlock(
            mb, ml, indexConstant(mb, ml, headDim), zeros,
            [&](OpBuilder &ab, Location al, int64_t i, Value d) {
              return readScalar(ab, al, keys, {batch, keyIds[i], kvHead, d});
            },
            [&](OpBuilder &bb, Location bl, Value d, int64_t v) {
              return readVector(bb, bl, queriesT, d, v);
            });
        Value tile = args[0];
        SmallVector<Value> maxes(args.drop_front());
        for (int64_t i = 0; i < microRows; ++i) {
          Value row =
              arith::AddIOp::create(mb, ml, k0, indexConstant(mb, ml, i));
          for (int64_t v = 0; v < nv; ++v) {
            Value s = arith::MulFOp::create(mb, ml, sums[i * nv + v], scale);
            Value keep = arith::AndIOp::create(
                mb, ml,
                arith::CmpIOp::create(mb, ml, arith::CmpIPredicate::sle,
                                      bounds.lo[v], keyIdsI32[i]),
                arith::CmpIOp::create(mb, ml, arith::CmpIPredicate::sle,
                                      keyIdsI32[i], bounds.hi[v]));
            s = arith::SelectOp::create(mb, ml, keep, s, negInf);
            maxes[v] = arith::MaximumFOp::create(mb, ml, maxes[v], s);
            tile = writeVector(mb, ml, s, tile, row, v);
          }
        }
        SmallVector<Value> yields{tile};
        llvm::append_range(yields, maxes);
        scf::YieldOp::create(mb, ml, yields);
      });
  SmallVector<Value> maxes(loop.getResults().drop_front());
  return {loop.getResult(0), maxes};
}

Value AttentionKernel::accumulateValues(OpBuilder &vb, Location vl,
                                        Value values, Value j0, Value hi,
                                        Value weights, ArrayRef<Value> rescale,
                                        Value out) {
  int64_t nv = rowVectors();
  // The rescale first, in a pass of its own: inside the register blocks'
  // loop it would keep row vectors live beside the accumulators.
  out = scf::ForOp::create(
            vb, vl, indexConstant(vb, vl, 0), indexConstant(vb, vl, headDim),
            indexConstant(vb, vl, 1), ValueRange{out},
            [&](OpBuilder &rb, Location rl, Value d, ValueRange args) {
              Value tile = args[0];
              for (int64_t v = 0; v < nv; ++v)
                tile = writeVector(
                    rb, rl,
                    arith::MulFOp::create(
                        rb, rl, readVector(rb, rl, tile, d, v), rescale[v]),
                    tile, d, v);
              scf::YieldOp::create(rb, rl, tile);
            })
            .getResult(0);
  // The keys of the block before hi: a weight of 0 needs no value.
  Value count = arith::MinUIOp::create(vb, vl, indexConstant(vb, vl, keyBlock),
                                       arith::SubIOp::create(vb, vl, hi, j0));
  auto loop = scf::ForOp::create(
      vb, vl, indexConstant(vb, vl, 0), indexConstant(vb, vl, headDim),
      indexConstant(vb, vl, microRows), ValueRange{out},
      [&](OpBuilder &db, Location dl, Value d0, ValueRange args) {
        SmallVector<Value> dims, inits;
        for (int64_t i = 0; i < microRows; ++i) {
          dims.push_back(
              arith::AddIOp::create(db, dl, d0, indexConstant(db, dl, i)));
          for (int64_t v = 0; v < nv; ++v)
            inits.push_back(readVector(db, dl, args[0], dims[i], v));
        }
        SmallVector<Value> sums = registerBlock(
            db, dl, count, inits,
            [&](OpBuilder &ab, Location al, int64_t i, Value j) {
              Value key = arith::AddIOp::create(ab, al, j0, j);
              return readScalar(ab, al, values, {batch, key, kvHead, dims[i]});
            },
            [&](OpBuilder &bb, Location bl, Value j, int64_t v) {
              return readVector(bb, bl, weights, j, v);
            });
        Value tile = args[0];
        for (int64_t i = 0; i < microRows; ++i)
          for (int64_t v = 0; v < nv; ++v)
            tile = writeVector(db, dl, sums[i * nv + v], tile, dims[i], v);
        scf::YieldOp::create(db, dl, tile);
      });
  return loop.getResult(0);
}

SmallVector<Value> AttentionKernel::registerBlock(
    OpBuilder &rb, Location rl, Value count, ArrayRef<Value> inits,
    function_ref<Value(OpBuilder &, Location, int64_t, Value)> a,
    function_ref<Value(OpBuilder &, Location, Value, int64_t)> bv) {
  int64_t nv = rowVectors();
  auto loop = scf::ForOp::create(
      rb, rl, indexConstant(rb, rl, 0), count, indexConstant(rb, rl, 1), inits,
      [&](OpBuilder &kb, Location kl, Value k, ValueRange accs) {
        SmallVector<Value> vectors;
        for (int64_t v = 0; v < nv; ++v)
          vectors.push_back(bv(kb, kl, k, v));
        SmallVector<Value> next;
        for (int64_t i = 0; i < microRows; ++i) {
          Value x =
              vector::BroadcastOp::create(kb, kl, vecType, a(kb, kl, i, k));
          for (int64_t v = 0; v < nv; ++v)
            next.push_back(
                multiplyAdd(kb, kl, x, vectors[v], accs[i * nv + v]));
        }
        scf::YieldOp::create(kb, kl, next);
      });
  return SmallVector<Value>(loop.getResults());
}

Value AttentionKernel::writeRows(const RowState &state, Value block,
                                 Value valid) {
  // The sums as scalars per row.
  Value sums = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{rows}, f32);
  for (int64_t v = 0; v < rowVectors(); ++v)
    sums = vector::TransferWriteOp::create(b, loc, state.sum[v], sums,
                                           ValueRange{index(v * lanes)},
                                           ArrayRef<bool>{true})
               .getResult();
  Type element = cast<RankedTensorType>(block.getType()).getElementType();
  Value validRows = arith::MulIOp::create(b, loc, valid, index(heads));
  auto loop = scf::ForOp::create(
      b, loc, index(0), validRows, index(1), ValueRange{block},
      [&](OpBuilder &rb, Location rl, Value r, ValueRange rowArgs) {
        // Every row sees at least its own key, so its sum is > 0.
        Value inv = arith::DivFOp::create(
            rb, rl, arith::ConstantOp::create(rb, rl, rb.getF32FloatAttr(1)),
            tensor::ExtractOp::create(rb, rl, sums, ValueRange{r}));
        Value p =
            arith::DivUIOp::create(rb, rl, r, indexConstant(rb, rl, heads));
        Value h =
            arith::RemUIOp::create(rb, rl, r, indexConstant(rb, rl, heads));
        auto dims = scf::ForOp::create(
            rb, rl, indexConstant(rb, rl, 0), indexConstant(rb, rl, headDim),
            indexConstant(rb, rl, 1), rowArgs,
            [&](OpBuilder &db, Location dl, Value d, ValueRange args) {
              Value x = arith::MulFOp::create(
                  db, dl,
                  tensor::ExtractOp::create(db, dl, state.out,
                                            ValueRange{d, r}),
                  inv);
              Value zero = indexConstant(db, dl, 0);
              scf::YieldOp::create(
                  db, dl,
                  tensor::InsertOp::create(db, dl,
                                           truncateFromF32(db, dl, x, element),
                                           args[0], ValueRange{zero, p, h, d})
                      .getResult());
            });
        scf::YieldOp::create(rb, rl, dims.getResults());
      });
  return loop.getResult(0);
}

/// The kernel shape for `op`: its #moe.attention_kernel, else `defaults`;
/// null after an error when the shape does not fit the op.
AttentionKernelAttr kernelShapeOf(Operation *op, AttentionKernelAttr defaults) {
  AttentionKernelAttr shape = defaults;
  if (auto kernel = dyn_cast_if_present<AttentionKernelAttr>(
          MoeDialect::KernelAttrHelper(op->getContext()).getAttr(op)))
    shape = kernel;
  auto qType = cast<RankedTensorType>(op->getOperand(0).getType());
  int64_t group =
      qType.getDimSize(2) /
      cast<RankedTensorType>(op->getOperand(1).getType()).getDimSize(2);
  if (group % shape.getHeadsPerStep()) {
    op->emitOpError() << "kernel heads_per_step " << shape.getHeadsPerStep()
                      << " does not divide the heads per kv-head (" << group
                      << ")";
    return {};
  }
  if (qType.getDimSize(3) % shape.getMicroRows()) {
    op->emitOpError() << "kernel micro_rows " << shape.getMicroRows()
                      << " does not divide the head dimension ("
                      << qType.getDimSize(3) << ")";
    return {};
  }
  return shape;
}

/// Lowers each attention op with its shape (checked beforehand); records
/// the kernel loops in `kernels`.
template <typename OpTy> struct AttentionTiling : OpRewritePattern<OpTy> {
  AttentionTiling(MLIRContext *ctx, AttentionKernelAttr defaults,
                  SmallVectorImpl<Operation *> &kernels)
      : OpRewritePattern<OpTy>(ctx), defaults(defaults), kernels(kernels) {}

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    // Queries with positions of their own (a decode step's few rows against
    // a cache) keep the generic lowering: the blocked kernel's tiles are
    // for prefill's square problem.
    if (AttentionKeyRange::of(op).queryOffset)
      return failure();
    AttentionKernelAttr shape = kernelShapeOf(op, defaults);
    if (!shape)
      return failure();
    auto [result, loop] =
        AttentionKernel(rewriter, op.getLoc(), op, shape).build();
    kernels.push_back(loop);
    rewriter.replaceOp(op,
                       castToType(rewriter, op.getLoc(), result, op.getType()));
    return success();
  }

  AttentionKernelAttr defaults;
  SmallVectorImpl<Operation *> &kernels;
};

struct TileAttentionPass : moe::impl::TileAttentionBase<TileAttentionPass> {
  using TileAttentionBase::TileAttentionBase;

  void runOnOperation() override {
    auto emitErrorOnRoot = [&] { return getOperation()->emitError(); };
    function_ref<InFlightDiagnostic()> emitError = emitErrorOnRoot;
    auto defaults = AttentionKernelAttr::getChecked(
        emitError, &getContext(), int64_t(headsPerStep), int64_t(queryBlock),
        int64_t(keyBlock), int64_t(microRows), int64_t(vectorWidth));
    if (!defaults)
      return signalPassFailure();
    WalkResult checked = getOperation()->walk([&](Operation *op) {
      if (isa<AttentionOp, GroupedAttentionOp>(op) &&
          !kernelShapeOf(op, defaults))
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (checked.wasInterrupted())
      return signalPassFailure();
    SmallVector<Operation *> kernels;
    RewritePatternSet patterns(&getContext());
    patterns
        .add<AttentionTiling<AttentionOp>, AttentionTiling<GroupedAttentionOp>>(
            &getContext(), defaults, kernels);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
    approximateKernelMath(kernels);
  }
};

} // namespace

//===- TileGroupedMatmul.cpp - parallel vector kernel for grouped GEMMs ---===//
//
// The CPU lowering of moe.grouped_matmul. The work is a list of tiles that
// moe.tile_schedule computes at run time from the group offsets (at most
// tile-rows rows of one group each) times tiles of the output columns, so a
// skewed routing still gives every worker an equal share; each work item
// runs a register-blocked micro-kernel written with the vector dialect.
//
// Both operands are K-contiguous (rows [R, K], weights [G, N, K]), so the
// micro-kernel is a block of dot products: one vector accumulator per
// (row, column) along K, all reduced together by a shuffle tree once per
// block (and K chunk). This reads the weights where they are, with no
// per-call packing, leaves the epilogue a vector of finished sums in
// registers, and maps bf16 operands directly onto the AVX-512 BF16 dot
// product, which accumulates pairs along K in the same way.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_TILEGROUPEDMATMUL
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Tile and register-block sizes (the pass options).
struct KernelShape {
  int64_t tileRows, tileCols, tileK, microRows, microCols, vectorWidth;
  bool bf16Dot;
};

/// What a K chunk does with its register block's sums: K within one chunk
/// (`only`) or the last of several (`last`) finish the output; the first of
/// several writes its partial sums to a scratch tile, the ones between add
/// theirs.
enum class ChunkRole { only, first, middle, last };

struct GroupedMatmulTiling : OpRewritePattern<GroupedMatmulOp> {
  /// Records each kernel loop it builds in `kernels`.
  GroupedMatmulTiling(MLIRContext *ctx, KernelShape shape,
                      SmallVectorImpl<Operation *> &kernels)
      : OpRewritePattern(ctx), shape(shape), kernels(kernels) {}

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    auto weightType = cast<RankedTensorType>(op.getWeight().getType());
    if (!weightType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static weight shape");
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    int64_t numGroups = weightType.getDimSize(0);
    int64_t n = weightType.getDimSize(1), k = weightType.getDimSize(2);
    Value input = op.getInput();
    auto resultType = cast<RankedTensorType>(op.getType());

    // The row tiles of the schedule, times ceil(N / tile-cols) column tiles.
    auto tilesType = RankedTensorType::get({ShapedType::kDynamic, 3},
                                           b.getI32Type());
    Value schedule = TileScheduleOp::create(
        b, loc, tilesType, op.getGroupOffsets(), shape.tileRows);
    Value numTiles = tensor::DimOp::create(b, loc, schedule, 0);
    OpFoldResult rows = tensor::getMixedSize(b, loc, input, 0);
    Value init = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(n)},
        resultType.getElementType());
    int64_t colTiles = llvm::divideCeil(n, shape.tileCols);
    auto forall = scf::ForallOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(colTiles), numTiles},
        ValueRange{init}, /*mapping=*/std::nullopt);

    b.setInsertionPointToStart(forall.getBody());
    Value colTile = forall.getInductionVars()[0];
    Value tile = forall.getInductionVars()[1];
    Value out = forall.getRegionIterArgs()[0];
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    auto field = [&](int64_t column) -> Value {
      Value v = tensor::ExtractOp::create(b, loc, schedule,
                                          ValueRange{tile, index(column)});
      return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), v);
    };
    // Clamped so that malformed offsets can neither pick a missing weight nor
    // reach past the rows (well-formed ones are unchanged).
    Value numRows = getValueOrCreateConstantIndexOp(b, loc, rows);
    Value group = arith::MinUIOp::create(b, loc, field(0), index(numGroups - 1));
    Value firstRow = arith::MinUIOp::create(b, loc, field(1), numRows);
    Value tileRows = arith::MinUIOp::create(
        b, loc, field(2), arith::SubIOp::create(b, loc, numRows, firstRow));
    Value firstCol = arith::MulIOp::create(b, loc, colTile, index(shape.tileCols));
    Value tileCols = arith::MinSIOp::create(
        b, loc, index(shape.tileCols),
        arith::SubIOp::create(b, loc, index(n), firstCol));

    KernelTile kt{op, group, firstRow, tileRows, firstCol, tileCols, n, k};
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, out, ArrayRef<OpFoldResult>{firstRow, firstCol},
        ArrayRef<OpFoldResult>{tileRows, tileCols},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});

    // K in chunks of `tile-k` (a multiple of the vector width) so that a
    // tile's rows and a block's weight rows stay in cache over a chunk; the
    // partial sums of all but the last chunk wait in an f32 scratch tile.
    int64_t step = kStep(op);
    int64_t chunk = llvm::alignTo(std::max(shape.tileK, step), step);
    int64_t numChunks = llvm::divideCeil(k, chunk);
    int64_t lastStart = (numChunks - 1) * chunk;
    Value result;
    if (numChunks == 1) {
      result = buildChunk(b, loc, kt, index(0), /*kEnd=*/nullptr,
                          ChunkRole::only, slice, nullptr);
    } else {
      Value scratch = tensor::EmptyOp::create(
          b, loc,
          ArrayRef<int64_t>{numWeights(op), shape.tileRows, shape.tileCols},
          b.getF32Type());
      scratch = buildChunk(b, loc, kt, index(0), index(chunk),
                           ChunkRole::first, scratch, scratch);
      if (numChunks > 2) {
        auto middle = scf::ForOp::create(
            b, loc, index(chunk), index(lastStart), index(chunk),
            ValueRange{scratch},
            [&](OpBuilder &mb, Location ml, Value kBegin, ValueRange state) {
              Value kEnd = arith::AddIOp::create(
                  mb, ml, kBegin, arith::ConstantIndexOp::create(mb, ml, chunk));
              scf::YieldOp::create(
                  mb, ml,
                  buildChunk(mb, ml, kt, kBegin, kEnd, ChunkRole::middle,
                             state[0], state[0]));
            });
        scratch = middle.getResult(0);
      }
      result = buildChunk(b, loc, kt, index(lastStart), /*kEnd=*/nullptr,
                          ChunkRole::last, slice, scratch);
    }

    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, result, out,
        ArrayRef<OpFoldResult>{firstRow, firstCol},
        ArrayRef<OpFoldResult>{tileRows, tileCols},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    kernels.push_back(forall);
    rewriter.setInsertionPointAfter(forall);
    rewriter.replaceOp(op, castToType(rewriter, loc, forall.getResult(0),
                                      resultType));
    return success();
  }

private:
  /// What the micro-kernel needs to know about its work item.
  struct KernelTile {
    GroupedMatmulOp op;
    Value group, firstRow, rows, firstCol, cols;
    int64_t n, k;
  };

  /// Columns of a register block per weight: SwiGLU accumulates two weights,
  /// so each gets half the columns and the accumulator count stays put.
  int64_t columnsPerBlock(GroupedMatmulOp op) const {
    if (op.getEpilogue() != Epilogue::swiglu)
      return shape.microCols;
    return std::max<int64_t>(1, shape.microCols / 2);
  }

  /// Whether the K steps use the AVX-512 BF16 dot product: asked for, with
  /// bf16 rows and weights, and an accumulator width the instruction has.
  bool usesBf16Dot(GroupedMatmulOp op) const {
    auto isBf16 = [](Value v) { return getElementTypeOrSelf(v).isBF16(); };
    return shape.bf16Dot && isBf16(op.getInput()) && isBf16(op.getWeight()) &&
           llvm::is_contained({4, 8, 16}, shape.vectorWidth);
  }

  /// K elements per step: one per accumulator lane, or a pair per lane
  /// under the BF16 dot product.
  int64_t kStep(GroupedMatmulOp op) const {
    return usesBf16Dot(op) ? 2 * shape.vectorWidth : shape.vectorWidth;
  }

  static int64_t numWeights(GroupedMatmulOp op) {
    return op.getUpWeight() ? 2 : 1;
  }

  /// One K chunk over the whole work item: the register blocks, columns
  /// outer and rows inner, each accumulating K steps [kBegin, kEnd) (to the
  /// end of K, with the masked tail step, when `kEnd` is null) and then
  /// doing what `role` says. `dest` is what the blocks write (the tile's
  /// slice of the result, or the scratch tile), `scratch` the partial sums
  /// so far (null for ChunkRole::only). Returns the written `dest`.
  Value buildChunk(OpBuilder &b, Location loc, const KernelTile &kt,
                   Value kBegin, Value kEnd, ChunkRole role, Value dest,
                   Value scratch) const {
    Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
    auto colLoop = scf::ForOp::create(
        b, loc, c0, kt.cols,
        arith::ConstantIndexOp::create(b, loc, columnsPerBlock(kt.op)),
        ValueRange{dest},
        [&](OpBuilder &cb, Location cl, Value col, ValueRange colState) {
          auto rowLoop = scf::ForOp::create(
              cb, cl, c0, kt.rows,
              arith::ConstantIndexOp::create(cb, cl, shape.microRows),
              colState,
              [&](OpBuilder &rb, Location rl, Value row, ValueRange rowState) {
                scf::YieldOp::create(
                    rb, rl,
                    buildBlock(rb, rl, kt, row, col, kBegin, kEnd, role,
                               rowState[0], scratch));
              });
          scf::YieldOp::create(cb, cl, rowLoop.getResults());
        });
    return colLoop.getResult(0);
  }

  /// One register block: rows [row, row + micro-rows) of the tile times
  /// columns [col, col + columnsPerBlock) of the column tile, over one K
  /// chunk (see buildChunk). Returns the written `dest`.
  Value buildBlock(OpBuilder &b, Location loc, const KernelTile &kt, Value row,
                   Value col, Value kBegin, Value kEnd, ChunkRole role,
                   Value dest, Value scratch) const {
    GroupedMatmulOp op = kt.op;
    int64_t mr = shape.microRows, nr = columnsPerBlock(op);
    int64_t vw = shape.vectorWidth;
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    SmallVector<Value> weights{op.getWeight()};
    if (op.getUpWeight())
      weights.push_back(op.getUpWeight());
    int64_t numWeights = weights.size();

    // Rows past the tile and columns past N read the last valid one: the
    // loads stay in bounds and unmasked, and those sums are never stored.
    Value lastRow = arith::SubIOp::create(b, loc, kt.rows, index(1));
    SmallVector<Value> localRows, rowIds, colIds;
    for (int64_t i = 0; i < mr; ++i) {
      Value r = arith::MinSIOp::create(
          b, loc, arith::AddIOp::create(b, loc, row, index(i)), lastRow);
      localRows.push_back(r);
      rowIds.push_back(arith::AddIOp::create(b, loc, kt.firstRow, r));
    }
    Value colBase = arith::AddIOp::create(b, loc, kt.firstCol, col);
    for (int64_t j = 0; j < nr; ++j)
      colIds.push_back(arith::MinSIOp::create(
          b, loc, arith::AddIOp::create(b, loc, colBase, index(j)),
          index(kt.n - 1)));

    // Accumulator (i, j, w) for row i, column j and weight w.
    auto accIndex = [&](int64_t i, int64_t j, int64_t w) {
      return (i * nr + j) * numWeights + w;
    };
    auto f32 = b.getF32Type();
    auto accType = VectorType::get({vw}, f32);
    bool dot = usesBf16Dot(op);
    int64_t kStride = kStep(op);
    // `kStride` elements along K; widened to f32 unless the BF16 dot
    // product takes them as they are.
    auto read = [&](OpBuilder &kb, Location kl, Value source,
                    SmallVector<Value> indices, bool inBounds) -> Value {
      Type element = getElementTypeOrSelf(source.getType());
      Value zero = arith::ConstantOp::create(kb, kl, kb.getZeroAttr(element));
      Value v = vector::TransferReadOp::create(
          kb, kl, VectorType::get({kStride}, element), source, indices, zero,
          ArrayRef<bool>{inBounds});
      return dot ? v : extendToF32(kb, kl, v);
    };
    // acc + a * w lane by lane, or acc + the dot products of lane pairs.
    auto multiplyAdd = [&](OpBuilder &kb, Location kl, Value a, Value w,
                           Value acc) -> Value {
      if (dot)
        return x86vector::DotBF16Op::create(kb, kl, acc, a, w);
      return vector::FMAOp::create(kb, kl, a, w, acc);
    };
    // One step of `kStride` along K from `kIdx`; a step that may cross K
    // reads zeros past it through the transfer's mask.
    auto step = [&](OpBuilder &kb, Location kl, Value kIdx, ValueRange accs,
                    bool inBounds) {
      SmallVector<Value> a, w;
      for (Value r : rowIds)
        a.push_back(read(kb, kl, op.getInput(), {r, kIdx}, inBounds));
      for (Value weight : weights)
        for (Value c : colIds)
          w.push_back(read(kb, kl, weight, {kt.group, c, kIdx}, inBounds));
      SmallVector<Value> next(accs);
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t wi = 0; wi < numWeights; ++wi)
          for (int64_t j = 0; j < nr; ++j) {
            int64_t id = accIndex(i, j, wi);
            next[id] = multiplyAdd(kb, kl, a[i], w[wi * nr + j], accs[id]);
          }
      return next;
    };

    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
    SmallVector<Value> accs(mr * nr * numWeights, zero);
    int64_t k = kt.k, kMain = k - k % kStride;
    bool toEnd = !kEnd;
    if (toEnd)
      kEnd = index(kMain);
    auto kLoop = scf::ForOp::create(
        b, loc, kBegin, kEnd, index(kStride), accs,
        [&](OpBuilder &kb, Location kl, Value kIdx, ValueRange state) {
          scf::YieldOp::create(kb, kl, step(kb, kl, kIdx, state, true));
        });
    accs.assign(kLoop.getResults().begin(), kLoop.getResults().end());
    if (toEnd && kMain < k)
      accs = step(b, loc, index(kMain), accs, /*inBounds=*/false);

    // The horizontal sums of the whole block, weight-major then row-major.
    SmallVector<Value> sources;
    for (int64_t wi = 0; wi < numWeights; ++wi)
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nr; ++j)
          sources.push_back(accs[accIndex(i, j, wi)]);
    Value sums = reduceEach(b, loc, sources);
    int64_t blockSize = mr * nr;
    auto sumsType = cast<VectorType>(sums.getType());
    // Row i of the block is in the tile (its sums may be stored).
    auto inTile = [&](int64_t i) -> Value {
      Value r = arith::AddIOp::create(b, loc, row, index(i));
      return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, r,
                                   kt.rows);
    };
    // `dest` with `v` written at `indices` if `cond` holds.
    auto storeIf = [&](Value cond, Value v, Value dest,
                       SmallVector<Value> indices) -> Value {
      auto store = scf::IfOp::create(
          b, loc, cond,
          [&](OpBuilder &tb, Location tl) {
            Value written = vector::TransferWriteOp::create(
                                tb, tl, v, dest, indices, ArrayRef<bool>{false})
                                .getResult();
            scf::YieldOp::create(tb, tl, written);
          },
          [&](OpBuilder &eb, Location el) { scf::YieldOp::create(eb, el, dest); });
      return store.getResult(0);
    };
    auto slice = [&](Value v, int64_t offset, int64_t size) -> Value {
      return vector::ExtractStridedSliceOp::create(
          b, loc, v, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{size},
          ArrayRef<int64_t>{1});
    };

    // Earlier chunks' partial sums, in the layout of `sums`. Rows past the
    // tile read a clamped row's: they are never stored. A middle chunk reads
    // them from `dest`, the scratch tile as its blocks update it, so that
    // bufferization updates the scratch in place.
    if (role == ChunkRole::middle)
      scratch = dest;
    if (role == ChunkRole::middle || role == ChunkRole::last) {
      Value partial = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(sumsType, b.getF32FloatAttr(0.0f)));
      Value padding = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
      for (int64_t wi = 0; wi < numWeights; ++wi)
        for (int64_t i = 0; i < mr; ++i) {
          Value part = vector::TransferReadOp::create(
              b, loc, VectorType::get({nr}, f32), scratch,
              ValueRange{index(wi), localRows[i], col}, padding,
              ArrayRef<bool>{false});
          partial = vector::InsertStridedSliceOp::create(
              b, loc, part, partial,
              ArrayRef<int64_t>{(wi * mr + i) * nr}, ArrayRef<int64_t>{1});
        }
      sums = arith::AddFOp::create(b, loc, sums, partial);
    }
    if (role == ChunkRole::first || role == ChunkRole::middle) {
      for (int64_t wi = 0; wi < numWeights; ++wi)
        for (int64_t i = 0; i < mr; ++i)
          dest = storeIf(inTile(i), slice(sums, (wi * mr + i) * nr, nr), dest,
                         {index(wi), localRows[i], col});
      return dest;
    }

    // The epilogue on the whole block at once (one vector exp for the
    // block rather than one per row), then one store per row: rows past the
    // tile are skipped, columns past it masked off.
    auto blockType = VectorType::get({blockSize}, f32);
    Value v = slice(sums, 0, blockSize);
    if (op.getEpilogue() == Epilogue::swiglu)
      v = buildSwiglu(b, loc, v, slice(sums, blockSize, blockSize));
    if (Value scale = op.getRowScale()) {
      SmallVector<Value> lanes;
      for (Value r : rowIds) {
        Value s = tensor::ExtractOp::create(b, loc, scale, ValueRange{r});
        lanes.append(nr, s);
      }
      v = arith::MulFOp::create(
          b, loc, v, vector::FromElementsOp::create(b, loc, blockType, lanes));
    }
    v = truncateFromF32(b, loc, v, getElementTypeOrSelf(op.getType()));
    for (int64_t i = 0; i < mr; ++i)
      dest = storeIf(inTile(i), slice(v, i * nr, nr), dest,
                     {arith::AddIOp::create(b, loc, row, index(i)), col});
    return dest;
  }

  /// The lane sums of `sources` (f32 vectors of `vector-width` lanes), as
  /// one vector whose lane i is the sum of sources[i].
  ///
  /// With at most `vector-width` sources and a power-of-two width, a shuffle
  /// tree: each level pairs vectors that hold g sources of w lanes each and
  /// folds every source's two halves, giving vectors of 2g sources of w / 2
  /// lanes; log2(width) levels leave one vector of sums, in source order.
  /// That is about 3 operations per source instead of the ~8 of a separate
  /// reduction each. Otherwise, one vector.reduction per source.
  Value reduceEach(OpBuilder &b, Location loc, ArrayRef<Value> sources) const {
    int64_t width = shape.vectorWidth;
    auto count = static_cast<int64_t>(sources.size());
    if (!llvm::isPowerOf2_64(width) || count > width || width == 1) {
      SmallVector<Value> sums;
      for (Value source : sources)
        sums.push_back(vector::ReductionOp::create(
            b, loc, vector::CombiningKind::ADD, source,
            arith::FastMathFlags::reassoc));
      return vector::FromElementsOp::create(
          b, loc, VectorType::get({count}, b.getF32Type()), sums);
    }
    Value zero;
    SmallVector<Value> level(sources);
    for (int64_t lanes = width; lanes > 1; lanes /= 2) {
      int64_t perVector = width / lanes; // sources per vector at this level
      if (level.size() % 2) {
        if (!zero)
          zero = arith::ConstantOp::create(
              b, loc, b.getZeroAttr(cast<VectorType>(sources[0].getType())));
        level.push_back(zero);
      }
      SmallVector<Value> next;
      for (size_t p = 0; p < level.size(); p += 2) {
        // Lane l of the pair (x, y) is shuffle index l for x, width + l for y.
        SmallVector<int64_t> low, high;
        for (int64_t from : {int64_t(0), width})
          for (int64_t src = 0; src < perVector; ++src)
            for (int64_t l = 0; l < lanes / 2; ++l) {
              low.push_back(from + src * lanes + l);
              high.push_back(from + src * lanes + lanes / 2 + l);
            }
        Value lo = vector::ShuffleOp::create(b, loc, level[p], level[p + 1], low);
        Value hi = vector::ShuffleOp::create(b, loc, level[p], level[p + 1], high);
        next.push_back(arith::AddFOp::create(b, loc, lo, hi));
      }
      level = std::move(next);
    }
    return level.front();
  }

  KernelShape shape;
  SmallVectorImpl<Operation *> &kernels;
};

struct TileGroupedMatmulPass
    : moe::impl::TileGroupedMatmulBase<TileGroupedMatmulPass> {
  using TileGroupedMatmulBase::TileGroupedMatmulBase;

  void runOnOperation() override {
    KernelShape shape{tileRows,  tileCols,  tileK,      microRows,
                      microCols, vectorWidth, bf16Dot};
    for (int64_t size : {shape.tileRows, shape.tileCols, shape.tileK,
                         shape.microRows, shape.microCols,
                         shape.vectorWidth}) {
      if (size < 1) {
        getOperation()->emitError()
            << "moe-tile-grouped-matmul: tile, block and vector sizes must be "
               "positive, got "
            << size;
        return signalPassFailure();
      }
    }
    SmallVector<Operation *> kernels;
    RewritePatternSet patterns(&getContext());
    patterns.add<GroupedMatmulTiling>(&getContext(), shape, kernels);
    walkAndApplyPatterns(getOperation(), std::move(patterns));

    // The SwiGLU epilogue's exp as a vector polynomial (MLIR's
    // approximation, a few ulp from libm): LLVM would otherwise scalarise
    // the vector exp into one expf call per output element, which costs
    // as much as a fifth of the kernel. Only the kernels' own exps change.
    RewritePatternSet approximations(&getContext());
    populateMathPolynomialApproximationPatterns(
        approximations,
        [](StringRef name) { return name == math::ExpOp::getOperationName(); });
    FrozenRewritePatternSet frozen(std::move(approximations));
    for (Operation *kernel : kernels)
      walkAndApplyPatterns(kernel, frozen);
  }
};

} // namespace

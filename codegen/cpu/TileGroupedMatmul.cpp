//===- TileGroupedMatmul.cpp - parallel vector kernel for grouped GEMMs ---===//
//
// The CPU lowering of moe.grouped_matmul. The work is a list of tiles that
// moe.tile_schedule computes at run time from the group offsets (at most
// tile-rows rows of one group each) times tiles of the output columns, so a
// skewed routing still gives every worker an equal share; each work item
// runs a register-blocked micro-kernel written with the vector dialect, of
// one of two kinds (#moe.cpu_matmul_kernel, chosen per target by
// moe-select-cpu-kernels):
//
// * dot: both operands are K-contiguous (rows [R, K], weights [G, N, K]),
//   so a block is a set of dot products: one vector accumulator per (row,
//   column) along K, all reduced together by a shuffle tree once per block
//   (and K chunk). It reads the weights where they are and maps bf16
//   operands onto the AVX-512 BF16 dot product, but a register holds one
//   output, so a block is small and runs from cache at well below the FMA
//   rate (0.45x of outer on AVX2, 0.6-0.75x on AVX-512 in the GEMM
//   benchmark).
// * outer: each K chunk of the work tile's weight rows is packed (8 x 8
//   transposes in registers) into a panel whose rows run along N; a block
//   broadcasts one input element per row and K step and multiplies it with
//   the panel's vectors, so a register holds vector-width outputs. The
//   packing is paid once per work tile and K chunk, for all its rows.
//
// Both leave the block's sums in one vector (weight-major, then row-major),
// on which the shared epilogue runs.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
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

/// Tile and register-block sizes: an op's #moe.cpu_matmul_kernel, or the
/// pass options.
struct KernelShape {
  MatmulMicroKernel kind;
  int64_t tileRows, tileCols, tileK, microRows, microCols, vectorWidth;
  bool bf16Dot;

  static KernelShape get(CpuMatmulKernelAttr attr) {
    return {attr.getKind(),        attr.getTileRows(),  attr.getTileCols(),
            attr.getTileK(),       attr.getMicroRows(), attr.getMicroCols(),
            attr.getVectorWidth(), attr.getBf16Dot()};
  }
};

/// What a K chunk does with its register block's sums: K within one chunk
/// (`only`) or the last of several (`last`) finish the output; the first of
/// several writes its partial sums to a scratch tile, the ones between add
/// theirs.
enum class ChunkRole { only, first, middle, last };

/// What the micro-kernel needs to know about its work item.
struct KernelTile {
  GroupedMatmulOp op;
  Value group, firstRow, rows, firstCol, cols;
  int64_t n, k;
};

/// One K chunk of a work item: [kBegin, kBegin + kLen).
struct KChunk {
  Value begin;
  int64_t length;
  ChunkRole role;
};

Value indexConstant(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// Builds the micro-kernel of one work item of one op.
class KernelBuilder {
public:
  KernelBuilder(const KernelShape &shape, const KernelTile &kt)
      : shape(shape), kt(kt), op(kt.op) {
    weights.push_back(op.getWeight());
    if (op.getUpWeight())
      weights.push_back(op.getUpWeight());
  }

  /// K elements per step of the dot kernel: one per accumulator lane, or a
  /// pair per lane under the BF16 dot product.
  int64_t kStep() const {
    return usesBf16Dot() ? 2 * shape.vectorWidth : shape.vectorWidth;
  }

  int64_t numWeights() const { return weights.size(); }

  GroupedMatmulOp getOp() const { return op; }

  /// One K chunk over the whole work item: the register blocks, columns
  /// outer and rows inner, each accumulating the chunk's K steps and then
  /// doing what its role says. `dest` is what the blocks write (the tile's
  /// slice of the result, or the scratch tile), `scratch` the partial sums
  /// so far (null for ChunkRole::only). Returns the written `dest`.
  Value buildChunk(OpBuilder &b, Location loc, const KChunk &chunk, Value dest,
                   Value scratch) const {
    Value panel;
    if (shape.kind == MatmulMicroKernel::outer)
      panel = buildPanel(b, loc, chunk);
    Value c0 = indexConstant(b, loc, 0);
    auto colLoop = scf::ForOp::create(
        b, loc, c0, kt.cols, indexConstant(b, loc, columnsPerBlock()),
        ValueRange{dest},
        [&](OpBuilder &cb, Location cl, Value col, ValueRange colState) {
          auto rowLoop = scf::ForOp::create(
              cb, cl, c0, kt.rows, indexConstant(cb, cl, shape.microRows),
              colState,
              [&](OpBuilder &rb, Location rl, Value row, ValueRange rowState) {
                Block block = makeBlock(rb, rl, row, col);
                Value written = panel
                                    ? outerBlock(rb, rl, block, chunk, panel,
                                                 rowState[0], scratch)
                                    : finishBlock(rb, rl, block, chunk.role,
                                                  dotSums(rb, rl, block, chunk),
                                                  rowState[0], scratch);
                scf::YieldOp::create(rb, rl, written);
              });
          scf::YieldOp::create(cb, cl, rowLoop.getResults());
        });
    return colLoop.getResult(0);
  }

private:
  /// A register block's rows [row, row + micro-rows) of the tile times
  /// columns [col, col + columnsPerBlock) of the column tile. Rows past the
  /// tile and columns past N read the last valid one (`rowIds`, `colIds`):
  /// the loads stay in bounds and unmasked, and those sums are never stored.
  struct Block {
    Value row, col;
    SmallVector<Value> localRows, rowIds, colIds;
  };

  Block makeBlock(OpBuilder &b, Location loc, Value row, Value col) const {
    Block block{row, col, {}, {}, {}};
    Value lastRow =
        arith::SubIOp::create(b, loc, kt.rows, indexConstant(b, loc, 1));
    for (int64_t i = 0; i < shape.microRows; ++i) {
      Value r = arith::MinSIOp::create(
          b, loc, arith::AddIOp::create(b, loc, row, indexConstant(b, loc, i)),
          lastRow);
      block.localRows.push_back(r);
      block.rowIds.push_back(arith::AddIOp::create(b, loc, kt.firstRow, r));
    }
    // The outer kernel reads its columns from the panel.
    if (shape.kind == MatmulMicroKernel::outer)
      return block;
    Value colBase = arith::AddIOp::create(b, loc, kt.firstCol, col);
    for (int64_t j = 0; j < columnsPerBlock(); ++j)
      block.colIds.push_back(arith::MinSIOp::create(
          b, loc,
          arith::AddIOp::create(b, loc, colBase, indexConstant(b, loc, j)),
          indexConstant(b, loc, kt.n - 1)));
    return block;
  }

  /// Columns of a register block per weight: SwiGLU accumulates two weights,
  /// so each gets half the columns and the accumulator count stays put (a
  /// whole number of vectors for the outer kernel).
  int64_t columnsPerBlock() const {
    if (op.getEpilogue() != Epilogue::swiglu)
      return shape.microCols;
    if (shape.kind == MatmulMicroKernel::outer)
      return shape.microCols % (2 * shape.vectorWidth) ? shape.vectorWidth
                                                       : shape.microCols / 2;
    return std::max<int64_t>(1, shape.microCols / 2);
  }

  /// Whether the dot kernel's K steps use the AVX-512 BF16 dot product:
  /// asked for, with bf16 rows and weights, and an accumulator width the
  /// instruction has.
  bool usesBf16Dot() const {
    auto isBf16 = [](Value v) { return getElementTypeOrSelf(v).isBF16(); };
    return shape.kind == MatmulMicroKernel::dot && shape.bf16Dot &&
           isBf16(op.getInput()) && isBf16(op.getWeight()) &&
           llvm::is_contained({4, 8, 16}, shape.vectorWidth);
  }

  /// `length` elements along K of row `indices` of `source`, widened to f32
  /// unless `keepType`; past the end of K they read zeros unless `inBounds`.
  static Value readRow(OpBuilder &b, Location loc, Value source,
                       SmallVector<Value> indices, int64_t length,
                       bool inBounds, bool keepType = false) {
    Type element = getElementTypeOrSelf(source.getType());
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
    Value v = vector::TransferReadOp::create(
        b, loc, VectorType::get({length}, element), source, indices, zero,
        ArrayRef<bool>{inBounds});
    return keepType ? v : extendToF32(b, loc, v);
  }

  /// The dot kernel: accumulators (i, j, w) for row i, column j and weight
  /// w, each a vector along K, reduced to the block's sums.
  Value dotSums(OpBuilder &b, Location loc, const Block &block,
                const KChunk &chunk) const {
    int64_t mr = shape.microRows, nr = columnsPerBlock(), nw = numWeights();
    auto accIndex = [&](int64_t i, int64_t j, int64_t w) {
      return (i * nr + j) * nw + w;
    };
    bool dot = usesBf16Dot();
    int64_t kStride = kStep();
    // One step of `kStride` along K from `kIdx`; a step that may cross K
    // reads zeros past it through the transfer's mask.
    auto step = [&](OpBuilder &kb, Location kl, Value kIdx, ValueRange accs,
                    bool inBounds) {
      SmallVector<Value> a, w;
      for (Value r : block.rowIds)
        a.push_back(
            readRow(kb, kl, op.getInput(), {r, kIdx}, kStride, inBounds, dot));
      for (Value weight : weights)
        for (Value c : block.colIds)
          w.push_back(readRow(kb, kl, weight, {kt.group, c, kIdx}, kStride,
                              inBounds, dot));
      SmallVector<Value> next(accs);
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t wi = 0; wi < nw; ++wi)
          for (int64_t j = 0; j < nr; ++j) {
            int64_t id = accIndex(i, j, wi);
            Value x = a[i], y = w[wi * nr + j];
            next[id] =
                dot ? x86vector::DotBF16Op::create(kb, kl, accs[id], x, y)
                          .getResult()
                    : multiplyAdd(kb, kl, x, y, accs[id]);
          }
      return next;
    };

    auto accType = VectorType::get({shape.vectorWidth}, b.getF32Type());
    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
    SmallVector<Value> accs(mr * nr * nw, zero);
    int64_t kMain = chunk.length - chunk.length % kStride;
    Value kEnd = b.createOrFold<arith::AddIOp>(loc, chunk.begin,
                                               indexConstant(b, loc, kMain));
    auto kLoop = scf::ForOp::create(
        b, loc, chunk.begin, kEnd, indexConstant(b, loc, kStride), accs,
        [&](OpBuilder &kb, Location kl, Value kIdx, ValueRange state) {
          scf::YieldOp::create(kb, kl, step(kb, kl, kIdx, state, true));
        });
    accs.assign(kLoop.getResults().begin(), kLoop.getResults().end());
    if (kMain < chunk.length)
      accs = step(b, loc, kEnd, accs, /*inBounds=*/false);

    // The horizontal sums of the whole block, weight-major then row-major.
    SmallVector<Value> sources;
    for (int64_t wi = 0; wi < nw; ++wi)
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nr; ++j)
          sources.push_back(accs[accIndex(i, j, wi)]);
    return reduceEach(b, loc, sources);
  }

  /// The outer kernel's panel of one K chunk: f32 [tile-cols / nr, K chunk,
  /// weights * nr] for nr = columnsPerBlock, element (c, k, w * nr + j) the
  /// weight w's row firstCol + c * nr + j at K index chunk.begin + k. Each
  /// block's part is contiguous and a K step reads all of its weights'
  /// columns from consecutive addresses (whole cache lines under SwiGLU's
  /// 8-column halves too). Columns past the tile are left unwritten (their
  /// sums are never stored); K past its end is zero up to the vector width.
  Value buildPanel(OpBuilder &b, Location loc, const KChunk &chunk) const {
    int64_t vw = shape.vectorWidth, nr = columnsPerBlock();
    int64_t chunkLength = llvm::alignTo(chunk.length, vw);
    Value panel = tensor::EmptyOp::create(
        b, loc,
        ArrayRef<int64_t>{shape.tileCols / nr, chunkLength, numWeights() * nr},
        b.getF32Type());
    int64_t kMain = chunk.length - chunk.length % vw;
    for (int64_t w = 0; w < numWeights(); ++w) {
      auto colLoop = scf::ForOp::create(
          b, loc, indexConstant(b, loc, 0), kt.cols, indexConstant(b, loc, vw),
          ValueRange{panel},
          [&](OpBuilder &cb, Location cl, Value col, ValueRange colState) {
            auto kLoop = scf::ForOp::create(
                cb, cl, indexConstant(cb, cl, 0), indexConstant(cb, cl, kMain),
                indexConstant(cb, cl, vw), colState,
                [&](OpBuilder &kb, Location kl, Value k, ValueRange kState) {
                  scf::YieldOp::create(
                      kb, kl,
                      packSquare(kb, kl, w, col, k, chunk, true, kState[0]));
                });
            Value packed = kLoop.getResult(0);
            if (kMain < chunk.length)
              packed = packSquare(cb, cl, w, col, indexConstant(cb, cl, kMain),
                                  chunk, false, packed);
            scf::YieldOp::create(cb, cl, packed);
          });
      panel = colLoop.getResult(0);
    }
    return panel;
  }

  /// Packs the vw x vw square of weight `w` at column `col` of the tile and
  /// K offset `k` of the chunk into `panel`: vw rows read along K,
  /// transposed in registers, written as vw rows along N.
  Value packSquare(OpBuilder &b, Location loc, int64_t w, Value col, Value k,
                   const KChunk &chunk, bool inBounds, Value panel) const {
    int64_t vw = shape.vectorWidth;
    Value kIdx = arith::AddIOp::create(b, loc, chunk.begin, k);
    Value colBase = arith::AddIOp::create(b, loc, kt.firstCol, col);
    SmallVector<Value> rows;
    for (int64_t i = 0; i < vw; ++i) {
      Value n = arith::MinSIOp::create(
          b, loc,
          arith::AddIOp::create(b, loc, colBase, indexConstant(b, loc, i)),
          indexConstant(b, loc, kt.n - 1));
      rows.push_back(
          readRow(b, loc, weights[w], {kt.group, n, kIdx}, vw, inBounds));
    }
    transposeSquare(b, loc, rows);
    int64_t nr = columnsPerBlock();
    Value nrValue = indexConstant(b, loc, nr);
    Value panelBlock = arith::DivUIOp::create(b, loc, col, nrValue);
    Value lane = arith::AddIOp::create(
        b, loc, arith::RemUIOp::create(b, loc, col, nrValue),
        indexConstant(b, loc, w * nr));
    for (int64_t j = 0; j < vw; ++j) {
      Value kRow = arith::AddIOp::create(b, loc, k, indexConstant(b, loc, j));
      panel = vector::TransferWriteOp::create(
                  b, loc, rows[j], panel, ValueRange{panelBlock, kRow, lane},
                  ArrayRef<bool>{true})
                  .getResult();
    }
    return panel;
  }

  /// Transposes the square of `rows` (as many vectors as lanes, a power of
  /// two) in place: at each level s, rows i and i + s (bit s of i clear)
  /// swap the s-wide halves that the transpose exchanges, so that after
  /// log2(lanes) levels, each a pair of two-source shuffles per row pair,
  /// element (i, j) is at (j, i).
  static void transposeSquare(OpBuilder &b, Location loc,
                              SmallVectorImpl<Value> &rows) {
    auto lanes = static_cast<int64_t>(rows.size());
    for (int64_t s = lanes / 2; s >= 1; s /= 2) {
      SmallVector<int64_t> low, high;
      for (int64_t j = 0; j < lanes; ++j) {
        bool upper = j & s;
        low.push_back(upper ? lanes + j - s : j);
        high.push_back(upper ? lanes + j : j + s);
      }
      for (int64_t i = 0; i < lanes; ++i) {
        if (i & s)
          continue;
        Value x = rows[i], y = rows[i + s];
        rows[i] = vector::ShuffleOp::create(b, loc, x, y, low);
        rows[i + s] = vector::ShuffleOp::create(b, loc, x, y, high);
      }
    }
  }

  /// One block of the outer kernel: accumulators (w, i, v) for weight w,
  /// row i and the v-th vector of the block's columns, over the chunk's K
  /// steps, one broadcast input element per row and step. As in BLIS, the
  /// accumulators start from the earlier chunks' partial sums and a chunk
  /// that is not the last stores them back, a whole vector each: the
  /// scratch tile holds every column and clamped row of a block (a clamped
  /// row computes and stores the same values as the row it repeats), so
  /// these loads and stores need no mask or branch. The last chunk hands
  /// the finished sums to the epilogue. Returns the written `dest`.
  Value outerBlock(OpBuilder &b, Location loc, const Block &block,
                   const KChunk &chunk, Value panel, Value dest,
                   Value scratch) const {
    int64_t mr = shape.microRows, vw = shape.vectorWidth;
    int64_t nv = columnsPerBlock() / vw, nw = numWeights();
    auto accType = VectorType::get({vw}, b.getF32Type());
    Value padding = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
    // Vector (w, i, v) of the block in the scratch tile.
    auto scratchIndices = [&](OpBuilder &sb, Location sl, int64_t w, int64_t i,
                              int64_t v) -> SmallVector<Value> {
      Value n = arith::AddIOp::create(sb, sl, block.col,
                                      indexConstant(sb, sl, v * vw));
      return {indexConstant(sb, sl, w), block.localRows[i], n};
    };
    if (chunk.role == ChunkRole::middle)
      scratch = dest;
    bool partial =
        chunk.role == ChunkRole::middle || chunk.role == ChunkRole::last;
    SmallVector<Value> accs;
    for (int64_t w = 0; w < nw; ++w)
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nv; ++v)
          accs.push_back(partial ? vector::TransferReadOp::create(
                                       b, loc, accType, scratch,
                                       scratchIndices(b, loc, w, i, v), padding,
                                       ArrayRef<bool>{true})
                                       .getResult()
                                 : arith::ConstantOp::create(
                                       b, loc,
                                       DenseElementsAttr::get(
                                           accType, b.getF32FloatAttr(0.0f)))
                                       .getResult());
    auto kLoop = scf::ForOp::create(
        b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, chunk.length),
        indexConstant(b, loc, 1), accs,
        [&](OpBuilder &kb, Location kl, Value k, ValueRange state) {
          scf::YieldOp::create(
              kb, kl, outerStep(kb, kl, block, chunk, panel, k, state));
        });
    if (chunk.role == ChunkRole::first || chunk.role == ChunkRole::middle) {
      for (auto [id, acc] : llvm::enumerate(kLoop.getResults())) {
        int64_t w = id / (mr * nv), i = id / nv % mr, v = id % nv;
        dest = vector::TransferWriteOp::create(b, loc, acc, dest,
                                               scratchIndices(b, loc, w, i, v),
                                               ArrayRef<bool>{true})
                   .getResult();
      }
      return dest;
    }
    // The finished sums, in the order of the dot kernel's.
    auto sumsType = VectorType::get({nw * mr * nv * vw}, b.getF32Type());
    Value sums = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(sumsType, b.getF32FloatAttr(0.0f)));
    for (auto [id, acc] : llvm::enumerate(kLoop.getResults()))
      sums = vector::InsertStridedSliceOp::create(
          b, loc, acc, sums, ArrayRef<int64_t>{int64_t(id) * vw},
          ArrayRef<int64_t>{1});
    return finishBlock(b, loc, block, ChunkRole::only, sums, dest, nullptr);
  }

  /// One K step `k` of the chunk for the outer block: the panel row's
  /// vectors times each row's broadcast element, added to `accs`.
  SmallVector<Value> outerStep(OpBuilder &b, Location loc, const Block &block,
                               const KChunk &chunk, Value panel, Value k,
                               ValueRange accs) const {
    int64_t mr = shape.microRows, vw = shape.vectorWidth;
    int64_t nv = columnsPerBlock() / vw, nw = numWeights();
    auto accType = VectorType::get({vw}, b.getF32Type());
    Value kIdx = arith::AddIOp::create(b, loc, chunk.begin, k);
    Value padding = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
    Value panelBlock = arith::DivUIOp::create(
        b, loc, block.col, indexConstant(b, loc, columnsPerBlock()));
    SmallVector<Value> panelRow;
    for (int64_t w = 0; w < nw; ++w)
      for (int64_t v = 0; v < nv; ++v)
        panelRow.push_back(vector::TransferReadOp::create(
            b, loc, accType, panel,
            ValueRange{panelBlock, k, indexConstant(b, loc, (w * nv + v) * vw)},
            padding, ArrayRef<bool>{true}));
    SmallVector<Value> next(accs);
    for (int64_t i = 0; i < mr; ++i) {
      Value x = tensor::ExtractOp::create(b, loc, op.getInput(),
                                          ValueRange{block.rowIds[i], kIdx});
      Value a =
          vector::BroadcastOp::create(b, loc, accType, extendToF32(b, loc, x));
      for (int64_t w = 0; w < nw; ++w)
        for (int64_t v = 0; v < nv; ++v) {
          int64_t id = (w * mr + i) * nv + v;
          next[id] = multiplyAdd(b, loc, a, panelRow[w * nv + v], accs[id]);
        }
    }
    return next;
  }

  /// What a block does with its `sums` (weight-major, then row-major, one
  /// row of columnsPerBlock each) under `role`: adds the earlier chunks'
  /// partial sums from `scratch`, then writes its own to `dest` (the scratch
  /// tile) or finishes the outputs. Returns the written `dest`.
  Value finishBlock(OpBuilder &b, Location loc, const Block &block,
                    ChunkRole role, Value sums, Value dest,
                    Value scratch) const {
    int64_t mr = shape.microRows, nr = columnsPerBlock(), nw = numWeights();
    auto f32 = b.getF32Type();
    auto sumsType = cast<VectorType>(sums.getType());
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
      for (int64_t wi = 0; wi < nw; ++wi)
        for (int64_t i = 0; i < mr; ++i) {
          Value part = vector::TransferReadOp::create(
              b, loc, VectorType::get({nr}, f32), scratch,
              ValueRange{indexConstant(b, loc, wi), block.localRows[i],
                         block.col},
              padding, ArrayRef<bool>{false});
          partial = vector::InsertStridedSliceOp::create(
              b, loc, part, partial, ArrayRef<int64_t>{(wi * mr + i) * nr},
              ArrayRef<int64_t>{1});
        }
      sums = arith::AddFOp::create(b, loc, sums, partial);
    }
    if (role == ChunkRole::first || role == ChunkRole::middle) {
      for (int64_t wi = 0; wi < nw; ++wi)
        for (int64_t i = 0; i < mr; ++i)
          dest = storeRowIf(
              b, loc, block, i, slice(sums, (wi * mr + i) * nr, nr), dest,
              {indexConstant(b, loc, wi), block.localRows[i], block.col});
      return dest;
    }

    // The epilogue on the whole block at once (one vector exp for the
    // block rather than one per row), then one store per row: rows past the
    // tile are skipped, columns past it masked off.
    int64_t blockSize = mr * nr;
    Value v = slice(sums, 0, blockSize);
    if (op.getEpilogue() == Epilogue::swiglu)
      v = buildSwiglu(b, loc, v, slice(sums, blockSize, blockSize));
    if (Value scale = op.getRowScale()) {
      SmallVector<Value> lanes;
      for (Value r : block.rowIds) {
        Value s = tensor::ExtractOp::create(b, loc, scale, ValueRange{r});
        lanes.append(nr, s);
      }
      v = arith::MulFOp::create(
          b, loc, v,
          vector::FromElementsOp::create(
              b, loc, VectorType::get({blockSize}, f32), lanes));
    }
    v = truncateFromF32(b, loc, v, getElementTypeOrSelf(op.getType()));
    for (int64_t i = 0; i < mr; ++i)
      dest = storeRowIf(
          b, loc, block, i, slice(v, i * nr, nr), dest,
          {arith::AddIOp::create(b, loc, block.row, indexConstant(b, loc, i)),
           block.col});
    return dest;
  }

  /// `dest` with `v` written at `indices` (masked past the tile's columns)
  /// if row i of the block is in the tile.
  Value storeRowIf(OpBuilder &b, Location loc, const Block &block, int64_t i,
                   Value v, Value dest, SmallVector<Value> indices) const {
    Value r =
        arith::AddIOp::create(b, loc, block.row, indexConstant(b, loc, i));
    Value inTile =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, r, kt.rows);
    auto store = scf::IfOp::create(
        b, loc, inTile,
        [&](OpBuilder &tb, Location tl) {
          Value written = vector::TransferWriteOp::create(
                              tb, tl, v, dest, indices, ArrayRef<bool>{false})
                              .getResult();
          scf::YieldOp::create(tb, tl, written);
        },
        [&](OpBuilder &eb, Location el) {
          scf::YieldOp::create(eb, el, dest);
        });
    return store.getResult(0);
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
        sums.push_back(
            vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                        source, arith::FastMathFlags::reassoc));
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
        Value lo =
            vector::ShuffleOp::create(b, loc, level[p], level[p + 1], low);
        Value hi =
            vector::ShuffleOp::create(b, loc, level[p], level[p + 1], high);
        next.push_back(arith::AddFOp::create(b, loc, lo, hi));
      }
      level = std::move(next);
    }
    return level.front();
  }

  KernelShape shape;
  KernelTile kt;
  mutable GroupedMatmulOp op; // ops' accessors are not const
  SmallVector<Value> weights;
};

struct GroupedMatmulTiling : OpRewritePattern<GroupedMatmulOp> {
  /// `defaults` apply to ops without a #moe.cpu_matmul_kernel. Records each
  /// kernel loop it builds in `kernels`.
  GroupedMatmulTiling(MLIRContext *ctx, KernelShape defaults,
                      SmallVectorImpl<Operation *> &kernels)
      : OpRewritePattern(ctx), defaults(defaults), kernels(kernels) {}

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    auto weightType = cast<RankedTensorType>(op.getWeight().getType());
    if (!weightType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static weight shape");
    KernelShape shape = defaults;
    if (auto kernel = dyn_cast_if_present<CpuMatmulKernelAttr>(
            MoeDialect::KernelAttrHelper(op->getContext()).getAttr(op)))
      shape = KernelShape::get(kernel);
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    int64_t numGroups = weightType.getDimSize(0);
    int64_t n = weightType.getDimSize(1), k = weightType.getDimSize(2);
    Value input = op.getInput();
    auto resultType = cast<RankedTensorType>(op.getType());

    // The row tiles of the schedule, times ceil(N / tile-cols) column tiles.
    auto tilesType =
        RankedTensorType::get({ShapedType::kDynamic, 3}, b.getI32Type());
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
    auto index = [&](int64_t v) { return indexConstant(b, loc, v); };
    auto field = [&](int64_t column) -> Value {
      Value v = tensor::ExtractOp::create(b, loc, schedule,
                                          ValueRange{tile, index(column)});
      return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), v);
    };
    // Clamped so that malformed offsets can neither pick a missing weight nor
    // reach past the rows (well-formed ones are unchanged).
    Value numRows = getValueOrCreateConstantIndexOp(b, loc, rows);
    Value group =
        arith::MinUIOp::create(b, loc, field(0), index(numGroups - 1));
    Value firstRow = arith::MinUIOp::create(b, loc, field(1), numRows);
    Value tileRows = arith::MinUIOp::create(
        b, loc, field(2), arith::SubIOp::create(b, loc, numRows, firstRow));
    Value firstCol =
        arith::MulIOp::create(b, loc, colTile, index(shape.tileCols));
    Value tileCols = arith::MinSIOp::create(
        b, loc, index(shape.tileCols),
        arith::SubIOp::create(b, loc, index(n), firstCol));

    KernelBuilder kernel(
        shape, {op, group, firstRow, tileRows, firstCol, tileCols, n, k});
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, out, ArrayRef<OpFoldResult>{firstRow, firstCol},
        ArrayRef<OpFoldResult>{tileRows, tileCols},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    Value result = buildChunks(b, loc, kernel, shape, slice);

    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, result, out, ArrayRef<OpFoldResult>{firstRow, firstCol},
        ArrayRef<OpFoldResult>{tileRows, tileCols},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    kernels.push_back(forall);
    rewriter.setInsertionPointAfter(forall);
    rewriter.replaceOp(
        op, castToType(rewriter, loc, forall.getResult(0), resultType));
    return success();
  }

private:
  /// K in chunks of `tile-k` (a multiple of the K step) so that a tile's
  /// rows and a block's weight rows stay in cache over a chunk; the partial
  /// sums of all but the last chunk wait in an f32 scratch tile. Returns the
  /// work item's `slice` of the result, written.
  static Value buildChunks(OpBuilder &b, Location loc,
                           const KernelBuilder &kernel,
                           const KernelShape &shape, Value slice) {
    auto index = [&](int64_t v) { return indexConstant(b, loc, v); };
    int64_t k = kernel.getOp().getWeight().getType().getDimSize(2);
    int64_t step = shape.kind == MatmulMicroKernel::dot ? kernel.kStep()
                                                        : shape.vectorWidth;
    int64_t chunk = llvm::alignTo(std::max(shape.tileK, step), step);
    int64_t numChunks = llvm::divideCeil(k, chunk);
    int64_t lastStart = (numChunks - 1) * chunk;
    if (numChunks == 1)
      return kernel.buildChunk(b, loc, {index(0), k, ChunkRole::only}, slice,
                               nullptr);
    Value scratch = tensor::EmptyOp::create(
        b, loc,
        ArrayRef<int64_t>{kernel.numWeights(), shape.tileRows, shape.tileCols},
        b.getF32Type());
    scratch = kernel.buildChunk(b, loc, {index(0), chunk, ChunkRole::first},
                                scratch, scratch);
    if (numChunks > 2) {
      auto middle = scf::ForOp::create(
          b, loc, index(chunk), index(lastStart), index(chunk),
          ValueRange{scratch},
          [&](OpBuilder &mb, Location ml, Value kBegin, ValueRange state) {
            scf::YieldOp::create(
                mb, ml,
                kernel.buildChunk(mb, ml, {kBegin, chunk, ChunkRole::middle},
                                  state[0], state[0]));
          });
      scratch = middle.getResult(0);
    }
    return kernel.buildChunk(b, loc,
                             {index(lastStart), k - lastStart, ChunkRole::last},
                             slice, scratch);
  }

  KernelShape defaults;
  SmallVectorImpl<Operation *> &kernels;
};

struct TileGroupedMatmulPass
    : moe::impl::TileGroupedMatmulBase<TileGroupedMatmulPass> {
  using TileGroupedMatmulBase::TileGroupedMatmulBase;

  void runOnOperation() override {
    std::optional<MatmulMicroKernel> kind = symbolizeMatmulMicroKernel(kernel);
    if (!kind) {
      getOperation()->emitError()
          << "moe-tile-grouped-matmul: kernel must be dot or outer, got '"
          << kernel << "'";
      return signalPassFailure();
    }
    // The options go through the attribute's checks.
    auto emitErrorOnRoot = [&] { return getOperation()->emitError(); };
    function_ref<InFlightDiagnostic()> emitError = emitErrorOnRoot;
    auto attr = CpuMatmulKernelAttr::getChecked(
        emitError, &getContext(), *kind, int64_t(tileRows), int64_t(tileCols),
        int64_t(tileK), int64_t(microRows), int64_t(microCols),
        int64_t(vectorWidth), bool(bf16Dot));
    if (!attr)
      return signalPassFailure();
    SmallVector<Operation *> kernels;
    RewritePatternSet patterns(&getContext());
    patterns.add<GroupedMatmulTiling>(&getContext(), KernelShape::get(attr),
                                      kernels);
    walkAndApplyPatterns(getOperation(), std::move(patterns));

    // The SwiGLU epilogue's exp as a vector polynomial: otherwise it costs
    // as much as a fifth of the kernel. Only the kernels' own exps change.
    approximateKernelMath(kernels);
  }
};

} // namespace

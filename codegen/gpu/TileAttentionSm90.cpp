//===- TileAttentionSm90.cpp - flash attention on sm_90a tensor cores -----===//
//
// The CUDA pipeline's lowering of causal moe.attention (full or sliding
// window, GQA, prefill or queries at an offset) to a flash-attention kernel
// on tensor cores. A CTA of 4 warps (or 8) takes 64 query rows (128) of
// one kv-head's GQA group: 64 / (H / KVH) positions times the group's
// heads, so that each key and value tile it loads serves every head reading
// that kv-head. It
// walks the blocks of 64 keys its rows can see, skipping those the causal
// mask or the window exclude, with the scores, the online softmax and the
// output in registers:
//
//   S = Q K^T   mma.sync m16n8k16 bf16 (f32 accumulators), K from shared
//               memory by ldmatrix;
//   softmax     the block's row max (a shuffle across the 4 lanes sharing a
//               row), P = exp2(S - max), the rescale of the running sums;
//   O += P V    P rounded to bf16 in the registers that held S (the
//               accumulator layout of an m16n8 product is the A-operand
//               layout of the next), V by ldmatrix.trans.
//
// The key and value tiles come through two shared-memory buffers filled by
// cp.async (16-byte chunks, XOR-swizzled so that ldmatrix's 8 row reads hit
// distinct banks at Dh = 64 and 128; 2-way conflicts at the other sizes),
// the next block's copies in flight while this one is multiplied. Why mma.sync rather than wgmma: P is produced in registers,
// where m16n8k16 takes it as it is, and the kernel's parts (its fragment
// layouts) are the ones the PTX ISA documents per thread.
//
//===----------------------------------------------------------------------===//

#include "codegen/AttentionUtils.h"
#include "codegen/Passes.h"
#include "codegen/gpu/Bf16Operands.h"
#include "codegen/gpu/KernelUtils.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>
#include <map>

namespace mlir::moe {
#define GEN_PASS_DEF_TILEATTENTIONSM90
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Query rows per warp: one m16 product.
constexpr int64_t kWarpRows = 16;
/// The rows of the smallest CTA (4 warps), which GQA groups must divide.
constexpr int64_t kMinRows = 4 * kWarpRows;
/// Keys per block: the scores of a warp are 16 x 64 (32 f32 per thread).
constexpr int64_t kKeyBlock = 64;
/// The widest head dimension: 128 keeps the output (Dh / 2 f32 per thread),
/// the scores and the queries' fragments within the registers.
constexpr int64_t kMaxHeadDim = 128;

/// The static facts of one attention op.
struct AttentionShape {
  int64_t heads, kvHeads, headDim;
  std::optional<int64_t> window;
  /// GMHA: the group size; the summaries are a second key range.
  std::optional<int64_t> groupSize;
  Type outType;
  /// A decode step's shape (all queries in one CTA): the grid's x splits
  /// the keys, each CTA writing its rows' unnormalised output, max and sum,
  /// which a combine merges.
  bool splitKeys = false;
  /// Warps per CTA, 4 or 8: 16 query rows each, sharing each key tile.
  int64_t warps = 4;

  int64_t threads() const { return 32 * warps; }
  int64_t rows() const { return kWarpRows * warps; }
  int64_t headsPerKv() const { return heads / kvHeads; }
  /// Query positions per CTA (each with its headsPerKv() heads).
  int64_t positions() const { return rows() / headsPerKv(); }
  /// 16-byte chunks per key row.
  int64_t chunks() const { return headDim / 8; }
  /// The low bits of a row XORed into its chunk index: the largest power of
  /// two dividing the chunks, at most 8 (so a swizzled chunk stays in its
  /// row).
  int64_t swizzleMask() const {
    return std::min<int64_t>(8, chunks() & -chunks()) - 1;
  }
  int64_t tileBytes() const { return kKeyBlock * headDim * 2; }
  /// Two buffers of a key tile and a value tile.
  int64_t sharedBytes() const { return 4 * tileBytes(); }
};

/// Whether this pass takes `op` (moe.attention or moe.grouped_attention);
/// the others keep the generic lowering.
template <typename OpTy>
bool takes(OpTy op) {
  auto query = cast<RankedTensorType>(op.getQuery().getType());
  auto key = cast<RankedTensorType>(op.getKey().getType());
  int64_t heads = query.getDimSize(2), kvHeads = key.getDimSize(2);
  int64_t headDim = query.getDimSize(3);
  auto floatType = [](Value v) {
    return isa<Float32Type, BFloat16Type>(
        cast<RankedTensorType>(v.getType()).getElementType());
  };
  // m16n8k16 steps along the head dimension; a CTA's rows must hold whole
  // GQA groups of heads.
  return headDim % 16 == 0 && headDim <= kMaxHeadDim &&
         kMinRows % (heads / kvHeads) == 0 && floatType(op.getQuery()) &&
         floatType(op.getKey()) && floatType(op.getValue()) &&
         floatType(op.getResult());
}

/// Builds the body of the kernel: arguments q, k, v (bf16 buffers), with
/// GMHA the summaries' keys and values (bf16, [B, T / G, KVH, Dh]), then
/// out (split keys: the partial output [B, S, Tq, H, Dh], max and sum
/// [B, S, Tq, H], f32) and the position of the first query.
class KernelBuilder {
public:
  KernelBuilder(ImplicitLocOpBuilder &b, const AttentionShape &shape,
                ValueRange args)
      : b(b), shape(shape), q(args[0]), k(args[1]), v(args[2]) {
    unsigned next = 3;
    if (shape.groupSize) {
      summaryKeys = args[next++];
      summaryValues = args[next++];
    }
    out = args[next++];
    if (shape.splitKeys) {
      partialMax = args[next++];
      partialSum = args[next++];
    }
    offset = args[next++];
  }

  void build();

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value f32(double v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value div(Value x, int64_t y) { return arith::DivUIOp::create(b, x, idx(y)); }
  Value rem(Value x, int64_t y) { return arith::RemUIOp::create(b, x, idx(y)); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, p, x, y);
  }
  Value extract(Value aggregate, int64_t i) {
    return LLVM::ExtractValueOp::create(b, aggregate, i);
  }

  /// A warp's row `h` (0: lane / 4, 1: 8 further) of the CTA's rows.
  struct Row {
    Value query, head, position, valid;
    /// GMHA: the position's group.
    Value group;
  };
  /// A range of keys the rows attend to under one softmax: the keys
  /// themselves, or GMHA's group summaries.
  struct KeySource {
    Value keys, values, count;
    /// The blocks of 64 some row of the CTA sees.
    Value firstBlock, endBlock;
    /// Whether key `key` is hidden from `row`.
    std::function<Value(Value key, const Row &row)> hidden;
    /// Whether a block starting at `keyStart` holds a key hidden from
    /// some row (the mask is applied to those blocks only).
    std::function<Value(Value keyStart)> straddles;
  };
  Row rowOf(int64_t h);
  /// `keys` and `values` ([B, count, KVH, Dh]), with no range yet.
  KeySource sourceOf(Value keys, Value values);
  KeySource localKeys();
  KeySource groupSummaries();
  SmallVector<Value> loadQueryFragments();
  void issueTile(const KeySource &src, Value block, Value buffer);
  Value swizzledColumn(Value rowLow, int64_t constChunk, Value laneChunk,
                       int64_t maxLane);
  Value ldmatrix(Value tile, Value row, Value column, bool transpose);
  Value mma(ValueRange a, ValueRange bOps, Value c);
  SmallVector<Value> scores(Value keys, ArrayRef<Value> queryFragments);
  SmallVector<Value> masked(ArrayRef<Value> s, Value keyStart,
                            const KeySource &src);
  Value quadReduce(Value x, bool isMax);
  SmallVector<Value> softmaxStep(ArrayRef<Value> s, ValueRange state,
                                 SmallVectorImpl<Value> &x,
                                 MutableArrayRef<Value> out);
  void accumulateValues(Value valueTile, ArrayRef<Value> p,
                        MutableArrayRef<Value> out);
  SmallVector<Value> keyBlock(const KeySource &src, Value block, Value buffer,
                              ValueRange state, ArrayRef<Value> queryFragments);
  SmallVector<Value> keyLoop(const KeySource &src, ValueRange state,
                             ArrayRef<Value> queryFragments);
  void storeOutput(ValueRange state);
  void storePartial(ValueRange state);
  Value tileView(Value base, int64_t index);

  ImplicitLocOpBuilder &b;
  const AttentionShape &shape;
  Value q, k, v, summaryKeys, summaryValues, out, partialMax, partialSum,
      offset;
  // Set up by build().
  /// The low bits of the rows this lane addresses in ldmatrix (lane % 8).
  Value laneRowLow;
  Value tid, lane, warp, batch, kvHead, firstQuery, queries, shared;
  /// Split keys: this CTA's split of the grid's.
  Value split, splits;
  Value firstPosition, lastPosition;
  Row rows[2];
  LLVM::LLVMStructType fragType;
};

KernelBuilder::Row KernelBuilder::rowOf(int64_t h) {
  Value r = add(add(mul(warp, idx(kWarpRows)), div(lane, 4)), idx(8 * h));
  Value query = add(firstQuery, div(r, shape.headsPerKv()));
  Row row;
  row.valid = cmp(arith::CmpIPredicate::ult, query, queries);
  // Rows past the queries repeat the last one (finite, never stored).
  row.query = arith::MinUIOp::create(b, query, sub(queries, idx(1)));
  row.head = add(mul(kvHead, idx(shape.headsPerKv())), rem(r, shape.headsPerKv()));
  row.position = add(offset, row.query);
  if (shape.groupSize)
    row.group = div(row.position, *shape.groupSize);
  return row;
}

/// The keys themselves: from the first row's window start (and, for GMHA,
/// its group's start) to the last row's position. A key is hidden after
/// the row's position, at or before its position - W, and before its
/// group's start.
KernelBuilder::KeySource KernelBuilder::sourceOf(Value keys, Value values) {
  KeySource src;
  src.keys = keys;
  src.values = values;
  src.count = memref::DimOp::create(b, keys, 1);
  return src;
}

KernelBuilder::KeySource KernelBuilder::localKeys() {
  KeySource src = sourceOf(k, v);
  std::optional<int64_t> window = shape.window, groupSize = shape.groupSize;
  Value lowKey = idx(0);
  if (window) {
    Value w = idx(*window - 1);
    lowKey = arith::SelectOp::create(
        b, cmp(arith::CmpIPredicate::ugt, firstPosition, w),
        sub(firstPosition, w), idx(0));
  }
  if (groupSize)
    lowKey = arith::MaxUIOp::create(
        b, lowKey, mul(div(firstPosition, *groupSize), idx(*groupSize)));
  src.firstBlock = div(lowKey, kKeyBlock);
  Value endKey =
      arith::MinUIOp::create(b, add(lastPosition, idx(1)), src.count);
  src.endBlock = div(add(endKey, idx(kKeyBlock - 1)), kKeyBlock);
  if (shape.splitKeys) {
    // This CTA's share of the blocks: ceil(blocks / splits) each, the last
    // ones possibly empty.
    Value per = arith::CeilDivUIOp::create(
        b, sub(src.endBlock, src.firstBlock), splits);
    Value first = arith::MinUIOp::create(
        b, add(src.firstBlock, mul(split, per)), src.endBlock);
    src.endBlock = arith::MinUIOp::create(b, add(first, per), src.endBlock);
    src.firstBlock = first;
  }
  src.hidden = [this, window, groupSize](Value key, const Row &row) {
    Value hidden = cmp(arith::CmpIPredicate::ugt, key, row.position);
    // key <= position - W, as key + W <= position.
    if (window)
      hidden = arith::OrIOp::create(
          b, hidden,
          cmp(arith::CmpIPredicate::ule, add(key, idx(*window)), row.position));
    if (groupSize)
      hidden = arith::OrIOp::create(
          b, hidden,
          cmp(arith::CmpIPredicate::ult, key,
              mul(row.group, idx(*groupSize))));
    return hidden;
  };
  src.straddles = [this, window, groupSize](Value keyStart) {
    // Past the first row's position, too old for the last row's window,
    // or before the last row's group.
    Value some = cmp(arith::CmpIPredicate::ugt,
                     add(keyStart, idx(kKeyBlock - 1)), firstPosition);
    if (window)
      some = arith::OrIOp::create(
          b, some,
          cmp(arith::CmpIPredicate::ule, add(keyStart, idx(*window)),
              lastPosition));
    if (groupSize)
      some = arith::OrIOp::create(
          b, some,
          cmp(arith::CmpIPredicate::ult, keyStart,
              mul(div(lastPosition, *groupSize), idx(*groupSize))));
    return some;
  };
  return src;
}

/// GMHA's summaries: summary s (the means of group s) is seen by the rows
/// of later groups, s < the row's group; blocks up to the last row's group.
KernelBuilder::KeySource KernelBuilder::groupSummaries() {
  KeySource src = sourceOf(summaryKeys, summaryValues);
  src.firstBlock = idx(0);
  Value seen = arith::MinUIOp::create(
      b, div(lastPosition, *shape.groupSize), src.count);
  src.endBlock = div(add(seen, idx(kKeyBlock - 1)), kKeyBlock);
  src.hidden = [this](Value s, const Row &row) {
    return cmp(arith::CmpIPredicate::uge, s, row.group);
  };
  src.straddles = [this](Value start) {
    return cmp(arith::CmpIPredicate::uge, add(start, idx(kKeyBlock - 1)),
               div(firstPosition, *shape.groupSize));
  };
  return src;
}

/// The A fragments of the warp's 16 query rows, one per 16 head dimensions:
/// registers {row lane/4, row lane/4 + 8} x {columns 2(lane%4), + 8}, each a
/// pair of bf16 read straight from global memory (once per CTA).
SmallVector<Value> KernelBuilder::loadQueryFragments() {
  auto pair = VectorType::get({2}, b.getBF16Type());
  auto word = VectorType::get({1}, b.getI32Type());
  Value col = mul(rem(lane, 4), idx(2));
  SmallVector<Value> fragments;
  for (int64_t s = 0; s < shape.headDim / 16; ++s) {
    for (int64_t half = 0; half < 2; ++half) {
      for (int64_t h = 0; h < 2; ++h) {
        Value d = add(col, idx(16 * s + 8 * half));
        // An even element: the pair is one aligned 32-bit load.
        Value x = vector::LoadOp::create(
            b, pair, q, ValueRange{batch, rows[h].query, rows[h].head, d},
            /*nontemporal=*/false, llvm::MaybeAlign(4));
        fragments.push_back(vector::ExtractOp::create(
            b, vector::BitCastOp::create(b, word, x), ArrayRef<int64_t>{0}));
      }
    }
  }
  return fragments;
}

/// The element column where chunk `constChunk + laneChunk` (laneChunk at
/// most `maxLane`) of a row whose low bits (row & swizzleMask()) are
/// `rowLow` is stored: chunks are XORed with those bits, so that the 8 rows
/// an ldmatrix reads at one chunk index fall on distinct banks (with a mask
/// of 7, Dh = 64 and 128; a smaller mask leaves 2-way conflicts). Where no
/// carry crosses the mask, only the lane-dependent part is XORed, and the
/// constant part stays an immediate offset of the address.
Value KernelBuilder::swizzledColumn(Value rowLow, int64_t constChunk,
                                    Value laneChunk, int64_t maxLane) {
  int64_t mask = shape.swizzleMask();
  int64_t low = constChunk & mask, high = constChunk & ~mask;
  if (low + maxLane <= mask)
    return mul(add(idx(high), arith::XOrIOp::create(
                                  b, add(idx(low), laneChunk), rowLow)),
               idx(8));
  return mul(arith::XOrIOp::create(b, add(idx(constChunk), laneChunk), rowLow),
             idx(8));
}

/// Tile `index` of the 4 (keys and values of two buffers) as a
/// [64, Dh] bf16 view of shared memory.
Value KernelBuilder::tileView(Value base, int64_t index) {
  auto type = MemRefType::get({kKeyBlock, shape.headDim}, b.getBF16Type(),
                              nullptr, workgroupSpace(b.getContext()));
  Value bytes = add(base, idx(index * shape.tileBytes()));
  return memref::ViewOp::create(b, type, shared, bytes, ValueRange());
}

/// Starts the copies of key block `block` (keys and values) into `buffer`:
/// every thread a few 16-byte chunks; keys past the end are zero-filled
/// (and masked), read from the last key's address.
void KernelBuilder::issueTile(const KeySource &src, Value block,
                              Value buffer) {
  Value base = mul(buffer, idx(2 * shape.tileBytes()));
  Value keyTile = tileView(base, 0), valueTile = tileView(base, 1);
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  int64_t chunks = kKeyBlock * shape.chunks();
  int64_t threads = shape.threads();
  for (int64_t i = 0, e = llvm::divideCeil(chunks, threads); i < e; ++i) {
    Value c = add(tid, idx(i * threads));
    OpBuilder::InsertionGuard guard(b);
    if ((i + 1) * threads > chunks) {
      auto inTile = scf::IfOp::create(
          b, cmp(arith::CmpIPredicate::ult, c, idx(chunks)), false);
      b.setInsertionPointToStart(inTile.thenBlock());
    }
    // Where the threads cover whole rows (chunks dividing the threads), a
    // thread's rows are 128 / chunks apart and its chunk is fixed.
    Value row, chunk;
    if (threads % shape.chunks() == 0) {
      row = add(div(tid, shape.chunks()), idx(i * (threads / shape.chunks())));
      chunk = rem(tid, shape.chunks());
    } else {
      row = div(c, shape.chunks());
      chunk = rem(c, shape.chunks());
    }
    Value key = add(mul(block, idx(kKeyBlock)), row);
    Value inRange = cmp(arith::CmpIPredicate::ult, key, src.count);
    Value source = arith::MinUIOp::create(b, key, sub(src.count, idx(1)));
    Value elements = arith::SelectOp::create(b, inRange, idx(8), idx(0));
    Value d = mul(chunk, idx(8));
    Value stored = swizzledColumn(
        arith::AndIOp::create(b, row, idx(shape.swizzleMask())), 0, chunk,
        shape.chunks());
    for (Value tile : {keyTile, valueTile}) {
      nvgpu::DeviceAsyncCopyOp::create(
          b, tokenType, tile, ValueRange{row, stored},
          tile == keyTile ? src.keys : src.values,
          ValueRange{batch, source, kvHead, d}, b.getIndexAttr(8), elements,
          b.getUnitAttr());
    }
  }
}

/// ldmatrix.x4 of four 8 x 8 blocks of `tile`; lane L gives the address of
/// its row of block L / 8: row `row`, element column `column` (swizzled).
Value KernelBuilder::ldmatrix(Value tile, Value row, Value column,
                              bool transpose) {
  auto type = VectorType::get({4, 2}, b.getBF16Type());
  return nvgpu::LdMatrixOp::create(b, type, tile, ValueRange{row, column},
                                   transpose, 4);
}

/// One m16n8k16 bf16 product with f32 accumulators.
Value KernelBuilder::mma(ValueRange a, ValueRange bOps, Value c) {
  SmallVector<Value> acc;
  for (int64_t i = 0; i < 4; ++i)
    acc.push_back(extract(c, i));
  return NVVM::MmaOp::create(
      b, fragType, a, bOps, acc, ArrayRef<int64_t>{16, 8, 16},
      std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                    NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
}

/// The 4 B registers of two m16n8k16 steps in an ldmatrix.x4 result.
static SmallVector<Value> words(ImplicitLocOpBuilder &b, Value matrices) {
  auto word = VectorType::get({1}, b.getI32Type());
  SmallVector<Value> result;
  for (int64_t i = 0; i < 4; ++i) {
    Value pair = vector::ExtractOp::create(b, matrices, ArrayRef<int64_t>{i});
    result.push_back(vector::ExtractOp::create(
        b, vector::BitCastOp::create(b, word, pair), ArrayRef<int64_t>{0}));
  }
  return result;
}

/// The warp's scores against the tile's 64 keys: 8 fragments of 8 keys
/// (registers: row lane/4, keys 2(lane%4), +1; then row lane/4 + 8). The B
/// operand of keys 8n.. and head dimensions 32u.. is one ldmatrix.x4 (lane
/// L: key 8n + L%8, chunk 4u + L/8), two k-steps of 16.
SmallVector<Value> KernelBuilder::scores(Value keyTile,
                                         ArrayRef<Value> queryFragments) {
  Value zero = LLVM::ZeroOp::create(b, fragType);
  SmallVector<Value> s(kKeyBlock / 8, zero);
  Value matrix = div(lane, 8);
  for (int64_t n = 0; n < kKeyBlock / 8; ++n) {
    Value row = add(idx(8 * n), rem(lane, 8));
    for (int64_t u = 0, e = llvm::divideCeil(shape.headDim, 32); u < e; ++u) {
      // With Dh % 32 == 16 the last x4 has one k-step: blocks 2 and 3
      // repeat 0 and 1 (unused).
      bool partial = 4 * u + 4 > shape.chunks();
      Value column = swizzledColumn(laneRowLow, 4 * u,
                                    partial ? rem(matrix, 2) : matrix,
                                    partial ? 1 : 3);
      SmallVector<Value> bw = words(b, ldmatrix(keyTile, row, column, false));
      for (int64_t step = 0; step < 2 && 2 * u + step < shape.headDim / 16;
           ++step) {
        ArrayRef<Value> a = queryFragments.slice(4 * (2 * u + step), 4);
        s[n] = mma(a, {bw[2 * step], bw[2 * step + 1]}, s[n]);
      }
    }
  }
  return s;
}

/// `s` with the scores of the keys hidden from a row set to -inf.
SmallVector<Value> KernelBuilder::masked(ArrayRef<Value> s, Value keyStart,
                                         const KeySource &src) {
  Value minusInf = f32(-INFINITY);
  Value col = mul(rem(lane, 4), idx(2));
  SmallVector<Value> result;
  for (auto [n, frag] : llvm::enumerate(s)) {
    Value x = frag;
    for (int64_t i = 0; i < 4; ++i) {
      const Row &row = rows[i / 2];
      Value key = add(keyStart, add(col, idx(8 * n + i % 2)));
      Value hidden = src.hidden(key, row);
      Value value = arith::SelectOp::create(b, hidden, minusInf, extract(x, i));
      x = LLVM::InsertValueOp::create(b, x, value, i);
    }
    result.push_back(x);
  }
  return result;
}

/// The max (or sum) of `x` over the 4 lanes that hold one row.
Value KernelBuilder::quadReduce(Value x, bool isMax) {
  for (int32_t offset : {1, 2}) {
    Value other =
        gpu::ShuffleOp::create(b, x, offset, 32, gpu::ShuffleMode::XOR)
            .getShuffleResult();
    x = isMax ? Value(arith::MaxNumFOp::create(b, x, other))
              : Value(arith::AddFOp::create(b, x, other));
  }
  return x;
}

/// The online softmax step on a block's scores `s` (masked): the scores in
/// log2 units, the rows' new maxima (over the 4 lanes of a row), P = exp2(x
/// - max) in place of `x`, the new sums and the rescale of the output
/// fragments `out`. `state` holds the old maxima then sums of rows lane/4
/// and lane/4 + 8 (after the output fragments); returns the new ones.
SmallVector<Value> KernelBuilder::softmaxStep(ArrayRef<Value> s,
                                              ValueRange state,
                                              SmallVectorImpl<Value> &x,
                                              MutableArrayRef<Value> out) {
  // exp(x / sqrt(Dh)) = exp2(x * log2(e) / sqrt(Dh)).
  Value scale = f32(M_LOG2E / std::sqrt(double(shape.headDim)));
  Value minusInf = f32(-INFINITY), zero = f32(0);
  x.resize(4 * s.size());
  for (auto [n, frag] : llvm::enumerate(s))
    for (int64_t i = 0; i < 4; ++i)
      x[4 * n + i] = arith::MulFOp::create(b, extract(frag, i), scale);
  // Register j of the fragments belongs to row (j % 4) / 2.
  auto ofRow = [](size_t j, int64_t h) {
    return (j % 4) / 2 == static_cast<size_t>(h);
  };
  Value alpha[2];
  SmallVector<Value> maxes, sums;
  for (int64_t h = 0; h < 2; ++h) {
    Value m = state[h], l = state[2 + h];
    Value blockMax = minusInf;
    for (size_t j = 0; j < x.size(); ++j)
      if (ofRow(j, h))
        blockMax = arith::MaxNumFOp::create(b, blockMax, x[j]);
    Value mNew = arith::MaxNumFOp::create(b, m, quadReduce(blockMax, true));
    // A row that has seen no key yet subtracts 0, not -inf (no NaN).
    Value mUse = arith::SelectOp::create(
        b,
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mNew, minusInf),
        zero, mNew);
    alpha[h] = math::Exp2Op::create(b, arith::SubFOp::create(b, m, mUse));
    Value sum = zero;
    for (size_t j = 0; j < x.size(); ++j) {
      if (!ofRow(j, h))
        continue;
      x[j] = math::Exp2Op::create(b, arith::SubFOp::create(b, x[j], mUse));
      sum = arith::AddFOp::create(b, sum, x[j]);
    }
    maxes.push_back(mNew);
    sums.push_back(arith::AddFOp::create(
        b, arith::MulFOp::create(b, l, alpha[h]), sum));
  }
  for (Value &o : out)
    for (int64_t i = 0; i < 4; ++i)
      o = LLVM::InsertValueOp::create(
          b, o, arith::MulFOp::create(b, extract(o, i), alpha[i / 2]), i);
  llvm::append_range(maxes, sums);
  return maxes;
}

/// out += P V for a block's probabilities `p` (score layout). The m16n8
/// accumulator layout is the A-operand layout of the next product: keys
/// 16t.. are score fragments 2t and 2t + 1, rounded to bf16 pairs in place.
void KernelBuilder::accumulateValues(Value valueTile, ArrayRef<Value> p,
                                     MutableArrayRef<Value> out) {
  auto pack = [&](Value lo, Value hi) -> Value {
    auto bf16 = b.getBF16Type();
    Value pair = vector::FromElementsOp::create(
        b, VectorType::get({2}, bf16),
        ValueRange{arith::TruncFOp::create(b, bf16, lo),
                   arith::TruncFOp::create(b, bf16, hi)});
    return vector::ExtractOp::create(
        b,
        vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()),
                                  pair),
        ArrayRef<int64_t>{0});
  };
  Value matrix = div(lane, 8);
  for (int64_t t = 0; t < kKeyBlock / 16; ++t) {
    const Value *lo = &p[4 * (2 * t)], *hi = &p[4 * (2 * t + 1)];
    Value a[4] = {pack(lo[0], lo[1]), pack(lo[2], lo[3]), pack(hi[0], hi[1]),
                  pack(hi[2], hi[3])};
    // ldmatrix.trans, lane L: key 16t + 8 (L/8 % 2) + L%8, chunk 2u + L/16;
    // blocks 0, 1 are the B operand of head dimensions 16u.., 2, 3 of 16u+8..
    Value row =
        add(idx(16 * t), add(mul(rem(matrix, 2), idx(8)), rem(lane, 8)));
    for (int64_t u = 0; u < shape.headDim / 16; ++u) {
      Value column = swizzledColumn(laneRowLow, 2 * u, div(matrix, 2), 1);
      SmallVector<Value> bw = words(b, ldmatrix(valueTile, row, column, true));
      out[2 * u] = mma(a, {bw[0], bw[1]}, out[2 * u]);
      out[2 * u + 1] = mma(a, {bw[2], bw[3]}, out[2 * u + 1]);
    }
  }
}

/// One block of keys: the scores, masked where the block holds keys some
/// row may not see; the online softmax update of the state (Dh / 8 output
/// fragments, then the running max and sum of rows lane/4 and lane/4 + 8,
/// in log2 units); O = O * rescale + P V.
SmallVector<Value> KernelBuilder::keyBlock(const KeySource &src, Value block,
                                           Value buffer, ValueRange state,
                                           ArrayRef<Value> queryFragments) {
  int64_t outFrags = shape.headDim / 8;
  Value base = mul(buffer, idx(2 * shape.tileBytes()));
  Value keyTile = tileView(base, 0), valueTile = tileView(base, 1);
  Value keyStart = mul(block, idx(kKeyBlock));
  SmallVector<Value> s = scores(keyTile, queryFragments);
  auto maskIf = scf::IfOp::create(
      b, TypeRange(SmallVector<Type>(s.size(), fragType)),
      src.straddles(keyStart), true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(maskIf.thenBlock());
    scf::YieldOp::create(b, masked(s, keyStart, src));
    b.setInsertionPointToStart(maskIf.elseBlock());
    scf::YieldOp::create(b, s);
  }
  s.assign(maskIf.getResults().begin(), maskIf.getResults().end());
  SmallVector<Value> out(state.take_front(outFrags));
  SmallVector<Value> p;
  SmallVector<Value> rowState =
      softmaxStep(s, state.drop_front(outFrags), p, out);
  accumulateValues(valueTile, p, out);
  llvm::append_range(out, rowState);
  return out;
}

/// Split keys: each valid row's unnormalised output, its max (log2 units)
/// and its sum, for the combine; a split that saw no key writes -inf and 0.
void KernelBuilder::storePartial(ValueRange state) {
  int64_t outFrags = shape.headDim / 8;
  Value col = mul(rem(lane, 4), idx(2));
  Value firstLane =
      cmp(arith::CmpIPredicate::eq, rem(lane, 4), idx(0));
  for (int64_t h = 0; h < 2; ++h) {
    Value l = quadReduce(state[outFrags + 2 + h], false);
    const Row &row = rows[h];
    auto rowIf = scf::IfOp::create(b, row.valid, false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rowIf.thenBlock());
    for (int64_t n = 0; n < outFrags; ++n)
      for (int64_t e = 0; e < 2; ++e)
        memref::StoreOp::create(
            b, extract(state[n], 2 * h + e), out,
            ValueRange{batch, split, row.query, row.head,
                       add(col, idx(8 * n + e))});
    auto laneIf = scf::IfOp::create(b, firstLane, false);
    b.setInsertionPointToStart(laneIf.thenBlock());
    SmallVector<Value> at{batch, split, row.query, row.head};
    memref::StoreOp::create(b, state[outFrags + h], partialMax, at);
    memref::StoreOp::create(b, l, partialSum, at);
  }
}

void KernelBuilder::storeOutput(ValueRange state) {
  if (shape.splitKeys)
    return storePartial(state);
  int64_t outFrags = shape.headDim / 8;
  Value col = mul(rem(lane, 4), idx(2));
  for (int64_t h = 0; h < 2; ++h) {
    Value l = quadReduce(state[outFrags + 2 + h], false);
    Value inv = arith::SelectOp::create(
        b, arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, l, f32(0)),
        arith::DivFOp::create(b, f32(1), l), f32(0));
    auto rowIf = scf::IfOp::create(b, rows[h].valid, false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rowIf.thenBlock());
    for (int64_t n = 0; n < outFrags; ++n) {
      for (int64_t e = 0; e < 2; ++e) {
        Value o = arith::MulFOp::create(b, extract(state[n], 2 * h + e), inv);
        o = truncateFromF32(b, b.getLoc(), o, shape.outType);
        memref::StoreOp::create(
            b, o, out,
            ValueRange{batch, rows[h].query, rows[h].head,
                       add(col, idx(8 * n + e))});
      }
    }
  }
}

/// The blocks of `src` under one softmax, continuing `state`: the first
/// block's copies, then per block the next one's copies into the other
/// buffer (which every warp has finished reading: the barrier ending the
/// previous iteration), one commit group per block (empty after the last),
/// a wait for all groups but the newest (this block's chunks, for this
/// thread) and a barrier (every thread's).
SmallVector<Value> KernelBuilder::keyLoop(const KeySource &src,
                                          ValueRange state,
                                          ArrayRef<Value> queryFragments) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  auto ifThen = [&](Value condition, function_ref<void()> body) {
    OpBuilder::InsertionGuard guard(b);
    auto ifOp = scf::IfOp::create(b, condition, false);
    b.setInsertionPointToStart(ifOp.thenBlock());
    body();
  };
  ifThen(cmp(arith::CmpIPredicate::ult, src.firstBlock, src.endBlock),
         [&] { issueTile(src, src.firstBlock, idx(0)); });
  nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange());
  auto loop =
      scf::ForOp::create(b, src.firstBlock, src.endBlock, idx(1), state);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value block = loop.getInductionVar();
  Value buffer = rem(sub(block, src.firstBlock), 2);
  Value next = add(block, idx(1));
  ifThen(cmp(arith::CmpIPredicate::ult, next, src.endBlock),
         [&] { issueTile(src, next, sub(idx(1), buffer)); });
  Value token =
      nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange());
  nvgpu::DeviceAsyncWaitOp::create(b, token, b.getI32IntegerAttr(1));
  gpu::BarrierOp::create(b);
  SmallVector<Value> newState = keyBlock(src, block, buffer,
                                         loop.getRegionIterArgs(),
                                         queryFragments);
  gpu::BarrierOp::create(b);
  scf::YieldOp::create(b, newState);
  return llvm::to_vector_of<Value>(loop.getResults());
}

void KernelBuilder::build() {
  auto *ctx = b.getContext();
  fragType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(4, b.getF32Type()));
  tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  lane = rem(tid, 32);
  warp = div(tid, 32);
  laneRowLow = arith::AndIOp::create(b, rem(lane, 8), idx(shape.swizzleMask()));
  batch = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  kvHead = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  if (shape.splitKeys) {
    // One query tile; x splits the keys.
    split = gpu::BlockIdOp::create(b, gpu::Dimension::x);
    splits = gpu::GridDimOp::create(b, gpu::Dimension::x);
    firstQuery = idx(0);
  } else {
    // The latest (longest) query tiles first, so that the short ones fill
    // the SMs at the end.
    Value tile =
        sub(sub(gpu::GridDimOp::create(b, gpu::Dimension::x), idx(1)),
            gpu::BlockIdOp::create(b, gpu::Dimension::x));
    firstQuery = mul(tile, idx(shape.positions()));
  }
  queries = memref::DimOp::create(b, q, 1);
  Value batches = memref::DimOp::create(b, q, 0);
  // An empty batch or query range launches one CTA, which does nothing.
  Value work = arith::AndIOp::create(
      b, cmp(arith::CmpIPredicate::ult, batch, batches),
      cmp(arith::CmpIPredicate::ult, firstQuery, queries));
  auto workIf = scf::IfOp::create(b, work, false);
  b.setInsertionPointToStart(workIf.thenBlock());
  shared = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), nullptr,
                         workgroupSpace(ctx)));
  rows[0] = rowOf(0);
  rows[1] = rowOf(1);
  firstPosition = add(offset, firstQuery);
  Value lastQuery = arith::MinUIOp::create(
      b, add(firstQuery, idx(shape.positions() - 1)), sub(queries, idx(1)));
  lastPosition = add(offset, lastQuery);
  SmallVector<Value> queryFragments = loadQueryFragments();

  int64_t outFrags = shape.headDim / 8;
  SmallVector<Value> state(outFrags, LLVM::ZeroOp::create(b, fragType));
  state.append({f32(-INFINITY), f32(-INFINITY), f32(0), f32(0)});
  // GMHA: the earlier groups' summaries, then the local keys, in one
  // softmax.
  if (shape.groupSize)
    state = keyLoop(groupSummaries(), state, queryFragments);
  state = keyLoop(localKeys(), state, queryFragments);
  storeOutput(state);
  b.setInsertionPointAfter(workIf);
  gpu::ReturnOp::create(b);
}

/// A read-only buffer of the [B, T, heads, Dh] tensor `t`, cast to dynamic
/// B and T: the kernel reads them with memref.dim, so ops of one shape but
/// other static B or T (a decode step of 1 query and one of 4) share it.
Value readOperand(ImplicitLocOpBuilder &b, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  Value buffer = readBuffer(b, t);
  SmallVector<int64_t> shape(type.getShape());
  shape[0] = shape[1] = ShapedType::kDynamic;
  auto dynamic = MemRefType::get(shape, type.getElementType());
  return dynamic == buffer.getType()
             ? buffer
             : Value(memref::CastOp::create(b, dynamic, buffer));
}

/// The kernels built so far, one per static shape: a model's layers share
/// them.
class KernelCache {
public:
  explicit KernelCache(ModuleOp module) : module(module), symbols(module) {}

  gpu::GPUFuncOp get(const AttentionShape &shape, TypeRange types);

private:
  ModuleOp module;
  SymbolTable symbols;
  std::map<std::string, gpu::GPUFuncOp> kernels;
};

gpu::GPUFuncOp KernelCache::get(const AttentionShape &shape, TypeRange types) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attention_sm90_h" << shape.heads << "_kv" << shape.kvHeads << "_d"
     << shape.headDim;
  if (shape.groupSize)
    os << "_g" << *shape.groupSize;
  if (shape.window)
    os << "_w" << *shape.window;
  if (shape.splitKeys)
    os << "_split";
  if (shape.warps != 4)
    os << "_" << shape.warps << "warps";
  os << "_" << shape.outType;
  gpu::GPUFuncOp &kernel = kernels[name];
  if (kernel)
    return kernel;
  ImplicitLocOpBuilder b(module.getLoc(), module.getContext());
  kernel = createKernel(b, module, symbols, name, types, shape.threads());
  KernelBuilder(b, shape, kernel.getArguments()).build();
  return kernel;
}

/// Whether `op` gets the split-keys shape: a static number of queries whose
/// rows fit one CTA (a decode step: one query against the cache), where
/// the query tiles alone would give B x KVH CTAs for the whole cache.
bool splitsKeys(Operation *op, const AttentionShape &shape) {
  auto queryType = cast<RankedTensorType>(op->getOperand(0).getType());
  return isa<AttentionOp>(op) && !queryType.isDynamicDim(1) &&
         queryType.getDimSize(1) <= shape.positions();
}

/// The split-keys partials merged: per row the max M of the splits' maxima
/// (log2 units), then sum_s O_s 2^(m_s - M) / sum_s l_s 2^(m_s - M), cast
/// to `outType`: three generics over the small partials.
Value combinePartials(ImplicitLocOpBuilder &b, Value outs, Value maxima,
                      Value sums, Type outType) {
  auto par = utils::IteratorType::parallel;
  auto red = utils::IteratorType::reduction;
  Location loc = b.getLoc();
  // Sizes [B, Tq, H, Dh] from the partials' [B, S, Tq, H, Dh].
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, outs);
  SmallVector<OpFoldResult> rowSizes{sizes[0], sizes[2], sizes[3]};
  SmallVector<OpFoldResult> outSizes{sizes[0], sizes[2], sizes[3], sizes[4]};
  Value maxInit = filledTensor(b, loc, rowSizes, b.getF32FloatAttr(-INFINITY));
  // Loops (b, q, h, s).
  Value rowMax =
      GenericBuilder{b, loc, {par, par, par, red}}.build(
          maxima, {{0, 3, 1, 2}}, maxInit, {{0, 1, 2}},
          [](OpBuilder &nb, Location nl, ValueRange args) {
            linalg::YieldOp::create(
                nb, nl, Value(arith::MaxNumFOp::create(nb, nl, args[0], args[1])));
          })[0];
  // 2^(m_s - M), with M = 0 for a row no split saw (none: its own key).
  auto weight = [](OpBuilder &nb, Location nl, Value m, Value rowM) -> Value {
    Value minusInf = arith::ConstantOp::create(
        nb, nl, nb.getF32FloatAttr(-INFINITY));
    Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0));
    Value use = arith::SelectOp::create(
        nb, nl,
        arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, rowM,
                              minusInf),
        zero, rowM);
    return math::Exp2Op::create(nb, nl, arith::SubFOp::create(nb, nl, m, use));
  };
  // acc + x * 2^(m_s - M) over the splits, args (x, m_s, M, acc).
  auto weightedSum = [&](OpBuilder &nb, Location nl, ValueRange args) {
    Value w = weight(nb, nl, args[1], args[2]);
    linalg::YieldOp::create(
        nb, nl,
        Value(arith::AddFOp::create(
            nb, nl, args[3], arith::MulFOp::create(nb, nl, args[0], w))));
  };
  Value sumInit = filledTensor(b, loc, rowSizes, b.getF32FloatAttr(0));
  Value rowSum =
      GenericBuilder{b, loc, {par, par, par, red}}.build(
          ValueRange{sums, maxima, rowMax}, {{0, 3, 1, 2}, {0, 3, 1, 2}, {0, 1, 2}},
          sumInit, {{0, 1, 2}}, weightedSum)[0];
  // Loops (b, q, h, d, s).
  Value outInit = filledTensor(b, loc, outSizes, b.getF32FloatAttr(0));
  Value weighted =
      GenericBuilder{b, loc, {par, par, par, par, red}}.build(
          ValueRange{outs, maxima, rowMax},
          {{0, 4, 1, 2, 3}, {0, 4, 1, 2}, {0, 1, 2}}, outInit, {{0, 1, 2, 3}},
          weightedSum)[0];
  Value result = tensor::EmptyOp::create(b, outSizes, outType);
  return GenericBuilder{b, loc, {par, par, par, par}}.build(
      ValueRange{weighted, rowSum}, {{0, 1, 2, 3}, {0, 1, 2}}, result,
      {{0, 1, 2, 3}}, [&](OpBuilder &nb, Location nl, ValueRange args) {
        // A row no key reached (none under the op's contract) gets 0, as
        // in the kernel's own division.
        Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0));
        Value seen = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT,
                                           args[1], zero);
        Value o = arith::SelectOp::create(
            nb, nl, seen, arith::DivFOp::create(nb, nl, args[0], args[1]),
            zero);
        linalg::YieldOp::create(nb, nl, truncateFromF32(nb, nl, o, outType));
      })[0];
}

/// Replaces `op` (moe.attention or moe.grouped_attention) by bf16 buffers
/// of its operands (and of GMHA's summaries, computed once), an output
/// buffer (or the split-keys partials and their combine), and the kernel's
/// launch on a grid of (query tiles or key splits, kv-heads, batch).
void lowerAttention(RewriterBase &rewriter, Operation *op,
                    KernelCache &kernels, Bf16Operands &bf16Operands,
                    int64_t smCount, int64_t warps) {
  ImplicitLocOpBuilder b(op->getLoc(), rewriter);
  Value q = op->getOperand(0), k = op->getOperand(1), v = op->getOperand(2);
  auto queryType = cast<RankedTensorType>(q.getType());
  auto keyType = cast<RankedTensorType>(k.getType());
  auto resultType = cast<RankedTensorType>(op->getResult(0).getType());
  AttentionKeyRange range = AttentionKeyRange::of(op);
  AttentionShape shape{queryType.getDimSize(2), keyType.getDimSize(2),
                       queryType.getDimSize(3), range.window,
                       range.groupSize, resultType.getElementType()};
  // A decode step keeps 4 warps: its rows are mostly idle already.
  shape.splitKeys = splitsKeys(op, shape);
  if (!shape.splitKeys)
    shape.warps = warps;
  SmallVector<Value> args{readOperand(b, bf16Operands.get(b, q)),
                          readOperand(b, bf16Operands.get(b, k)),
                          readOperand(b, bf16Operands.get(b, v))};
  if (range.groupSize) {
    // The means of the f32 (or bf16) keys and values, rounded once.
    auto [keyMeans, valueMeans] =
        buildGroupMeans(b, b.getLoc(), k, v, *range.groupSize);
    args.push_back(readOperand(b, bf16Operands.get(b, keyMeans)));
    args.push_back(readOperand(b, bf16Operands.get(b, valueMeans)));
  }
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, v); };
  Value batches = memref::DimOp::create(b, args[0], 0);
  Value queries = memref::DimOp::create(b, args[0], 1);
  int64_t dyn = ShapedType::kDynamic;
  Value gridX, out, partialMax, partialSum;
  if (shape.splitKeys) {
    // Splits: enough CTAs for two per SM, at most one per visible block
    // of keys (with a window, W + Tq - 1 keys span at most that many
    // blocks plus one).
    Value keyBlocks = arith::CeilDivUIOp::create(
        b, memref::DimOp::create(b, args[1], 1), cst(kKeyBlock));
    if (range.window)
      keyBlocks = arith::MinUIOp::create(
          b, keyBlocks,
          cst(llvm::divideCeil(*range.window + queryType.getDimSize(1) - 1,
                               kKeyBlock) +
              1));
    Value wanted = arith::CeilDivUIOp::create(
        b, cst(2 * smCount),
        arith::MaxUIOp::create(
            b, arith::MulIOp::create(b, batches, cst(shape.kvHeads)), cst(1)));
    gridX = arith::MaxUIOp::create(
        b, arith::MinUIOp::create(b, wanted, keyBlocks), cst(1));
    auto f32 = b.getF32Type();
    out = memref::AllocOp::create(
        b, MemRefType::get({dyn, dyn, dyn, shape.heads, shape.headDim}, f32),
        ValueRange{batches, gridX, queries});
    auto rowType = MemRefType::get({dyn, dyn, dyn, shape.heads}, f32);
    partialMax = memref::AllocOp::create(b, rowType,
                                         ValueRange{batches, gridX, queries});
    partialSum = memref::AllocOp::create(b, rowType,
                                         ValueRange{batches, gridX, queries});
    args.append({out, partialMax, partialSum});
  } else {
    out = memref::AllocOp::create(
        b,
        MemRefType::get({dyn, dyn, shape.heads, shape.headDim}, shape.outType),
        ValueRange{batches, queries});
    args.push_back(out);
    // At least one CTA per dimension (a launch of none is an error); the
    // kernel checks its range.
    gridX = arith::MaxUIOp::create(
        b, arith::CeilDivUIOp::create(b, queries, cst(shape.positions())),
        cst(1));
  }
  args.push_back(range.queryOffset ? range.queryOffset : Value(cst(0)));
  gpu::GPUFuncOp kernel = kernels.get(
      shape, llvm::map_to_vector(args, [](Value v) { return v.getType(); }));
  gpu::LaunchFuncOp::create(
      b, kernel,
      gpu::KernelDim3{gridX, cst(shape.kvHeads),
                      arith::MaxUIOp::create(b, batches, cst(1))},
      gpu::KernelDim3{cst(shape.threads()), cst(1), cst(1)},
      arith::ConstantIntOp::create(b, b.getI32Type(), shape.sharedBytes()),
      args);
  auto asTensor = [&](Value buffer) -> Value {
    auto type = cast<MemRefType>(buffer.getType());
    return bufferization::ToTensorOp::create(
        b, RankedTensorType::get(type.getShape(), type.getElementType()),
        buffer, /*restrict=*/true, /*writable=*/true);
  };
  Value result = shape.splitKeys
                     ? combinePartials(b, asTensor(out), asTensor(partialMax),
                                       asTensor(partialSum), shape.outType)
                     : asTensor(out);
  rewriter.replaceOp(op, castToType(b, b.getLoc(), result, resultType));
}

struct TileAttentionSm90
    : moe::impl::TileAttentionSm90Base<TileAttentionSm90> {
  using Base::Base;

  void runOnOperation() override {
    if (smCount < 1) {
      getOperation()->emitError(
          "moe-tile-attention-sm90: sm-count must be positive");
      return signalPassFailure();
    }
    if (warps != 4 && warps != 8) {
      getOperation()->emitError(
          "moe-tile-attention-sm90: warps must be 4 or 8");
      return signalPassFailure();
    }
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (auto attention = dyn_cast<AttentionOp>(op); attention && takes(attention))
        ops.push_back(op);
      if (auto grouped = dyn_cast<GroupedAttentionOp>(op); grouped && takes(grouped))
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    ModuleOp module = getOperation();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(&getContext()));
    llvm::SmallPtrSet<Operation *, 16> taken(ops.begin(), ops.end());
    // q, k and v of the ops taken here (the set also holds those lowered so
    // far, erased: only a live op's operands count).
    Bf16Operands bf16Operands([&](OpOperand &use) {
      return isa<AttentionOp, GroupedAttentionOp>(use.getOwner()) &&
             taken.contains(use.getOwner()) && use.getOperandNumber() < 3;
    });
    KernelCache kernels(module);
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      lowerAttention(rewriter, op, kernels, bf16Operands, smCount, warps);
    }
    bf16Operands.eraseNarrowed();
  }
};

} // namespace

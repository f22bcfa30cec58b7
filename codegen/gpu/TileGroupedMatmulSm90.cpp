//===- TileGroupedMatmulSm90.cpp - tensor-core grouped GEMM for sm_90a ----===//
//
// The CUDA pipeline's lowering of moe.grouped_matmul with bf16 weights on
// Hopper: one persistent kernel per op, a CTA per SM, each CTA walking the
// (row tile, column tile) work items of the ragged grouped GEMM. A work item
// is 128 rows of one group by one tile of the group's weight rows; its K
// blocks of 64 arrive by TMA in a ring of shared-memory stages completed on
// mbarriers, and are multiplied by warpgroup MMAs (wgmma, bf16 operands, f32
// accumulators in registers) while the loads of the next stages are in
// flight. The epilogue (SwiGLU, row scale, cast) runs on the accumulators
// and stores straight to global memory.
//
// Why this shape:
// * the rows of each group are contiguous (moe.dispatch sorts them), so an A
//   tile is a plain TMA box at the group's row offset; rows past the group's
//   end are loaded (they belong to the next group, or are TMA's zero fill
//   past the last row) but never stored, so nothing is padded in memory;
// * the work items are computed on the device from the offsets (every CTA
//   computes the per-group tile counts in shared memory), so the host never
//   reads device memory, empty groups have no items, and a group holding
//   most rows is most of the items, spread over every SM;
// * both operands are K-major (rows [R, K], weights [G, N, K]), which is
//   wgmma's native layout: 128-byte swizzled boxes of 64 bf16 along K.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/gpu/Bf16Operands.h"
#include "codegen/gpu/FusedEpilogue.h"
#include "codegen/gpu/KernelUtils.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <map>

namespace mlir::moe {
#define GEN_PASS_DEF_TILEGROUPEDMATMULSM90
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr int64_t kWarpgroupThreads = 128;
/// Rows per work item: two wgmma instructions of 64 rows.
constexpr int64_t kBlockRows = 128;
constexpr int64_t kWgmmaRows = 64;
/// K per stage: one 128-byte swizzle row of bf16, the widest box that
/// wgmma's swizzled K-major layout takes.
constexpr int64_t kBlockK = 64;
constexpr int64_t kWgmmaK = 16;
/// The A tile of a stage, 16 KiB.
constexpr int64_t kTileBytes = kBlockRows * kBlockK * 2;
/// The dynamic shared memory a CTA may have on sm_90 (227 KiB).
constexpr int64_t kMaxSharedBytes = 227 * 1024;
/// A 128-byte swizzle atom is 8 rows of 128 bytes; tiles start on one.
constexpr int64_t kSwizzleAtomBytes = 1024;
/// The suspend-time hint of mbarrier.try_wait (the wait loops until done).
constexpr int64_t kWaitTicks = 10000000;

/// The static facts of one grouped matmul.
struct GemmShape {
  int64_t groups, n, k;
  bool swiglu, hasScale;
  /// The product's element type, and the one stored (a fused epilogue's).
  Type outType, storeType;
  /// Rows are added into their tokens' rows (combine-scatter).
  bool scatter = false;
  /// The wgmma's N: the weight rows of a work item, 128 (one warpgroup
  /// multiplies both 64-row halves of the A tile) or 256 (two warpgroups,
  /// one per half: twice the FLOPs per byte loaded).
  int64_t mmaCols = 128;

  int64_t warpgroups() const { return mmaCols / 128; }
  int64_t threads() const { return kWarpgroupThreads * warpgroups(); }
  /// The 64-row halves of the A tile each warpgroup multiplies.
  int64_t halvesPerWarpgroup() const { return 2 / warpgroups(); }
  /// Weight rows a work item reads per weight: mmaCols, or half as many
  /// gate and as many up rows under SwiGLU (one wgmma covers both).
  int64_t weightRows() const { return swiglu ? mmaCols / 2 : mmaCols; }
  /// Output columns per work item.
  int64_t tileCols() const { return weightRows(); }
  int64_t colTiles() const { return llvm::divideCeil(n, tileCols()); }
  int64_t kBlocks() const { return llvm::divideCeil(k, kBlockK); }
  /// A stage: the A tile and the B tile (mmaCols rows of 64 bf16).
  int64_t stageBytes() const { return kTileBytes + mmaCols * kBlockK * 2; }
  /// Shared memory: the stages, the per-group tile starts, and room to
  /// align the stages to a swizzle atom.
  int64_t sharedBytes(int64_t stages) const {
    return llvm::alignTo(
        kSwizzleAtomBytes + stages * stageBytes() + 4 * (groups + 1), 16);
  }
};

/// Whether this pass takes `op`; the others keep the generic lowering.
bool takes(GroupedMatmulOp op) {
  auto weight = cast<RankedTensorType>(op.getWeight().getType());
  auto input = cast<RankedTensorType>(op.getInput().getType());
  auto result = cast<RankedTensorType>(op.getResult().getType());
  bool routerLogits = op->getContext()
                          ->getLoadedDialect<MoeDialect>()
                          ->getRoutingLogitsAttrHelper()
                          .isAttrPresent(op);
  // The tensor cores multiply bf16; the router's logits stay f32; TMA needs
  // static boxes and global strides that are multiples of 16 bytes, and the
  // epilogue stores column pairs; an empty K or N has nothing to multiply.
  return weight.getElementType().isBF16() && !routerLogits &&
         weight.hasStaticShape() && weight.getDimSize(1) > 0 &&
         weight.getDimSize(2) > 0 &&
         isa<Float32Type, BFloat16Type>(input.getElementType()) &&
         isa<Float32Type, BFloat16Type>(result.getElementType()) &&
         weight.getDimSize(2) % 8 == 0 && weight.getDimSize(1) % 8 == 0;
}

/// The 64-bit wgmma descriptor of a K-major, 128-byte swizzled operand at
/// shared address `address` (i64): start address, leading byte offset
/// (unused by swizzled K-major layouts, 1 by convention), stride byte offset
/// (1024: from one 8-row atom to the next), swizzle mode 1 (128 bytes). All
/// offsets are in units of 16 bytes.
Value wgmmaDescriptor(ImplicitLocOpBuilder &b, Value address) {
  auto i64 = b.getI64Type();
  auto cst = [&](int64_t v) -> Value {
    return arith::ConstantIntOp::create(b, i64, v);
  };
  Value start = arith::ShRUIOp::create(
      b, arith::AndIOp::create(b, address, cst(0x3FFFF)), cst(4));
  int64_t fixed = (int64_t{1} << 16) | (int64_t{kSwizzleAtomBytes >> 4} << 32) |
                  (int64_t{1} << 62);
  return arith::OrIOp::create(b, start, cst(fixed));
}

/// The descriptor type of TMA boxes of `boxRows` x 64 bf16, 128-byte
/// swizzled, zero-filled out of bounds.
nvgpu::TensorMapDescriptorType descriptorType(MLIRContext *ctx,
                                              int64_t boxRows) {
  auto smem = workgroupSpace(ctx);
  auto boxType = MemRefType::get({boxRows, kBlockK}, BFloat16Type::get(ctx),
                                 nullptr, smem);
  return nvgpu::TensorMapDescriptorType::get(
      ctx, boxType, nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
      nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
      nvgpu::TensorMapOOBKind::OOB_ZERO,
      nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
}

/// `v` as a value of `type`: descriptors cross the kernel boundary as
/// `!llvm.ptr` (what convert-nvgpu-to-nvvm makes of them on both sides,
/// which convert-gpu-to-nvvm's signature conversion does not know).
Value castTo(ImplicitLocOpBuilder &b, Value v, Type type) {
  return UnrealizedConversionCastOp::create(b, type, v).getResult(0);
}

/// Builds the body of the persistent kernel inside a gpu.launch.
class KernelBuilder {
public:
  KernelBuilder(ImplicitLocOpBuilder &b, const GemmShape &shape, int64_t stages,
                const FusedEpilogue &fused, ValueRange args)
      : b(b), shape(shape), stages(stages), fused(fused) {
    auto descriptor = [&](Value arg, int64_t boxRows) {
      return castTo(b, arg, descriptorType(b.getContext(), boxRows));
    };
    offsets = args[0];
    out = args[1];
    descA = descriptor(args[2], kBlockRows);
    descW = descriptor(args[3], shape.weightRows());
    unsigned next = 4;
    if (shape.swiglu)
      descUp = descriptor(args[next++], shape.weightRows());
    if (shape.hasScale)
      scale = args[next++];
    if (shape.scatter)
      rowToToken = args[next++];
    epilogueBuffers = args.drop_front(next);
  }

  void build();

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, x, y);
  }
  Value loadOffset(Value g);
  /// The low bit of `round`: the mbarrier phase parity of that round.
  Value parityOf(Value round) {
    return arith::TruncIOp::create(
        b, b.getI1Type(), arith::IndexCastOp::create(b, b.getI32Type(), round));
  }
  Value tileStartAt(Value g) {
    return arith::IndexCastOp::create(
        b, b.getIndexType(),
        memref::LoadOp::create(b, tileStarts, ValueRange{g}));
  }
  /// Where a work item reads and writes.
  struct Item {
    Value rowStart, rowEnd, weightRow, colTile;
  };

  void ifThen(Value condition, function_ref<void()> body);
  void buildSchedule();
  Value groupOfRowTile(Value rowTile);
  Item itemAt(Value item);
  void issueLoads(Value fill, Value kBlock, Value rowStart, Value weightRow,
                  Value issue);
  void issuePrologue(const Item &item, Value hasItem);
  /// How many K blocks the loads run ahead of the wgmmas: every stage but
  /// the one being multiplied, at most an item's blocks.
  int64_t lookahead() const { return std::min(stages - 1, shape.kBlocks()); }
  SmallVector<Value> multiplyStage(Value stage, ValueRange accumulators,
                                   bool first);
  SmallVector<Value> kBlockStep(Value kb, ValueRange accumulators,
                                Value consumed, const Item &item,
                                const Item &nextItem, Value hasNext,
                                bool first);
  void releaseStage(Value consumed);
  void storeTile(ValueRange accumulators, const Item &item);
  Value workItem(Value item, Value consumed, Value ctas, Value items);

  ImplicitLocOpBuilder &b;
  const GemmShape &shape;
  int64_t stages;
  const FusedEpilogue &fused;
  Value offsets, scale, rowToToken, out, descA, descW, descUp;
  ValueRange epilogueBuffers;
  // Set up by build().
  Value tid, lane, shared, sharedBase, pad, tileStarts, isLeader;
  /// The first 64-row half of the A tile this thread's warpgroup multiplies.
  Value firstHalf;
  /// Per stage: `full` completes when the stage's TMA bytes have landed,
  /// `empty` when each warp (4 per warpgroup) has finished its wgmmas on it.
  Value full, empty;
  LLVM::LLVMStructType accType;
};

Value KernelBuilder::loadOffset(Value g) {
  return arith::IndexCastOp::create(
      b, b.getIndexType(), memref::LoadOp::create(b, offsets, ValueRange{g}));
}

void KernelBuilder::ifThen(Value condition, function_ref<void()> body) {
  auto ifOp = scf::IfOp::create(b, condition, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  body();
}

/// Thread 0 initialises the stage barriers and writes each group's first
/// row tile (a prefix sum of ceil(rows / 128)); the groups are few.
void KernelBuilder::buildSchedule() {
  ifThen(isLeader, [&] {
    for (int64_t s = 0; s < stages; ++s) {
      nvgpu::MBarrierInitOp::create(b, full, idx(1), idx(s), Value());
      nvgpu::MBarrierInitOp::create(b, empty, idx(shape.threads() / 32),
                                    idx(s), Value());
    }
    // The TMA unit (the async proxy) must see the initialised barriers.
    NVVM::FenceProxyOp::create(
        b, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(b.getContext(),
                                   NVVM::SharedSpace::shared_cta));
    auto loop = scf::ForOp::create(b, idx(0), idx(shape.groups), idx(1),
                                   ValueRange{idx(0)});
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      Value g = loop.getInductionVar(), first = loop.getRegionIterArg(0);
      memref::StoreOp::create(
          b, arith::IndexCastOp::create(b, b.getI32Type(), first), tileStarts,
          ValueRange{g});
      Value rows =
          arith::SubIOp::create(b, loadOffset(add(g, idx(1))), loadOffset(g));
      Value tiles = arith::DivUIOp::create(b, add(rows, idx(kBlockRows - 1)),
                                           idx(kBlockRows));
      scf::YieldOp::create(b, add(first, tiles));
    }
    memref::StoreOp::create(
        b, arith::IndexCastOp::create(b, b.getI32Type(), loop.getResult(0)),
        tileStarts, ValueRange{idx(shape.groups)});
  });
  gpu::BarrierOp::create(b);
}

/// The group of a row tile: the number of groups whose tiles end at or
/// before it (a scan of G shared-memory entries, no search).
Value KernelBuilder::groupOfRowTile(Value rowTile) {
  auto loop = scf::ForOp::create(b, idx(0), idx(shape.groups), idx(1),
                                 ValueRange{idx(0)});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value ended = arith::CmpIOp::create(
      b, arith::CmpIPredicate::ule,
      tileStartAt(add(loop.getInductionVar(), idx(1))), rowTile);
  Value count = add(loop.getRegionIterArg(0),
                    arith::SelectOp::create(b, ended, idx(1), idx(0)));
  scf::YieldOp::create(b, count);
  b.setInsertionPointAfter(loop);
  return loop.getResult(0);
}

/// A work item's rows, output columns and weight rows: row tiles fastest,
/// so the CTAs at work at once share the weight tiles of a few column tiles
/// in L2. Any index gives coordinates inside the buffers (the loads that
/// would use an absent item's are predicated off, not branched around).
KernelBuilder::Item KernelBuilder::itemAt(Value item) {
  Value rowTiles =
      arith::MaxUIOp::create(b, tileStartAt(idx(shape.groups)), idx(1));
  Value rowTile = arith::RemUIOp::create(b, item, rowTiles);
  Value colTile = arith::DivUIOp::create(b, item, rowTiles);
  Value g = arith::MinUIOp::create(b, groupOfRowTile(rowTile),
                                   idx(shape.groups - 1));
  Value rowStart =
      add(loadOffset(g), mul(arith::SubIOp::create(b, rowTile, tileStartAt(g)),
                             idx(kBlockRows)));
  return {rowStart, loadOffset(add(g, idx(1))),
          add(mul(g, idx(shape.n)), mul(colTile, idx(shape.weightRows()))),
          colTile};
}

/// The CTA's `fill`-th load into stage fill % stages: every thread waits
/// until every warp has released the stage's previous fill (for the first
/// round, parity 1 is the phase before the first, which counts as done);
/// then, where `issue` holds (thread 0, when there is a block to load), the
/// full barrier is armed with the stage's bytes and the TMA loads of K block
/// `kBlock` start: the A box at row `rowStart`, the weight box (or the gate
/// and up boxes) at weight row `weightRow`. Predicated rather than branched
/// on: ptxas serialises the wgmmas of a loop that holds divergent branches
/// (C7520), and the warps wait together anyway at the next wgmma.
void KernelBuilder::issueLoads(Value fill, Value kBlock, Value rowStart,
                               Value weightRow, Value issue) {
  auto bf16 = b.getBF16Type();
  auto smem = workgroupSpace(b.getContext());
  auto view = [&](Value byteOffset, int64_t rows) -> Value {
    auto type = MemRefType::get({rows, kBlockK}, bf16, nullptr, smem);
    return memref::ViewOp::create(b, type, shared, byteOffset, ValueRange());
  };
  Value stage = arith::RemUIOp::create(b, fill, idx(stages));
  Value round = arith::DivUIOp::create(b, fill, idx(stages));
  nvgpu::MBarrierTryWaitParityOp::create(b, empty, parityOf(add(round, idx(1))),
                                         idx(kWaitTicks), stage);
  Value aOffset = add(pad, mul(stage, idx(shape.stageBytes())));
  Value bOffset = add(aOffset, idx(kTileBytes));
  Value k = mul(kBlock, idx(kBlockK));
  nvgpu::MBarrierArriveExpectTxOp::create(b, full, idx(shape.stageBytes()),
                                          stage, issue);
  auto load = [&](Value desc, Value dst, Value row) {
    nvgpu::TmaAsyncLoadOp::create(b, dst, full, desc, ValueRange{k, row}, stage,
                                  Value(), issue);
  };
  load(descA, view(aOffset, kBlockRows), rowStart);
  int64_t rows = shape.weightRows();
  load(descW, view(bOffset, rows), weightRow);
  if (shape.swiglu)
    load(descUp, view(add(bOffset, idx(rows * kBlockK * 2)), rows), weightRow);
}

/// Thread 0 starts the first item's first lookahead() K blocks, if the CTA
/// has an item.
void KernelBuilder::issuePrologue(const Item &item, Value hasItem) {
  Value issue = arith::AndIOp::create(b, isLeader, hasItem);
  for (int64_t j = 0; j < lookahead(); ++j)
    issueLoads(idx(j), idx(j), item.rowStart, item.weightRow, issue);
}

/// Lane 0 of each warp releases the stage of the CTA's `consumed`-th K
/// block, whose wgmmas its warp has waited for: a predicated arrive (with no
/// bytes to expect, the one predicated arrive nvgpu has; see issueLoads).
void KernelBuilder::releaseStage(Value consumed) {
  Value stage = arith::RemUIOp::create(b, consumed, idx(stages));
  Value laneZero =
      arith::CmpIOp::create(b, arith::CmpIPredicate::eq, lane, idx(0));
  nvgpu::MBarrierArriveExpectTxOp::create(b, empty, idx(0), stage, laneZero);
}

/// The wgmmas of one stage: for each of the 4 K steps of 16, one
/// m64n<mmaCols>k16 per 64-row half of the A tile this warpgroup takes, as
/// one committed group; then waits for the previous stage's group (each
/// warp for its own rows), after which the warp may release that stage.
SmallVector<Value> KernelBuilder::multiplyStage(Value stage,
                                                ValueRange accumulators,
                                                bool first) {
  auto i64 = b.getI64Type();
  Value stageAddress =
      add(sharedBase, add(pad, mul(stage, idx(shape.stageBytes()))));
  // This warpgroup's first 64-row half of the A tile.
  Value aAddress = arith::IndexCastOp::create(
      b, i64,
      add(stageAddress, mul(firstHalf, idx(kWgmmaRows * kBlockK * 2))));
  Value descA0 = wgmmaDescriptor(b, aAddress);
  Value descB0 = wgmmaDescriptor(
      b, arith::IndexCastOp::create(b, i64,
                                    add(stageAddress, idx(kTileBytes))));
  auto advance = [&](Value desc, int64_t bytes) -> Value {
    if (bytes == 0)
      return desc;
    return arith::AddIOp::create(
        b, desc, arith::ConstantIntOp::create(b, i64, bytes >> 4));
  };
  auto *ctx = b.getContext();
  auto shapeAttr =
      NVVM::MMAShapeAttr::get(ctx, kWgmmaRows, shape.mmaCols, kWgmmaK);
  SmallVector<Value> acc(accumulators);
  NVVM::WgmmaFenceAlignedOp::create(b);
  for (int64_t q = 0; q < kBlockK / kWgmmaK; ++q) {
    Value descB = advance(descB0, q * kWgmmaK * 2);
    for (int64_t h = 0; h < shape.halvesPerWarpgroup(); ++h) {
      // Rows 64h..: 64 rows of 128 bytes further; K step q: 32 bytes
      // along the swizzled row, which the hardware unswizzles.
      Value descA =
          advance(descA0, h * kWgmmaRows * kBlockK * 2 + q * kWgmmaK * 2);
      // An item's first K step ignores the accumulators (D = A B).
      auto scaleOut = first && q == 0 ? NVVM::WGMMAScaleOut::zero
                                      : NVVM::WGMMAScaleOut::one;
      acc[h] = NVVM::WgmmaMmaAsyncOp::create(
          b, accType, acc[h], descA, descB, shapeAttr, NVVM::WGMMATypes::bf16,
          NVVM::WGMMATypes::bf16, NVVM::WGMMATypes::f32, scaleOut,
          NVVM::WGMMAScaleIn::one,
          NVVM::WGMMAScaleIn::one,
          // row-major A and column-major B: both K-major.
          NVVM::MMALayout::row, NVVM::MMALayout::col,
          NVVM::MMAIntOverflowAttr());
    }
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(b);
  NVVM::WgmmaWaitGroupSyncOp::create(b, 1);
  return acc;
}

/// The epilogue on the accumulators' fragments. In a 64-row wgmma result,
/// thread t (warp w of its warpgroup, lane l) holds rows 16w + l/4 and
/// 16w + l/4 + 8 and, for each 8-column block i, columns 8i + 2(l % 4) and
/// the next: registers 4i .. 4i + 3. Under SwiGLU the gate column c and the
/// up column c + tileCols() are in the same thread (blocks i and
/// i + tileCols() / 8). The fused consumers run last, on the product's
/// element as its own consumers would have read it.
void KernelBuilder::storeTile(ValueRange accumulators, const Item &item) {
  FusedEpilogue::Emitter consumers(fused, epilogueBuffers);
  Value warp = arith::RemUIOp::create(
      b, arith::DivUIOp::create(b, tid, idx(32)), idx(4));
  Value fragRow =
      add(mul(warp, idx(16)), arith::DivUIOp::create(b, lane, idx(4)));
  Value fragCol = mul(arith::RemUIOp::create(b, lane, idx(4)), idx(2));
  Value firstCol = add(mul(item.colTile, idx(shape.tileCols())), fragCol);
  Value firstRow = add(item.rowStart, mul(firstHalf, idx(kWgmmaRows)));
  bool partialCols = shape.n % shape.tileCols() != 0;
  for (int64_t h = 0; h < shape.halvesPerWarpgroup(); ++h) {
    for (int64_t half = 0; half < 2; ++half) {
      Value row =
          add(firstRow, add(fragRow, idx(h * kWgmmaRows + 8 * half)));
      auto rowIf = scf::IfOp::create(b, lt(row, item.rowEnd), false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(rowIf.thenBlock());
      Value rowScale = shape.hasScale
                           ? memref::LoadOp::create(b, scale, ValueRange{row})
                           : Value();
      consumers.beginRow(b, b.getLoc(), row);
      Value outRow =
          shape.scatter
              ? arith::IndexCastOp::create(
                    b, b.getIndexType(),
                    memref::LoadOp::create(b, rowToToken, ValueRange{row}))
              : row;
      for (int64_t i = 0; i < shape.tileCols() / 8; ++i) {
        Value col = add(firstCol, idx(8 * i));
        OpBuilder::InsertionGuard colGuard(b);
        if (partialCols) {
          auto colIf = scf::IfOp::create(b, lt(col, idx(shape.n)), false);
          b.setInsertionPointToStart(colIf.thenBlock());
        }
        for (int64_t e = 0; e < 2; ++e) {
          int64_t reg = 4 * i + 2 * half + e;
          Value v = LLVM::ExtractValueOp::create(b, accumulators[h], reg);
          if (shape.swiglu) {
            Value up = LLVM::ExtractValueOp::create(
                b, accumulators[h], reg + 4 * (shape.tileCols() / 8));
            v = buildSwiglu(b, b.getLoc(), v, up);
          }
          if (rowScale)
            v = arith::MulFOp::create(b, v, rowScale);
          v = truncateFromF32(b, b.getLoc(), v, shape.outType);
          Value c = add(col, idx(e));
          v = consumers.apply(b, b.getLoc(), v, c);
          if (shape.scatter)
            memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf, v, out,
                                        ValueRange{outRow, c});
          else
            memref::StoreOp::create(b, v, out, ValueRange{row, c});
        }
      }
    }
  }
}

/// K block `kb` of the current item (the CTA's `consumed + kb`-th): waits
/// for its stage's data, multiplies it, releases the previous block's stage
/// and refills that stage lookahead() blocks ahead (see workItem).
SmallVector<Value> KernelBuilder::kBlockStep(Value kb, ValueRange accumulators,
                                             Value consumed, const Item &item,
                                             const Item &nextItem,
                                             Value hasNext, bool first) {
  int64_t kBlocks = shape.kBlocks();
  Value count = add(consumed, kb);
  Value stage = arith::RemUIOp::create(b, count, idx(stages));
  nvgpu::MBarrierTryWaitParityOp::create(
      b, full, parityOf(arith::DivUIOp::create(b, count, idx(stages))),
      idx(kWaitTicks), stage);
  SmallVector<Value> acc = multiplyStage(stage, accumulators, first);
  // The previous block's wgmmas are done: release its stage, which the
  // load below refills. (Block 0's predecessor belongs to the previous
  // item, released after its loop.)
  if (!first)
    releaseStage(arith::SubIOp::create(b, count, idx(1)));
  // The block lookahead() ahead: this item's, or past its end the next
  // item's; none after the CTA's last item. No branch (see issueLoads).
  Value ahead = add(kb, idx(lookahead()));
  Value inItem = lt(ahead, idx(kBlocks));
  auto pick = [&](Value inThis, Value inNextItem) -> Value {
    return arith::SelectOp::create(b, inItem, inThis, inNextItem);
  };
  Value issue = arith::AndIOp::create(
      b, isLeader, arith::OrIOp::create(b, inItem, hasNext));
  issueLoads(add(consumed, ahead),
             pick(ahead, arith::SubIOp::create(b, ahead, idx(kBlocks))),
             pick(item.rowStart, nextItem.rowStart),
             pick(item.weightRow, nextItem.weightRow), issue);
  return acc;
}

/// One work item, whose first lookahead() K blocks are already on their
/// way: the K loop over the ring of stages, each iteration's wgmmas
/// overlapping the loads of the blocks lookahead() ahead, which run on into
/// the next item of this CTA (so its first loads overlap this item's last
/// blocks and epilogue), then the epilogue. `consumed` counts the K blocks
/// this CTA has taken from the ring before, which gives each block's stage
/// and barrier phases; returns the count after this item.
Value KernelBuilder::workItem(Value itemIndex, Value consumed, Value ctas,
                              Value items) {
  Item item = itemAt(itemIndex);
  Value nextIndex = add(itemIndex, ctas);
  Value hasNext = lt(nextIndex, items);
  Item nextItem = itemAt(nextIndex);
  int64_t kBlocks = shape.kBlocks();
  // Block 0 is peeled: its first wgmmas start from zero (scale-d = 0), so
  // no register is zeroed between the previous item's epilogue and them,
  // which ptxas would guard with warpgroup waits (C7517/C7519).
  SmallVector<Value> undefs(shape.halvesPerWarpgroup(),
                            LLVM::UndefOp::create(b, accType));
  SmallVector<Value> first = kBlockStep(idx(0), undefs, consumed, item,
                                        nextItem, hasNext, /*first=*/true);
  auto kLoop = scf::ForOp::create(b, idx(1), idx(kBlocks), idx(1), first);
  // Unrolled, a short loop's blocks interleave past the 255 registers
  // (K = 256 spilled); the body is 8 wgmmas long already.
  auto *ctx = b.getContext();
  kLoop->setAttr("llvm.loop_annotation",
                 LLVM::LoopAnnotationAttr::get(
                     ctx, {}, {}, {},
                     LLVM::LoopUnrollAttr::get(ctx, BoolAttr::get(ctx, true),
                                               {}, {}, {}, {}, {}, {}),
                     {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}));
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(kLoop.getBody());
    scf::YieldOp::create(b, kBlockStep(kLoop.getInductionVar(),
                                       kLoop.getRegionIterArgs(), consumed,
                                       item, nextItem, hasNext,
                                       /*first=*/false));
  }
  NVVM::WgmmaWaitGroupSyncOp::create(b, 0);
  Value after = add(consumed, idx(kBlocks));
  releaseStage(arith::SubIOp::create(b, after, idx(1)));
  storeTile(kLoop.getResults(), item);
  return after;
}

void KernelBuilder::build() {
  auto *ctx = b.getContext();
  auto smem = workgroupSpace(ctx);
  accType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(kWgmmaRows * shape.mmaCols / kWarpgroupThreads,
                             b.getF32Type()));
  tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  // One warpgroup takes both halves; of two, warpgroup w takes half w.
  firstHalf = shape.warpgroups() == 1
                  ? idx(0)
                  : arith::DivUIOp::create(b, tid, idx(kWarpgroupThreads));
  Value cta = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value ctas = gpu::GridDimOp::create(b, gpu::Dimension::x);
  shared = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), nullptr, smem));
  sharedBase = memref::ExtractAlignedPointerAsIndexOp::create(b, shared);
  // Bytes up to the next swizzle atom.
  pad = arith::RemUIOp::create(
      b,
      arith::SubIOp::create(
          b, idx(kSwizzleAtomBytes),
          arith::RemUIOp::create(b, sharedBase, idx(kSwizzleAtomBytes))),
      idx(kSwizzleAtomBytes));
  tileStarts = memref::ViewOp::create(
      b, MemRefType::get({shape.groups + 1}, b.getI32Type(), nullptr, smem),
      shared, add(pad, idx(stages * shape.stageBytes())), ValueRange());
  auto barrierType = nvgpu::MBarrierGroupType::get(ctx, smem, stages);
  full = nvgpu::MBarrierCreateOp::create(b, barrierType);
  empty = nvgpu::MBarrierCreateOp::create(b, barrierType);
  lane = arith::RemUIOp::create(b, tid, idx(32));
  isLeader = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tid, idx(0));
  buildSchedule();

  Value items = mul(tileStartAt(idx(shape.groups)), idx(shape.colTiles()));
  issuePrologue(itemAt(cta), lt(cta, items));
  auto loop = scf::ForOp::create(b, cta, items, ctas, ValueRange{idx(0)});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    scf::YieldOp::create(b, workItem(loop.getInductionVar(),
                                     loop.getRegionIterArg(0), ctas, items));
  }
  gpu::ReturnOp::create(b);
}

/// A TMA descriptor of a bf16 matrix buffer in boxes of `boxRows` x 64 (as
/// a `!llvm.ptr`, see castTo).
Value tmaDescriptor(ImplicitLocOpBuilder &b, Value matrix, int64_t boxRows) {
  auto *ctx = b.getContext();
  Value unranked = memref::CastOp::create(
      b, UnrankedMemRefType::get(b.getBF16Type(), nullptr), matrix);
  Value desc = nvgpu::TmaCreateDescriptorOp::create(
      b, descriptorType(ctx, boxRows), unranked,
      ValueRange{arith::ConstantIndexOp::create(b, boxRows),
                 arith::ConstantIndexOp::create(b, kBlockK)});
  return castTo(b, desc, LLVM::LLVMPointerType::get(ctx));
}

/// A [G, N, K] weight buffer as the [G * N, K] matrix its TMA boxes tile.
Value weightMatrix(ImplicitLocOpBuilder &b, Value weight) {
  return memref::CollapseShapeOp::create(
      b, readBuffer(b, weight), SmallVector<ReassociationIndices>{{0, 1}, {2}});
}

/// The kernel's arguments: offsets, output, the A and weight descriptors,
/// then the up weight's descriptor and the row scale where present.
struct KernelArgs {
  SmallVector<Value> values;
  SmallVector<Type> types() const {
    return llvm::map_to_vector(values, [](Value v) { return v.getType(); });
  }
};

/// Builds `op`'s operands and those of its fused consumers as the kernel's
/// arguments, and its output buffer.
KernelArgs buildArgs(ImplicitLocOpBuilder &b, GroupedMatmulOp op,
                     const GemmShape &shape, const FusedEpilogue &fused,
                     CombineOp scatterInto, Bf16Operands &bf16Inputs,
                     Value &out) {
  Value input = readBuffer(b, bf16Inputs.get(b, op.getInput()));
  auto outType =
      MemRefType::get({ShapedType::kDynamic, shape.n}, shape.storeType);
  if (scatterInto) {
    // The tokens' rows, zeroed for the atomic adds.
    Value tokens = tensor::DimOp::create(b, scatterInto.getSlotToRow(), 0);
    out = memref::AllocOp::create(b, outType, ValueRange{tokens});
    linalg::FillOp::create(
        b, ValueRange{arith::ConstantOp::create(b, b.getF32FloatAttr(0))},
        ValueRange{out});
  } else {
    out = memref::AllocOp::create(
        b, outType, ValueRange{memref::DimOp::create(b, input, 0)});
  }
  KernelArgs args;
  args.values = {
      readBuffer(b, op.getGroupOffsets()), out,
      tmaDescriptor(b, input, kBlockRows),
      tmaDescriptor(b, weightMatrix(b, op.getWeight()), shape.weightRows())};
  if (shape.swiglu)
    args.values.push_back(tmaDescriptor(b, weightMatrix(b, op.getUpWeight()),
                                        shape.weightRows()));
  if (shape.hasScale)
    args.values.push_back(readBuffer(b, op.getRowScale()));
  if (scatterInto)
    args.values.push_back(readBuffer(
        b, scatterInto.getSlotToRow().getDefiningOp<DispatchOp>().getRowToToken()));
  for (Value t : fused.tensors())
    args.values.push_back(readBuffer(b, t));
  return args;
}

/// The kernels built so far, one per static shape: a model's layers share
/// them.
class KernelCache {
public:
  KernelCache(ModuleOp module, int64_t stages)
      : module(module), stages(stages), symbols(module) {}

  /// The kernel for `shape`, consumers `fused` and argument types `types`,
  /// built on first use in a gpu.module of its own.
  gpu::GPUFuncOp get(const GemmShape &shape, const FusedEpilogue &fused,
                     TypeRange types);

private:
  static std::string nameOf(const GemmShape &shape);

  ModuleOp module;
  int64_t stages;
  SymbolTable symbols;
  /// By shape and epilogue.
  std::map<std::pair<std::string, std::string>, gpu::GPUFuncOp> kernels;
  /// The distinct fused epilogues of each shape so far.
  llvm::StringMap<unsigned> epilogues;
};

/// The shape's name, e.g. grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16.
std::string KernelCache::nameOf(const GemmShape &shape) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "grouped_matmul_sm90_g" << shape.groups << "_n" << shape.n << "_k"
     << shape.k << (shape.swiglu ? "_swiglu" : "")
     << (shape.hasScale ? "_scale" : "") << (shape.scatter ? "_scatter" : "")
     << (shape.mmaCols == 256 ? "_w256" : "") << "_" << shape.outType;
  return name;
}

gpu::GPUFuncOp KernelCache::get(const GemmShape &shape,
                                const FusedEpilogue &fused, TypeRange types) {
  std::string name = nameOf(shape);
  std::string typeKey;
  llvm::raw_string_ostream typeOs(typeKey);
  llvm::interleaveComma(types, typeOs);
  std::pair<std::string, std::string> key{
      name + "(" + typeKey + ")", fused.empty() ? std::string() : fused.key()};
  if (gpu::GPUFuncOp kernel = kernels[key])
    return kernel;
  // The i-th distinct fused epilogue of a shape is its `_ep<i>` kernel.
  if (!fused.empty())
    name += "_ep" + std::to_string(epilogues[name]++);
  ImplicitLocOpBuilder b(module.getLoc(), module.getContext());
  gpu::GPUFuncOp kernel =
      createKernel(b, module, symbols, name, types, shape.threads());
  KernelBuilder(b, shape, stages, fused, kernel.getArguments()).build();
  kernels[key] = kernel;
  return kernel;
}

/// The combine that `op`'s epilogue can add its rows into (combine-scatter):
/// `op`'s only reader, unweighted, an f32 sum of at most 2 slots per token
/// (two atomic adds into zero give the same sum in either order, which is
/// the gather's), whose rows come from a dispatch (for each row's token).
CombineOp scatterTarget(GroupedMatmulOp op) {
  Value product = op.getResult();
  if (!product.hasOneUse())
    return {};
  auto combine = dyn_cast<CombineOp>(*product.getUsers().begin());
  if (!combine || combine.getWeights())
    return {};
  // Every row is added: the combine must read the slots the dispatch
  // filled, no fewer.
  auto dispatch = combine.getSlotToRow().getDefiningOp<DispatchOp>();
  if (!dispatch || combine.getCounts() != dispatch.getCounts())
    return {};
  auto slots = cast<RankedTensorType>(combine.getSlotToRow().getType());
  auto f32 = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getElementType().isF32();
  };
  if (slots.isDynamicDim(1) || slots.getDimSize(1) > 2 || !f32(product) ||
      !f32(combine.getResult()))
    return {};
  return combine;
}

/// Replaces `op` and the consumers fused into its epilogue (or the combine
/// it scatters into) by buffers of their operands, the TMA descriptors, the
/// kernel's launch on one CTA per SM, and a tensor of its output buffer.
void lowerGroupedMatmul(RewriterBase &rewriter, GroupedMatmulOp op,
                        KernelCache &kernels, Bf16Operands &bf16Inputs,
                        const TileGroupedMatmulSm90Options &options) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto weightType = cast<RankedTensorType>(op.getWeight().getType());
  auto resultType = cast<RankedTensorType>(op.getResult().getType());
  CombineOp scatterInto =
      options.combineScatter ? scatterTarget(op) : CombineOp();
  FusedEpilogue fused = scatterInto ? FusedEpilogue()
                                    : FusedEpilogue::collect(op.getResult());
  Value replaced = scatterInto     ? scatterInto.getResult()
                   : fused.empty() ? op.getResult()
                                   : fused.result();
  auto replacedType = cast<RankedTensorType>(replaced.getType());
  GemmShape shape{weightType.getDimSize(0),
                  weightType.getDimSize(1),
                  weightType.getDimSize(2),
                  op.getEpilogue() == Epilogue::swiglu,
                  static_cast<bool>(op.getRowScale()),
                  resultType.getElementType(),
                  replacedType.getElementType(),
                  static_cast<bool>(scatterInto),
                  options.tileCols};
  // Where every operand of the fused consumers (or the combine) is defined.
  if (replaced != op.getResult())
    b.setInsertionPoint(replaced.getDefiningOp());
  Value out;
  KernelArgs args =
      buildArgs(b, op, shape, fused, scatterInto, bf16Inputs, out);
  gpu::GPUFuncOp kernel = kernels.get(shape, fused, args.types());
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, v); };
  gpu::LaunchFuncOp::create(
      b, kernel, gpu::KernelDim3{cst(options.smCount), cst(1), cst(1)},
      gpu::KernelDim3{cst(shape.threads()), cst(1), cst(1)},
      arith::ConstantIntOp::create(b, b.getI32Type(),
                                   shape.sharedBytes(options.stages)),
      args.values);
  Value result = bufferization::ToTensorOp::create(
      b,
      RankedTensorType::get(cast<MemRefType>(out.getType()).getShape(),
                            shape.storeType),
      out, /*restrict=*/true, /*writable=*/true);
  Value replacement = castToType(b, b.getLoc(), result, replacedType);
  rewriter.replaceAllUsesWith(replaced, replacement);
  bf16Inputs.replaced(replaced, replacement);
  fused.erase(rewriter);
  if (scatterInto)
    rewriter.eraseOp(scatterInto);
  rewriter.eraseOp(op);
}

/// An f32 product read only as the rows of products this pass takes (the
/// SwiGLU hidden rows, read by the down projection) is produced in bf16:
/// its readers would round it to bf16 anyway, and this spares them a
/// truncation pass over it.
void narrowProducedRows(ArrayRef<GroupedMatmulOp> ops) {
  llvm::SmallPtrSet<Operation *, 16> taken;
  for (GroupedMatmulOp op : ops)
    taken.insert(op);
  for (GroupedMatmulOp op : ops) {
    auto type = cast<RankedTensorType>(op.getResult().getType());
    if (!type.getElementType().isF32() || op.getResult().use_empty())
      continue;
    bool onlyRows = llvm::all_of(op.getResult().getUses(), [&](OpOperand &use) {
      auto reader = dyn_cast<GroupedMatmulOp>(use.getOwner());
      return reader && taken.contains(reader) &&
             use.get() == reader.getInput() && use.getOperandNumber() == 0;
    });
    if (onlyRows)
      op.getResult().setType(type.clone(BFloat16Type::get(op.getContext())));
  }
}

struct TileGroupedMatmulSm90
    : moe::impl::TileGroupedMatmulSm90Base<TileGroupedMatmulSm90> {
  using Base::Base;

  void runOnOperation() override {
    if (tileCols != 128 && tileCols != 256) {
      getOperation()->emitError(
          "moe-tile-grouped-matmul-sm90: tile-cols must be 128 or 256");
      return signalPassFailure();
    }
    // Room for the alignment pad and the tile starts of a few hundred
    // groups besides the stages.
    GemmShape tiles{};
    tiles.mmaCols = tileCols;
    int64_t stageBytes = tiles.stageBytes();
    int64_t maxStages = (kMaxSharedBytes - 4 * kSwizzleAtomBytes) / stageBytes;
    if (stages < 2 || stages > maxStages) {
      getOperation()->emitError()
          << "moe-tile-grouped-matmul-sm90: stages must be 2 to " << maxStages
          << " with tile-cols=" << tileCols.getValue() << " ("
          << stageBytes / 1024 << " KiB of shared memory each)";
      return signalPassFailure();
    }
    if (smCount < 1) {
      getOperation()->emitError(
          "moe-tile-grouped-matmul-sm90: sm-count must be positive");
      return signalPassFailure();
    }
    SmallVector<GroupedMatmulOp> ops;
    getOperation()->walk([&](GroupedMatmulOp op) {
      if (takes(op))
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    narrowProducedRows(ops);
    // Sizes of products and of their consumers taken from the operands, so
    // that the values fused into an epilogue have no other reader; the IR
    // is otherwise left as it is.
    RewritePatternSet dims(&getContext());
    memref::populateResolveRankedShapedTypeResultDimsPatterns(dims);
    if (failed(applyPatternsGreedily(
            getOperation(), std::move(dims),
            GreedyRewriteConfig()
                .enableFolding(false)
                .enableConstantCSE(false)
                .setRegionSimplificationLevel(
                    GreedySimplifyRegionLevel::Disabled))))
      return signalPassFailure();
    ModuleOp module = getOperation();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(&getContext()));
    KernelCache kernels(module, stages);
    llvm::SmallPtrSet<Operation *, 16> taken;
    for (GroupedMatmulOp op : ops)
      taken.insert(op);
    // (The set also holds the products lowered so far, erased: only a live
    // grouped matmul's rows count.)
    Bf16Operands bf16Inputs([&](OpOperand &use) {
      return isa<GroupedMatmulOp>(use.getOwner()) &&
             taken.contains(use.getOwner()) && use.getOperandNumber() == 0;
    });
    IRRewriter rewriter(&getContext());
    for (GroupedMatmulOp op : ops) {
      rewriter.setInsertionPoint(op);
      lowerGroupedMatmul(rewriter, op, kernels, bf16Inputs,
                         {stages, smCount, tileCols, combineScatter});
    }
    bf16Inputs.eraseNarrowed();
  }
};

} // namespace

//===- MoeOps.cpp - moe operations ----------------------------------------===//

#include "dialect/MoeOps.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Shape checking helpers
//===----------------------------------------------------------------------===//

namespace {
constexpr int64_t kAny = ShapedType::kDynamic;

bool dimsCompatible(int64_t a, int64_t b) {
  return a == b || ShapedType::isDynamic(a) || ShapedType::isDynamic(b);
}

/// Combines two sizes of the same logical dimension: the static one wins.
int64_t meetDims(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) ? b : a;
}

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return text;
}

/// Checks that `value` is a tensor of shape `expected` (kAny matches any
/// size). `layout` names the dimensions for the user, e.g. "[T, E]".
LogicalResult checkShape(Operation *op, StringRef name, StringRef layout,
                         Value value, ArrayRef<int64_t> expected) {
  auto type = cast<RankedTensorType>(value.getType());
  bool ok =
      type.getRank() == static_cast<int64_t>(expected.size()) &&
      llvm::all_of(llvm::zip_equal(type.getShape(), expected), [](auto dims) {
        return dimsCompatible(std::get<0>(dims), std::get<1>(dims));
      });
  if (ok)
    return success();
  return op->emitOpError() << "expects " << name << " of shape " << layout
                           << " = " << formatShape(expected) << ", got "
                           << type;
}

/// Checks the rank of `value` before its dimensions are read.
LogicalResult checkRank(Operation *op, StringRef name, StringRef layout,
                        Value value) {
  auto type = cast<RankedTensorType>(value.getType());
  auto rank = static_cast<int64_t>(llvm::count(layout, ',') + 1);
  if (type.getRank() == rank)
    return success();
  return op->emitOpError() << "expects " << name << " of rank " << rank << " "
                           << layout << ", got " << type;
}

int64_t dim(Value value, unsigned i) {
  return cast<RankedTensorType>(value.getType()).getDimSize(i);
}

Type elementType(Value value) {
  return cast<RankedTensorType>(value.getType()).getElementType();
}

LogicalResult verifyPolicy(Operation *op, RoutingPolicyAttrInterface policy,
                           int64_t numExperts) {
  return policy.verifyForExperts(numExperts,
                                 [op]() { return op->emitOpError(); });
}

/// Replaces a routing policy by the simpler equivalent its interface offers,
/// e.g. a top_p capped at one expert becomes top_k with k = 1.
template <typename OpTy> struct SimplifyRoutingPolicy : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    RoutingPolicyAttrInterface policy = op.getPolicy();
    RoutingPolicyAttrInterface simpler =
        policy.simplifyForExperts(op.getNumExperts());
    if (simpler == policy)
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.setPolicyAttr(simpler); });
    return success();
  }
};
} // namespace

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRank(op, "logits", "[T, E]", getLogits())))
    return failure();
  int64_t numExperts = getNumExperts();
  if (ShapedType::isDynamic(numExperts))
    return emitOpError("expects a static number of experts E in the logits ")
           << getLogits().getType();
  if (numExperts < 1)
    return emitOpError("expects at least one expert, got E = ") << numExperts;
  if (failed(verifyPolicy(op, getPolicy(), numExperts)))
    return failure();
  int64_t t = dim(getLogits(), 0);
  int64_t k = getPolicy().getMaxExpertsPerToken(numExperts);
  if (failed(checkShape(op, "expert_ids", "[T, K]", getExpertIds(), {t, k})) ||
      failed(checkShape(op, "weights", "[T, K]", getWeights(), {t, k})) ||
      failed(checkShape(op, "counts", "[T]", getCounts(), {t})))
    return failure();
  if (getCaps() && failed(checkShape(op, "caps", "[T]", getCaps(), {t})))
    return failure();
  return success();
}

void RouterOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                           MLIRContext *context) {
  results.add<SimplifyRoutingPolicy<RouterOp>>(context);
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRank(op, "tokens", "[T, D]", getTokens())) ||
      failed(checkRank(op, "expert_ids", "[T, K]", getExpertIds())) ||
      failed(checkRank(op, "group_offsets", "[E + 1]", getGroupOffsets())) ||
      failed(checkRank(op, "rows", "[R, D]", getRows())))
    return failure();
  if (ShapedType::isDynamic(dim(getGroupOffsets(), 0)) || getNumExperts() < 1)
    return emitOpError("expects group_offsets of static size E + 1 >= 2, got ")
           << getGroupOffsets().getType();
  int64_t t = meetDims(dim(getTokens(), 0), dim(getExpertIds(), 0));
  int64_t d = dim(getTokens(), 1), k = dim(getExpertIds(), 1);
  int64_t r = meetDims(dim(getRows(), 0), dim(getRowToToken(), 0));
  if (failed(checkShape(op, "expert_ids", "[T, K]", getExpertIds(), {t, k})) ||
      failed(checkShape(op, "counts", "[T]", getCounts(), {t})) ||
      failed(checkShape(op, "rows", "[R, D]", getRows(), {r, d})) ||
      failed(checkShape(op, "row_to_token", "[R]", getRowToToken(), {r})) ||
      failed(checkShape(op, "slot_to_row", "[T, K]", getSlotToRow(), {t, k})))
    return failure();
  if (elementType(getRows()) != elementType(getTokens()))
    return emitOpError("expects rows of the tokens' element type ")
           << elementType(getTokens()) << ", got " << elementType(getRows());
  return success();
}

//===----------------------------------------------------------------------===//
// TileScheduleOp
//===----------------------------------------------------------------------===//

LogicalResult TileScheduleOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRank(op, "group_offsets", "[G + 1]", getGroupOffsets())))
    return failure();
  if (ShapedType::isDynamic(dim(getGroupOffsets(), 0)) || getNumGroups() < 1)
    return emitOpError("expects group_offsets of static size G + 1 >= 2, got ")
           << getGroupOffsets().getType();
  return checkShape(op, "tiles", "[tiles, 3]", getTiles(), {kAny, 3});
}

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  // The runtime's table holds each weight's address; a buffer read from it
  // has no offset and is dense in row-major order.
  if (auto type = dyn_cast<MemRefType>(getType());
      type && !type.getLayout().isIdentity())
    return emitOpError("expects an identity-layout memref result, got ")
           << type;
  return success();
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult GroupedMatmulOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRank(op, "input", "[R, K]", getInput())) ||
      failed(checkRank(op, "weight", "[G, N, K]", getWeight())) ||
      failed(checkRank(op, "group_offsets", "[G + 1]", getGroupOffsets())))
    return failure();
  int64_t r = dim(getInput(), 0), k = dim(getInput(), 1);
  int64_t g = dim(getWeight(), 0), n = dim(getWeight(), 1);
  int64_t offsets = ShapedType::isDynamic(g) ? kAny : g + 1;
  if (failed(checkShape(op, "weight", "[G, N, K]", getWeight(), {g, n, k})) ||
      failed(checkShape(op, "group_offsets", "[G + 1]", getGroupOffsets(),
                        {offsets})) ||
      failed(checkShape(op, "result", "[R, N]", getResult(), {r, n})))
    return failure();
  if (getRowScale() &&
      failed(checkShape(op, "row_scale", "[R]", getRowScale(), {r})))
    return failure();

  bool swiglu = getEpilogue() == Epilogue::swiglu;
  if (swiglu && !getUpWeight())
    return emitOpError("epilogue(swiglu) needs an up_weight operand for the "
                       "up projection");
  if (!swiglu && getUpWeight())
    return emitOpError("up_weight is only used by epilogue(swiglu), but the "
                       "epilogue is ")
           << stringifyEpilogue(getEpilogue());
  if (getUpWeight() && getUpWeight().getType() != getWeight().getType())
    return emitOpError("expects up_weight of the weight's type ")
           << getWeight().getType() << ", got " << getUpWeight().getType();
  return success();
}

/// [R, N]: the input's rows by the weights' rows.
LogicalResult
GroupedMatmulOp::reifyResultShapes(OpBuilder &b,
                                   ReifiedRankedShapedTypeDims &shapes) {
  shapes = {{tensor::getMixedSize(b, getLoc(), getInput(), 0),
             tensor::getMixedSize(b, getLoc(), getWeight(), 1)}};
  return success();
}

/// `swiglu` rather than the enum attribute's own ` swiglu` spelling.
static ParseResult parseEpilogue(OpAsmParser &parser, EpilogueAttr &attr) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<Epilogue> epilogue = symbolizeEpilogue(keyword);
  if (!epilogue)
    return parser.emitError(loc, "unknown epilogue '") << keyword << "'";
  attr = EpilogueAttr::get(parser.getContext(), *epilogue);
  return success();
}

static void printEpilogue(OpAsmPrinter &printer, Operation *,
                          EpilogueAttr attr) {
  printer << stringifyEpilogue(attr.getValue());
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  Operation *op = getOperation();
  // The weights, when given, set T and K; otherwise slot_to_row does.
  Value slots = getWeights() ? getWeights() : getSlotToRow();
  StringRef slotsName = getWeights() ? "weights" : "slot_to_row";
  if (failed(checkRank(op, "rows", "[R, D]", getRows())) ||
      failed(checkRank(op, slotsName, "[T, K]", slots)))
    return failure();
  int64_t d = dim(getRows(), 1);
  int64_t t = meetDims(dim(slots, 0), dim(getResult(), 0));
  int64_t k = dim(slots, 1);
  if ((getWeights() &&
       failed(checkShape(op, "weights", "[T, K]", getWeights(), {t, k}))) ||
      failed(checkShape(op, "slot_to_row", "[T, K]", getSlotToRow(), {t, k})) ||
      failed(checkShape(op, "counts", "[T]", getCounts(), {t})) ||
      failed(checkShape(op, "result", "[T, D]", getResult(), {t, d})))
    return failure();
  return success();
}

/// [T, D]: a row per token of slot_to_row, the rows' width.
LogicalResult CombineOp::reifyResultShapes(OpBuilder &b,
                                           ReifiedRankedShapedTypeDims &shapes) {
  shapes = {{tensor::getMixedSize(b, getLoc(), getSlotToRow(), 0),
             tensor::getMixedSize(b, getLoc(), getRows(), 1)}};
  return success();
}

/// `rows, [weights,] slot_to_row, counts`: three operands mean no weights.
static ParseResult
parseCombineOperands(OpAsmParser &parser, OpAsmParser::UnresolvedOperand &rows,
                     std::optional<OpAsmParser::UnresolvedOperand> &weights,
                     OpAsmParser::UnresolvedOperand &slotToRow,
                     OpAsmParser::UnresolvedOperand &counts) {
  SmallVector<OpAsmParser::UnresolvedOperand, 4> operands;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseOperandList(operands))
    return failure();
  if (operands.size() != 3 && operands.size() != 4)
    return parser.emitError(loc, "expected rows, [weights,] slot_to_row and "
                                 "counts, got ")
           << operands.size() << " operands";
  rows = operands.front();
  if (operands.size() == 4)
    weights = operands[1];
  slotToRow = operands[operands.size() - 2];
  counts = operands.back();
  return success();
}

static void printCombineOperands(OpAsmPrinter &printer, Operation *, Value rows,
                                 Value weights, Value slotToRow, Value counts) {
  printer << rows << ", ";
  if (weights)
    printer << weights << ", ";
  printer << slotToRow << ", " << counts;
}

//===----------------------------------------------------------------------===//
// RowWeightsOp
//===----------------------------------------------------------------------===//

LogicalResult RowWeightsOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRank(op, "weights", "[T, K]", getWeights())))
    return failure();
  int64_t t = dim(getWeights(), 0), k = dim(getWeights(), 1);
  int64_t r = meetDims(dim(getRowToToken(), 0), dim(getResult(), 0));
  return success(
      succeeded(
          checkShape(op, "slot_to_row", "[T, K]", getSlotToRow(), {t, k})) &&
      succeeded(checkShape(op, "row_to_token", "[R]", getRowToToken(), {r})) &&
      succeeded(checkShape(op, "result", "[R]", getResult(), {r})));
}

//===----------------------------------------------------------------------===//
// SplitTokensOp / MergeTokensOp
//===----------------------------------------------------------------------===//

/// Checks a reshape from [rows, width] to [rows * rowFactor, width / rowFactor]
/// (split: rowFactor = heads) or back (merge). `wide` is the [T, D] side.
static LogicalResult verifyTokenReshape(Operation *op, Value wide, Value narrow,
                                        int64_t heads, StringRef wideName,
                                        StringRef narrowName) {
  if (failed(checkRank(op, wideName, "[T, D]", wide)) ||
      failed(checkRank(op, narrowName, "[T * heads, D / heads]", narrow)))
    return failure();
  if (elementType(wide) != elementType(narrow))
    return op->emitOpError("expects input and result of one element type");
  int64_t t = dim(wide, 0), d = dim(wide, 1);
  int64_t s = dim(narrow, 0), w = dim(narrow, 1);
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(w))
    return op->emitOpError("expects a static hidden size");
  if (d % heads != 0)
    return op->emitOpError()
           << "hidden size " << d << " is not divisible by heads = " << heads;
  if (!ShapedType::isDynamic(s) && s % heads != 0)
    return op->emitOpError() << "sub-token count " << s
                             << " is not a multiple of heads = " << heads;
  int64_t tokens = ShapedType::isDynamic(t)
                       ? (ShapedType::isDynamic(s) ? kAny : s / heads)
                       : t;
  int64_t subTokens = ShapedType::isDynamic(tokens) ? kAny : tokens * heads;
  if (failed(checkShape(op, wideName, "[T, D]", wide, {tokens, d})) ||
      failed(checkShape(op, narrowName, "[T * heads, D / heads]", narrow,
                        {subTokens, d / heads})))
    return failure();
  return success();
}

LogicalResult SplitTokensOp::verify() {
  return verifyTokenReshape(getOperation(), getInput(), getResult(), getHeads(),
                            "input", "result");
}

LogicalResult MergeTokensOp::verify() {
  return verifyTokenReshape(getOperation(), getResult(), getInput(), getHeads(),
                            "result", "input");
}

/// split(merge(x)) and merge(split(x)) with the same heads are x; so is
/// either op with one head.
template <typename InverseOp, typename OpTy>
static OpFoldResult foldTokenReshape(OpTy op) {
  if (op.getHeads() == 1 && op.getInput().getType() == op.getType())
    return op.getInput();
  auto inverse = op.getInput().template getDefiningOp<InverseOp>();
  if (inverse && inverse.getHeads() == op.getHeads() &&
      inverse.getInput().getType() == op.getType())
    return inverse.getInput();
  return {};
}

OpFoldResult SplitTokensOp::fold(FoldAdaptor) {
  return foldTokenReshape<MergeTokensOp>(*this);
}

OpFoldResult MergeTokensOp::fold(FoldAdaptor) {
  return foldTokenReshape<SplitTokensOp>(*this);
}

//===----------------------------------------------------------------------===//
// AttentionOp / GroupedAttentionOp
//===----------------------------------------------------------------------===//

/// `offset`: the queries are positions of their own (moe.attention's
/// offset), so their count need not be the keys'.
static LogicalResult verifyAttention(Operation *op, Value query, Value key,
                                     Value value, Value result,
                                     bool offset = false) {
  if (failed(checkRank(op, "query", "[B, T, H, Dh]", query)) ||
      failed(checkRank(op, "key", "[B, T, KVH, Dh]", key)))
    return failure();
  int64_t b = meetDims(dim(query, 0), dim(key, 0));
  int64_t t = meetDims(dim(query, 1), dim(key, 1));
  int64_t tq = t;
  if (offset) {
    t = dim(key, 1);
    tq = dim(query, 1);
  }
  int64_t h = dim(query, 2), kvh = dim(key, 2), dh = dim(query, 3);
  if (ShapedType::isDynamic(h) || ShapedType::isDynamic(kvh) ||
      ShapedType::isDynamic(dh))
    return op->emitOpError("expects static head counts and head size");
  if (h % kvh != 0)
    return op->emitOpError()
           << "query heads H = " << h
           << " must be a multiple of the kv-heads KVH = " << kvh;
  if (failed(checkShape(op, "query", "[B, T, H, Dh]", query, {b, tq, h, dh})) ||
      failed(checkShape(op, "key", "[B, T, KVH, Dh]", key, {b, t, kvh, dh})) ||
      failed(
          checkShape(op, "value", "[B, T, KVH, Dh]", value, {b, t, kvh, dh})) ||
      failed(
          checkShape(op, "result", "[B, T, H, Dh]", result, {b, tq, h, dh})))
    return failure();
  return success();
}

LogicalResult AttentionOp::verify() {
  return verifyAttention(getOperation(), getQuery(), getKey(), getValue(),
                         getResult(), static_cast<bool>(getOffset()));
}

LogicalResult GroupedAttentionOp::verify() {
  return verifyAttention(getOperation(), getQuery(), getKey(), getValue(),
                         getResult());
}

//===----------------------------------------------------------------------===//
// MoeBlockOp
//===----------------------------------------------------------------------===//

/// Checks that the operands of one optional clause are all present or all
/// absent; sets `present`.
static LogicalResult checkClause(Operation *op, StringRef clause,
                                 ArrayRef<Value> operands, bool &present) {
  unsigned given = llvm::count_if(operands, [](Value v) { return bool(v); });
  present = given != 0;
  if (given == 0 || given == operands.size())
    return success();
  return op->emitOpError() << clause << " needs all " << operands.size()
                           << " of its operands, got " << given;
}

/// Checks the three weights of a SwiGLU expert acting on width `d`.
static LogicalResult checkSwiGlu(Operation *op, StringRef clause, Value w1,
                                 Value w3, Value w2, int64_t d) {
  if (failed(checkRank(op, (clause + " w1").str(), "[F, D]", w1)))
    return failure();
  int64_t f = dim(w1, 0);
  return success(
      succeeded(checkShape(op, (clause + " w1").str(), "[F, D]", w1, {f, d})) &&
      succeeded(checkShape(op, (clause + " w3").str(), "[F, D]", w3, {f, d})) &&
      succeeded(checkShape(op, (clause + " w2").str(), "[D, F]", w2, {d, f})));
}

LogicalResult MoeBlockOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRank(op, "hidden", "[T, D]", getHidden())))
    return failure();
  int64_t t = dim(getHidden(), 0), d = dim(getHidden(), 1);
  if (ShapedType::isDynamic(d))
    return emitOpError("expects a static hidden size in ")
           << getHidden().getType();
  if (failed(checkShape(op, "result", "[T, D]", getResult(), {t, d})))
    return failure();

  // Multi-head MoE: experts see sub-tokens of width D / heads.
  bool multiHead;
  if (failed(checkClause(
          op, "multi_head",
          {getHeadWeight(), getHeadBias(), getMergeWeight(), getMergeBias()},
          multiHead)))
    return failure();
  if (multiHead != getHeads().has_value())
    return emitOpError("multi_head needs both heads and its four projection "
                       "operands");
  int64_t routedWidth = d;
  if (multiHead) {
    int64_t heads = *getHeads();
    if (d % heads != 0)
      return emitOpError() << "hidden size " << d
                           << " is not divisible by heads = " << heads;
    routedWidth = d / heads;
    if (failed(checkShape(op, "multi_head weight", "[D, D]", getHeadWeight(),
                          {d, d})) ||
        failed(checkShape(op, "multi_head bias", "[D]", getHeadBias(), {d})) ||
        failed(checkShape(op, "merge weight", "[D, D]", getMergeWeight(),
                          {d, d})) ||
        failed(checkShape(op, "merge bias", "[D]", getMergeBias(), {d})))
      return failure();
  }

  // Routed experts.
  if (failed(checkRank(op, "gate", "[E, Dr]", getGate())) ||
      failed(checkRank(op, "w1", "[E, F, Dr]", getW1())))
    return failure();
  int64_t e = dim(getGate(), 0), f = dim(getW1(), 1);
  if (ShapedType::isDynamic(e) || e < 1)
    return emitOpError("expects a static number of experts E >= 1 in gate ")
           << getGate().getType();
  if (failed(checkShape(op, "gate", "[E, Dr]", getGate(), {e, routedWidth})) ||
      failed(
          checkShape(op, "w1", "[E, F, Dr]", getW1(), {e, f, routedWidth})) ||
      failed(
          checkShape(op, "w3", "[E, F, Dr]", getW3(), {e, f, routedWidth})) ||
      failed(checkShape(op, "w2", "[E, Dr, F]", getW2(), {e, routedWidth, f})))
    return failure();
  if (failed(verifyPolicy(op, getPolicy(), e)))
    return failure();

  // Qwen2-MoE shared expert.
  bool shared;
  if (failed(checkClause(
          op, "shared_expert",
          {getSharedW1(), getSharedW3(), getSharedW2(), getSharedGate()},
          shared)))
    return failure();
  if (shared && (failed(checkSwiGlu(op, "shared_expert", getSharedW1(),
                                    getSharedW3(), getSharedW2(), d)) ||
                 failed(checkShape(op, "shared_expert gate", "[1, D]",
                                   getSharedGate(), {1, d}))))
    return failure();

  // Dual-scale shared experts.
  bool shallow, deep;
  if (failed(checkClause(op, "shallow_expert",
                         {getShallowW1(), getShallowW3(), getShallowW2()},
                         shallow)) ||
      failed(checkClause(op, "deep_expert",
                         {getDeepW1(), getDeepW3(), getDeepW2()}, deep)))
    return failure();
  if (shallow != deep)
    return emitOpError("dual-scale shared experts need both shallow_expert "
                       "and deep_expert");
  if (shallow && (failed(checkSwiGlu(op, "shallow_expert", getShallowW1(),
                                     getShallowW3(), getShallowW2(), d)) ||
                  failed(checkSwiGlu(op, "deep_expert", getDeepW1(),
                                     getDeepW3(), getDeepW2(), d))))
    return failure();

  // Adaptive dynamic routing.
  bool adaptive;
  if (failed(checkClause(op, "adaptive_routing",
                         {getComplexityWeight(), getComplexityBias()},
                         adaptive)))
    return failure();
  if (adaptive != getLevelThreshold().has_value() ||
      adaptive != getSimpleMaxExperts().has_value())
    return emitOpError("adaptive_routing needs its gate operands, "
                       "level_threshold and simple_max_experts together");
  if (adaptive) {
    if (!shallow)
      return emitOpError("adaptive_routing needs the dual-scale shared "
                         "experts (shallow_expert and deep_expert)");
    double threshold = getLevelThreshold()->convertToDouble();
    if (!(threshold >= 0.0 && threshold <= 1.0))
      return emitOpError("level_threshold must be in [0, 1], got ")
             << threshold;
    if (failed(checkShape(op, "complexity gate weight", "[1, D]",
                          getComplexityWeight(), {1, d})) ||
        failed(checkShape(op, "complexity gate bias", "[1]",
                          getComplexityBias(), {1})))
      return failure();
  }

  // Routing statistics.
  if (!getStats().empty()) {
    if (getStats().size() != 3)
      return emitOpError("expects no stats results or three (experts per "
                         "token, rows per expert, ADR level), got ")
             << getStats().size();
    int64_t subTokens =
        ShapedType::isDynamic(t) ? t : t * getHeads().value_or(1);
    if (failed(checkShape(op, "experts-per-token stats", "[T * heads]",
                          getStats()[0], {subTokens})) ||
        failed(checkShape(op, "rows-per-expert stats", "[E]", getStats()[1],
                          {e})) ||
        failed(checkShape(op, "ADR level stats", "[T]", getStats()[2], {t})))
      return failure();
  }
  return success();
}

void MoeBlockOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                             MLIRContext *context) {
  results.add<SimplifyRoutingPolicy<MoeBlockOp>>(context);
}

#define GET_OP_CLASSES
#include "dialect/MoeOps.cpp.inc"

//===- MoeAttrs.cpp - moe attributes --------------------------------------===//

#include "dialect/MoeAttrs.h"
#include "dialect/MoeDialect.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include "llvm/ADT/TypeSwitch.h"
#include <cstdlib>

#include "llvm/Support/MathExtras.h"
#include <cmath>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Parameter syntax
//===----------------------------------------------------------------------===//

FailureOr<bool> mlir::moe::parseBoolParameter(AsmParser &parser) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (succeeded(parser.parseOptionalKeyword(&keyword, {"true", "false"})))
    return keyword == "true";
  return parser.emitError(loc, "expected 'true' or 'false'");
}

FailureOr<llvm::APFloat> mlir::moe::parseFloatParameter(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return llvm::APFloat(value);
}

/// The shortest decimal form that reads back as the same double, as the
/// attributes spell it; diagnostics use it too, so that they quote the value
/// the way the user wrote it rather than as 1.500000e+00.
static std::string formatFloat(double d) {
  std::string text;
  for (int digits = 1; digits <= 17; ++digits) {
    text = llvm::formatv("{0}", llvm::format("%.*g", digits, d)).str();
    if (std::strtod(text.c_str(), nullptr) == d)
      break;
  }
  if (StringRef(text).find_first_of(".eEn") == StringRef::npos)
    text += ".0";
  return text;
}

void mlir::moe::printFloatParameter(AsmPrinter &printer,
                                    const llvm::APFloat &value) {
  printer << formatFloat(value.convertToDouble());
}

//===----------------------------------------------------------------------===//
// TopKAttr
//===----------------------------------------------------------------------===//

LogicalResult TopKAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t k, bool normalize) {
  if (k < 1)
    return emitError() << "top_k needs k >= 1, got " << k;
  return success();
}

int64_t TopKAttr::getMaxExpertsPerToken(int64_t numExperts) const {
  return std::min(getK(), numExperts);
}

bool TopKAttr::hasDynamicExpertCount() const { return false; }

LogicalResult
TopKAttr::verifyForExperts(int64_t numExperts,
                           function_ref<InFlightDiagnostic()> emitError) const {
  if (getK() > numExperts)
    return emitError() << "top_k selects k = " << getK()
                       << " experts but the layer has only " << numExperts
                       << "; use k <= " << numExperts;
  return success();
}

//===----------------------------------------------------------------------===//
// Dynamic policies with an optional cap (top_p, threshold)
//===----------------------------------------------------------------------===//

static LogicalResult
verifyMaxExperts(function_ref<InFlightDiagnostic()> emitError, StringRef policy,
                 std::optional<int64_t> maxExperts) {
  if (maxExperts && *maxExperts < 1)
    return emitError() << policy << " needs max_experts >= 1, got "
                       << *maxExperts;
  return success();
}

static int64_t cappedExperts(std::optional<int64_t> maxExperts,
                             int64_t numExperts) {
  return maxExperts ? std::min(*maxExperts, numExperts) : numExperts;
}

/// Shared by the policies with `threshold`, `max_experts` and `normalize`
/// parameters whose first expert is always selected.
template <typename PolicyAttr>
static RoutingPolicyAttrInterface simplifyCapped(PolicyAttr policy,
                                                 int64_t numExperts) {
  // One expert per token: its raw probability is exactly top-1's weight, and
  // renormalising one weight gives 1 under both policies.
  if (policy.getMaxExpertsPerToken(numExperts) == 1)
    return TopKAttr::get(policy.getContext(), 1, policy.getNormalize());
  // A cap that can never bind routes like no cap at all.
  if (policy.getMaxExperts() && *policy.getMaxExperts() >= numExperts)
    return PolicyAttr::get(policy.getContext(), policy.getThreshold(),
                           std::nullopt, policy.getNormalize());
  return policy;
}

//===----------------------------------------------------------------------===//
// TopPAttr
//===----------------------------------------------------------------------===//

LogicalResult TopPAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               llvm::APFloat thresholdValue,
                               std::optional<int64_t> maxExperts,
                               bool normalize) {
  // docs/semantics.md §3 defines every threshold: 0 keeps one expert (p(1) >
  // 0), and a threshold that no prefix sum exceeds (>= 1) keeps them all, up to
  // the cap.
  double threshold = thresholdValue.convertToDouble();
  if (!(threshold >= 0.0 && std::isfinite(threshold)))
    return emitError() << "top_p needs a finite threshold >= 0, got "
                       << formatFloat(threshold);
  return verifyMaxExperts(emitError, "top_p", maxExperts);
}

int64_t TopPAttr::getMaxExpertsPerToken(int64_t numExperts) const {
  return cappedExperts(getMaxExperts(), numExperts);
}

bool TopPAttr::hasDynamicExpertCount() const { return true; }

LogicalResult
TopPAttr::verifyForExperts(int64_t numExperts,
                           function_ref<InFlightDiagnostic()> emitError) const {
  return success();
}

RoutingPolicyAttrInterface
TopPAttr::simplifyForExperts(int64_t numExperts) const {
  return simplifyCapped(*this, numExperts);
}

//===----------------------------------------------------------------------===//
// ThresholdAttr
//===----------------------------------------------------------------------===//

LogicalResult
ThresholdAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      llvm::APFloat thresholdValue,
                      std::optional<int64_t> maxExperts, bool normalize) {
  // 0 keeps every expert with a nonzero probability; at 1 no probability
  // could pass, and the policy would be top_k<k = 1> in disguise.
  double threshold = thresholdValue.convertToDouble();
  if (!(threshold >= 0.0 && threshold < 1.0))
    return emitError() << "threshold policy needs a threshold in [0, 1), got "
                       << formatFloat(threshold);
  return verifyMaxExperts(emitError, "threshold policy", maxExperts);
}

int64_t ThresholdAttr::getMaxExpertsPerToken(int64_t numExperts) const {
  return cappedExperts(getMaxExperts(), numExperts);
}

bool ThresholdAttr::hasDynamicExpertCount() const { return true; }

LogicalResult ThresholdAttr::verifyForExperts(
    int64_t numExperts, function_ref<InFlightDiagnostic()> emitError) const {
  return success();
}

RoutingPolicyAttrInterface
ThresholdAttr::simplifyForExperts(int64_t numExperts) const {
  return simplifyCapped(*this, numExperts);
}

//===----------------------------------------------------------------------===//
// ExpertScheduleAttr
//===----------------------------------------------------------------------===//

LogicalResult
ExpertScheduleAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                           ExpertScheduleKind kind, int64_t minExperts,
                           int64_t maxExperts, std::optional<int64_t> period) {
  if (minExperts < 1)
    return emitError() << "expert_schedule needs min_experts >= 1, got "
                       << minExperts;
  if (maxExperts < minExperts)
    return emitError() << "expert_schedule needs min_experts <= max_experts, "
                          "got "
                       << minExperts << " > " << maxExperts;
  if (kind == ExpertScheduleKind::wave) {
    if (!period)
      return emitError() << "the wave expert_schedule needs a period";
    if (*period < 1)
      return emitError() << "expert_schedule needs period >= 1, got "
                         << *period;
  } else if (period) {
    return emitError() << "period applies only to the wave expert_schedule, "
                          "not to "
                       << stringifyExpertScheduleKind(kind);
  }
  return success();
}

int64_t ExpertScheduleAttr::getNumExperts(int64_t layer,
                                          int64_t numLayers) const {
  double lo = getMinExperts(), hi = getMaxExperts(), delta = hi - lo;
  double t = numLayers > 1 ? double(layer) / double(numLayers - 1) : 0.0;
  double tent = 1.0 - std::abs(2.0 * t - 1.0);
  auto round = [](double x) { return int64_t(std::floor(x + 0.5)); };
  switch (getKind()) {
  case ExpertScheduleKind::uniform:
    return getMaxExperts();
  case ExpertScheduleKind::descending:
    return round(hi - delta * t);
  case ExpertScheduleKind::ascending:
    return round(lo + delta * t);
  case ExpertScheduleKind::pyramid:
    return round(lo + delta * tent);
  case ExpertScheduleKind::hourglass:
    return round(hi - delta * tent);
  case ExpertScheduleKind::wave: {
    // The phase from l mod period, so that sin is exactly 0 at whole periods
    // (a rounding of 2*pi*l/period would tip an x.5 below it).
    int64_t period = *getPeriod();
    double phase =
        2.0 * llvm::numbers::pi * double(layer % period) / double(period);
    return round(lo + delta * (1.0 + std::sin(phase)) / 2.0);
  }
  }
  llvm_unreachable("unknown expert schedule kind");
}

//===----------------------------------------------------------------------===//
// Kernel shapes
//===----------------------------------------------------------------------===//

LogicalResult CpuMatmulKernelAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, MatmulMicroKernel kind,
    int64_t tileRows, int64_t tileCols, int64_t tileK, int64_t microRows,
    int64_t microCols, int64_t vectorWidth, bool bf16Dot) {
  std::pair<StringRef, int64_t> sizes[] = {
      {"tile_rows", tileRows},   {"tile_cols", tileCols},
      {"tile_k", tileK},         {"micro_rows", microRows},
      {"micro_cols", microCols}, {"vector_width", vectorWidth}};
  for (auto [name, size] : sizes)
    if (size < 1)
      return emitError() << "cpu_matmul_kernel needs " << name << " >= 1, got "
                         << size;
  if (kind != MatmulMicroKernel::outer)
    return success();
  if (microCols % vectorWidth)
    return emitError() << "an outer cpu_matmul_kernel needs micro_cols ("
                       << microCols << ") to be a multiple of vector_width ("
                       << vectorWidth << ")";
  if (!llvm::isPowerOf2_64(vectorWidth))
    return emitError() << "an outer cpu_matmul_kernel needs a power-of-two "
                          "vector_width, got "
                       << vectorWidth;
  if (tileCols % microCols)
    return emitError() << "an outer cpu_matmul_kernel needs tile_cols ("
                       << tileCols << ") to be a multiple of micro_cols ("
                       << microCols << ")";
  if (bf16Dot)
    return emitError() << "bf16_dot applies to dot cpu_matmul_kernels only";
  return success();
}

LogicalResult
AttentionKernelAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                            int64_t headsPerStep, int64_t queryBlock,
                            int64_t keyBlock, int64_t microRows,
                            int64_t vectorWidth) {
  std::pair<StringRef, int64_t> sizes[] = {{"heads_per_step", headsPerStep},
                                           {"query_block", queryBlock},
                                           {"key_block", keyBlock},
                                           {"micro_rows", microRows},
                                           {"vector_width", vectorWidth}};
  for (auto [name, size] : sizes)
    if (size < 1)
      return emitError() << "attention_kernel needs " << name << " >= 1, got "
                         << size;
  if ((headsPerStep * queryBlock) % vectorWidth)
    return emitError() << "attention_kernel needs its query rows "
                          "(heads_per_step x query_block = "
                       << headsPerStep * queryBlock
                       << ") to be a multiple of vector_width (" << vectorWidth
                       << ")";
  if (keyBlock % microRows)
    return emitError() << "attention_kernel needs key_block (" << keyBlock
                       << ") to be a multiple of micro_rows (" << microRows
                       << ")";
  return success();
}

#include "dialect/MoeEnums.cpp.inc"
#include "dialect/MoeInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/MoeAttrs.cpp.inc"

void MoeDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialect/MoeAttrs.cpp.inc"
      >();
}

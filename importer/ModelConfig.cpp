//===- ModelConfig.cpp - config.json parsing and validation ---------------===//

#include "importer/ModelConfig.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdio>

using namespace moec;
using llvm::StringRef;
using llvm::Twine;
namespace json = llvm::json;

bool ModelConfig::isSparseLayer(int64_t layer) const {
  if (modelType == ModelType::Mixtral)
    return true;
  return !llvm::is_contained(mlpOnlyLayers, layer) &&
         (layer + 1) % decoderSparseStep == 0;
}

std::string ModelConfig::moeBlockName() const {
  return modelType == ModelType::Mixtral ? "block_sparse_moe" : "mlp";
}

namespace {

/// Reads the keys of one JSON object, remembering the first error (later
/// reads then return defaults) and which keys were read, so that the rest
/// can be reported as unknown.
class ObjectReader {
public:
  ObjectReader(const json::Object &object, std::string path, StringRef fileName,
               std::optional<std::string> &error)
      : object(object), path(std::move(path)), fileName(fileName),
        error(error) {}

  bool has(StringRef key) {
    used.insert(key);
    const json::Value *v = object.get(key);
    return v && v->kind() != json::Value::Null;
  }

  /// An integer >= `min`; `fallback` when absent (or null), an error when
  /// absent and no fallback is given.
  int64_t integer(StringRef key, int64_t min,
                  std::optional<int64_t> fallback = std::nullopt) {
    const json::Value *v = lookup(key, fallback.has_value());
    if (!v)
      return fallback.value_or(0);
    std::optional<int64_t> i = v->getAsInteger();
    if (!i) {
      fail(key, "expected an integer, got " + show(*v));
      return 0;
    }
    if (*i < min) {
      fail(key, "expected an integer >= " + std::to_string(min) + ", got " +
                    std::to_string(*i));
      return 0;
    }
    return *i;
  }

  std::optional<int64_t> optionalInteger(StringRef key, int64_t min) {
    if (!has(key))
      return std::nullopt;
    return integer(key, min);
  }

  /// A finite number; `fallback` when absent.
  double number(StringRef key, std::optional<double> fallback = std::nullopt) {
    const json::Value *v = lookup(key, fallback.has_value());
    if (!v)
      return fallback.value_or(0.0);
    std::optional<double> d = v->getAsNumber();
    if (!d || !std::isfinite(*d)) {
      fail(key, "expected a number, got " + show(*v));
      return 0.0;
    }
    return *d;
  }

  bool boolean(StringRef key, bool fallback) {
    const json::Value *v = lookup(key, /*optional=*/true);
    if (!v)
      return fallback;
    std::optional<bool> b = v->getAsBoolean();
    if (!b) {
      fail(key, "expected true or false, got " + show(*v));
      return fallback;
    }
    return *b;
  }

  /// A string among `choices`; `fallback` when absent.
  std::string choice(StringRef key, llvm::ArrayRef<StringRef> choices,
                     std::optional<StringRef> fallback = std::nullopt) {
    const json::Value *v = lookup(key, fallback.has_value());
    if (!v)
      return fallback ? fallback->str() : std::string();
    std::optional<StringRef> s = v->getAsString();
    if (!s || !llvm::is_contained(choices, *s)) {
      std::string expected;
      llvm::raw_string_ostream os(expected);
      os << "expected one of ";
      llvm::interleave(
          choices, os, [&](StringRef c) { os << '"' << c << '"'; }, ", ");
      fail(key, os.str() + ", got " + show(*v));
      return choices.front().str();
    }
    return s->str();
  }

  std::vector<int64_t> integerList(StringRef key, int64_t min, int64_t max) {
    std::vector<int64_t> result;
    const json::Value *v = lookup(key, /*optional=*/true);
    if (!v)
      return result;
    const json::Array *array = v->getAsArray();
    if (!array) {
      fail(key, "expected a list of integers, got " + show(*v));
      return result;
    }
    for (const json::Value &item : *array) {
      std::optional<int64_t> i = item.getAsInteger();
      if (!i || *i < min || *i > max) {
        fail(key, "expected integers in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], got " + show(item));
        return {};
      }
      result.push_back(*i);
    }
    return result;
  }

  /// The nested object at `key`, or null when absent.
  const json::Object *object_(StringRef key) {
    const json::Value *v = lookup(key, /*optional=*/true);
    if (!v)
      return nullptr;
    const json::Object *o = v->getAsObject();
    if (!o)
      fail(key, "expected an object, got " + show(*v));
    return o;
  }

  /// The dotted path of `key`, with control characters written as \xNN so
  /// that a message about any key stays on one line.
  std::string keyPath(StringRef key) const {
    std::string printable;
    for (unsigned char c : key) {
      if (c < 0x20 || c == 0x7f) {
        char escaped[5];
        std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
        printable += escaped;
      } else {
        printable += static_cast<char>(c);
      }
    }
    return path.empty() ? printable : path + "." + printable;
  }

  /// Records an error about `key`, unless one is recorded already.
  void fail(StringRef key, const std::string &message) {
    if (!error)
      error = fileName.str() + ": key '" + keyPath(key) + "': " + message;
  }

  /// Keys present but never read, with their paths.
  std::vector<std::string> unknownKeys() const {
    std::vector<std::string> keys;
    for (const auto &entry : object)
      if (!used.contains(entry.first))
        keys.push_back(keyPath(entry.first));
    llvm::sort(keys);
    return keys;
  }

  /// Adds a warning to `warnings` for each key present but never read.
  void warnUnknownKeys(std::vector<std::string> &warnings) const {
    for (const std::string &key : unknownKeys())
      warnings.push_back(fileName.str() + ": warning: ignoring unknown key '" +
                         key + "'");
  }

  /// Marks keys as read without using them (known and deliberately ignored).
  void ignore(llvm::ArrayRef<StringRef> keys) {
    for (StringRef key : keys)
      used.insert(key);
  }

  /// `v` as JSON text (strings quoted, control characters escaped, so an
  /// error stays on one line), cut to 40 characters.
  static std::string show(const json::Value &v) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << v;
    if (s.size() > 40)
      s = s.substr(0, 37) + "...";
    return s;
  }

private:
  const json::Value *lookup(StringRef key, bool optional) {
    used.insert(key);
    const json::Value *v = object.get(key);
    if (v && v->kind() != json::Value::Null)
      return v;
    if (!optional)
      fail(key, "missing (required)");
    return nullptr;
  }

  const json::Object &object;
  std::string path;
  StringRef fileName;
  std::optional<std::string> &error;
  llvm::StringSet<> used;
};

/// Keys of Hugging Face configs that do not change the forward pass moec
/// computes (or that it checks elsewhere); they are not reported as unknown.
const StringRef kIgnoredKeys[] = {"architectures",
                                  "attention_dropout",
                                  "bos_token_id",
                                  "eos_token_id",
                                  "initializer_range",
                                  "max_position_embeddings",
                                  "output_router_logits",
                                  "router_aux_loss_coef",
                                  "router_jitter_noise",
                                  "torch_dtype",
                                  "transformers_version",
                                  "use_cache",
                                  "pad_token_id",
                                  "max_window_layers",
                                  "_name_or_path",
                                  "dtype",
                                  "model_name"};

void parseExtension(ObjectReader &top, ModelConfig &config, StringRef fileName,
                    std::optional<std::string> &error,
                    std::vector<std::string> &warnings) {
  const json::Object *moecObject = top.object_("moec");
  if (!moecObject)
    return;
  ObjectReader ext(*moecObject, "moec", fileName, error);

  if (const json::Object *o = ext.object_("routing")) {
    ObjectReader r(*o, "moec.routing", fileName, error);
    std::string policy =
        r.choice("policy", {"top_k", "top_p", "threshold"}, StringRef("top_k"));
    if (policy == "top_p" || policy == "threshold") {
      bool topP = policy == "top_p";
      config.routing.policy =
          topP ? RoutingPolicy::TopP : RoutingPolicy::Threshold;
      config.routing.threshold = r.number("threshold");
      double t = config.routing.threshold;
      // top_p: any t >= 0 has a meaning (docs/semantics.md §3: K = E when no
      // prefix sum exceeds t); the threshold policy keeps nothing at t >= 1.
      if (topP ? !(t >= 0 && std::isfinite(t)) : !(t >= 0 && t < 1))
        r.fail("threshold", std::string("expected a number ") +
                                (topP ? ">= 0" : "in [0, 1)") + " for " +
                                policy);
      config.routing.maxExperts = r.optionalInteger("max_experts", 1);
      config.routing.normalize = r.boolean("normalize", false);
    } else if (r.has("threshold") || r.has("max_experts") ||
               r.has("normalize")) {
      warnings.push_back(fileName.str() +
                         ": warning: moec.routing: threshold, max_experts and "
                         "normalize do not apply to top_k; ignored");
    }
    r.warnUnknownKeys(warnings);
  }

  if (const json::Object *o = ext.object_("expert_schedule")) {
    ObjectReader s(*o, "moec.expert_schedule", fileName, error);
    ExpertScheduleConfig schedule;
    schedule.kind = s.choice("kind", {"uniform", "descending", "ascending",
                                      "pyramid", "hourglass", "wave"});
    schedule.minExperts = s.integer("min_experts", 1);
    schedule.maxExperts = s.integer("max_experts", 1);
    if (!error && schedule.maxExperts < schedule.minExperts)
      s.fail("max_experts", "must be >= min_experts (" +
                                std::to_string(schedule.minExperts) + ")");
    schedule.period = s.optionalInteger("period", 1);
    if (schedule.kind == "wave" && !schedule.period)
      s.fail("period", "missing (required by the wave schedule)");
    if (schedule.kind != "wave" && schedule.period) {
      // The semantics' example JSON lists a period beside every kind; only wave
      // uses it.
      warnings.push_back(fileName.str() +
                         ": warning: moec.expert_schedule.period applies only "
                         "to the wave schedule; ignored for " +
                         schedule.kind);
      schedule.period.reset();
    }
    config.expertSchedule = schedule;
    s.warnUnknownKeys(warnings);
  }

  if (const json::Object *o = ext.object_("multi_head")) {
    ObjectReader m(*o, "moec.multi_head", fileName, error);
    int64_t heads = m.integer("heads", 1);
    if (!error && config.hiddenSize % heads != 0)
      m.fail("heads", "hidden_size " + std::to_string(config.hiddenSize) +
                          " is not divisible by " + std::to_string(heads));
    config.multiHeadHeads = heads;
    m.warnUnknownKeys(warnings);
  }

  if (const json::Object *o = ext.object_("shared_experts")) {
    ObjectReader d(*o, "moec.shared_experts", fileName, error);
    DualScaleConfig dual;
    dual.shallowIntermediateSize = d.integer("shallow_intermediate_size", 1);
    dual.deepIntermediateSize = d.integer("deep_intermediate_size", 1);
    config.dualScale = dual;
    d.warnUnknownKeys(warnings);
  }

  if (const json::Object *o = ext.object_("adaptive_routing")) {
    ObjectReader a(*o, "moec.adaptive_routing", fileName, error);
    AdaptiveRoutingConfig adr;
    adr.levelThreshold = a.number("level_threshold");
    if (!(adr.levelThreshold >= 0 && adr.levelThreshold <= 1))
      a.fail("level_threshold", "expected a number in [0, 1]");
    adr.simpleMaxExperts = a.integer("simple_max_experts", 1);
    if (!config.dualScale)
      ext.fail("adaptive_routing", "needs moec.shared_experts (the deep "
                                   "expert it gates)");
    config.adaptiveRouting = adr;
    a.warnUnknownKeys(warnings);
  }

  if (const json::Object *o = ext.object_("attention")) {
    ObjectReader a(*o, "moec.attention", fileName, error);
    std::string kind = a.choice("kind", {"full", "sliding", "grouped"});
    if (kind == "full") {
      config.attention = AttentionConfig{};
    } else if (kind == "sliding") {
      // The window defaults to the model's sliding_window when it has one.
      std::optional<int64_t> fallback;
      if (config.attention.kind == AttentionKind::Sliding)
        fallback = config.attention.window;
      config.attention.kind = AttentionKind::Sliding;
      config.attention.window = a.integer("window", 1, fallback);
    } else {
      config.attention.kind = AttentionKind::Grouped;
      config.attention.window = a.integer("window", 1);
      config.attention.groupSize = a.integer("group_size", 1);
    }
    a.warnUnknownKeys(warnings);
  }

  ext.warnUnknownKeys(warnings);
}

/// The expert keys of mixtral, and its sliding window.
void parseMixtralKeys(ObjectReader &top, ModelConfig &config) {
  config.numExperts = top.integer("num_local_experts", 1);
  config.expertsPerToken = top.integer("num_experts_per_tok", 1);
  config.expertIntermediateSize = top.integer("intermediate_size", 1);
  config.normalizeTopK = true;
  if (top.has("sliding_window")) {
    config.attention.kind = AttentionKind::Sliding;
    config.attention.window = top.integer("sliding_window", 1);
  }
}

/// The expert keys of qwen2_moe, its shared expert, and which layers are
/// dense.
void parseQwen2MoeKeys(ObjectReader &top, ModelConfig &config,
                       const std::optional<std::string> &error) {
  config.numExperts = top.integer("num_experts", 1);
  config.expertsPerToken = top.integer("num_experts_per_tok", 1);
  config.expertIntermediateSize = top.integer("moe_intermediate_size", 1);
  config.sharedExpertIntermediateSize =
      top.integer("shared_expert_intermediate_size", 1);
  config.normalizeTopK = top.boolean("norm_topk_prob", false);
  config.decoderSparseStep = top.integer("decoder_sparse_step", 1, 1);
  config.mlpOnlyLayers =
      top.integerList("mlp_only_layers", 0, config.numLayers - 1);
  if (top.boolean("use_sliding_window", false))
    top.fail("use_sliding_window",
             "true is not supported (its per-layer rule is not part of "
             "moec's semantics); set it to false");
  top.ignore({"sliding_window", "qkv_bias", "attention_bias"});
  // Reading on after an error would use unchecked values (a zero step).
  bool anyDense = false;
  for (int64_t l = 0; !error && l < config.numLayers; ++l)
    anyDense |= !config.isSparseLayer(l);
  config.denseIntermediateSize =
      top.integer("intermediate_size", 1,
                  anyDense ? std::nullopt : std::optional<int64_t>(0));
}

/// A factor of a weight count and the config key it comes from.
struct SizeFactor {
  StringRef key;
  int64_t value;
};

/// `count` tensors of the product of `factors` elements each, once per
/// layer or once per model.
struct SizeTerm {
  int64_t count;
  std::vector<SizeFactor> factors;
  bool perLayer = true;
};

/// The weights of a model as terms whose sum bounds the element count from
/// above (every layer is counted with both a MoE block and a dense MLP and
/// every optional vector, the routed experts with their full width and the
/// schedule's largest E_l).
std::vector<SizeTerm> sizeTerms(const ModelConfig &c) {
  bool qwen = c.modelType == ModelType::Qwen2Moe;
  SizeFactor d{"hidden_size", c.hiddenSize}, dh{"head_dim", c.headDim};
  SizeFactor experts{qwen ? "num_experts" : "num_local_experts", c.numExperts};
  if (c.expertSchedule)
    experts = {"moec.expert_schedule.max_experts",
               c.expertSchedule->maxExperts};
  SizeFactor f{qwen ? "moe_intermediate_size" : "intermediate_size",
               c.expertIntermediateSize};
  SizeFactor heads{"num_attention_heads", c.numHeads},
      kvHeads{"num_key_value_heads", c.numKVHeads};
  std::vector<SizeTerm> terms{
      {c.tieWordEmbeddings ? 1 : 2, {{"vocab_size", c.vocabSize}, d}, false},
      {1, {d}, false}, // the final norm
      {2, {heads, d, dh}},
      {2, {kvHeads, d, dh}},
      {1, {heads, dh}}, // q/k/v biases (qwen2_moe)
      {2, {kvHeads, dh}},
      {3, {experts, f, d}},
      {1, {experts, d}},
      // Norms, MH-MoE biases, gates: at most 8 vectors of D per layer.
      {8, {d}}};
  if (qwen) {
    terms.push_back(
        {3,
         {{"shared_expert_intermediate_size", c.sharedExpertIntermediateSize},
          d}});
    terms.push_back({3, {{"intermediate_size", c.denseIntermediateSize}, d}});
  }
  if (c.multiHeadHeads)
    terms.push_back({2, {d, d}});
  if (c.dualScale) {
    terms.push_back({3,
                     {{"moec.shared_experts.shallow_intermediate_size",
                       c.dualScale->shallowIntermediateSize},
                      d}});
    terms.push_back({3,
                     {{"moec.shared_experts.deep_intermediate_size",
                       c.dualScale->deepIntermediateSize},
                      d}});
  }
  return terms;
}

/// `a * b` and `a + b`, or nullopt when the result exceeds
/// kMaxWeightElements (which also catches 64-bit overflow).
std::optional<int64_t> boundedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > kMaxWeightElements)
    return std::nullopt;
  return r;
}
std::optional<int64_t> boundedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r) || r > kMaxWeightElements)
    return std::nullopt;
  return r;
}

/// The elements of `term`, in all its tensors; nullopt when too many.
std::optional<int64_t> termElements(const SizeTerm &term) {
  std::optional<int64_t> n = term.count;
  for (const SizeFactor &factor : term.factors)
    if (n)
      n = boundedMul(*n, factor.value);
  return n;
}

/// The error for a model with more weights than any machine holds, naming
/// the key that makes it so, or nullopt.
std::optional<std::string> checkSizes(const ModelConfig &config,
                                      StringRef fileName) {
  auto tooLarge = [&](StringRef key, int64_t value, const Twine &what) {
    return (fileName + ": key '" + key + "': " + Twine(value) + " " + what +
            " more than 2^46 weight elements (128 TiB in bf16: no 64-bit "
            "machine can address them)")
        .str();
  };
  auto largestFactor = [](const SizeTerm &term) -> const SizeFactor & {
    return *llvm::max_element(term.factors,
                              [](const SizeFactor &a, const SizeFactor &b) {
                                return a.value < b.value;
                              });
  };
  int64_t layer = 0, model = 0, largestModelTerm = 0;
  const SizeTerm *modelCulprit = nullptr;
  std::vector<SizeTerm> terms = sizeTerms(config);
  for (const SizeTerm &term : terms) {
    std::optional<int64_t> n = termElements(term);
    if (n && !term.perLayer && *n >= largestModelTerm) {
      largestModelTerm = *n;
      modelCulprit = &term;
    }
    if (n)
      n = boundedAdd(term.perLayer ? layer : model, *n);
    if (!n) {
      const SizeFactor &largest = largestFactor(term);
      return tooLarge(largest.key, largest.value, "makes the weights");
    }
    (term.perLayer ? layer : model) = *n;
  }
  std::optional<int64_t> layers = boundedMul(layer, config.numLayers);
  if (!layers)
    return tooLarge("num_hidden_layers", config.numLayers,
                    "layers of up to " + Twine(layer) + " weights each are");
  // The layers fit; the embedding (or head) on top of them does not.
  if (!boundedAdd(*layers, model)) {
    const SizeFactor &largest = largestFactor(*modelCulprit);
    return tooLarge(largest.key, largest.value, "makes the weights");
  }
  return std::nullopt;
}

} // namespace

int64_t ModelConfig::weightElementBound() const {
  int64_t total = 0;
  for (const SizeTerm &term : sizeTerms(*this))
    total += *termElements(term) * (term.perLayer ? numLayers : 1);
  return total;
}

llvm::Expected<ModelConfig>
moec::parseModelConfig(StringRef text, StringRef fileName,
                       std::vector<std::string> &warnings) {
  llvm::Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    return llvm::createStringError(
        fileName + ": not valid JSON: " + llvm::toString(parsed.takeError()));
  const json::Object *root = parsed->getAsObject();
  if (!root)
    return llvm::createStringError(fileName +
                                   ": expected a JSON object at the top level");

  std::optional<std::string> error;
  ObjectReader top(*root, "", fileName, error);
  ModelConfig config;

  if (!top.has("model_type"))
    top.fail("model_type", "missing (required: \"mixtral\" or \"qwen2_moe\")");
  else if (std::optional<StringRef> type = root->getString("model_type");
           type && *type == "mixtral")
    config.modelType = ModelType::Mixtral;
  else if (type && *type == "qwen2_moe")
    config.modelType = ModelType::Qwen2Moe;
  else
    top.fail("model_type", "unsupported model type " +
                               ObjectReader::show(*root->get("model_type")) +
                               "; moec compiles \"mixtral\" and \"qwen2_moe\"");
  bool qwen = config.modelType == ModelType::Qwen2Moe;

  config.hiddenSize = top.integer("hidden_size", 1);
  config.numLayers = top.integer("num_hidden_layers", 1);
  if (!error && config.numLayers > kMaxLayers)
    top.fail("num_hidden_layers",
             "expected an integer <= " + std::to_string(kMaxLayers) +
                 " (moec's limit), got " + std::to_string(config.numLayers));
  config.numHeads = top.integer("num_attention_heads", 1);
  config.numKVHeads = top.integer("num_key_value_heads", 1, config.numHeads);
  if (!error && config.numHeads % config.numKVHeads != 0)
    top.fail("num_key_value_heads",
             "num_attention_heads " + std::to_string(config.numHeads) +
                 " is not a multiple of " + std::to_string(config.numKVHeads));
  if (top.has("head_dim")) {
    config.headDim = top.integer("head_dim", 1);
  } else {
    if (!error && config.hiddenSize % config.numHeads != 0)
      top.fail("num_attention_heads",
               "hidden_size " + std::to_string(config.hiddenSize) +
                   " is not divisible by it; give head_dim");
    config.headDim = config.numHeads ? config.hiddenSize / config.numHeads : 0;
  }
  config.vocabSize = top.integer("vocab_size", 1);
  config.rmsNormEps = top.number("rms_norm_eps", qwen ? 1e-6 : 1e-5);
  if (!(config.rmsNormEps > 0))
    top.fail("rms_norm_eps", "expected a positive number");
  config.ropeTheta = top.number("rope_theta", qwen ? 10000.0 : 1e6);
  if (!(config.ropeTheta > 0))
    top.fail("rope_theta", "expected a positive number");
  config.tieWordEmbeddings = top.boolean("tie_word_embeddings", false);
  if (top.has("hidden_act"))
    top.choice("hidden_act", {"silu"});
  if (top.has("rope_scaling"))
    top.fail("rope_scaling", "is not supported (plain RoPE only)");

  if (qwen)
    parseQwen2MoeKeys(top, config, error);
  else
    parseMixtralKeys(top, config);
  // k > E is no error: docs/semantics.md §4 routes min(k, E_l) experts in each
  // layer, and a schedule may give a layer more experts than num_local_experts.

  if (!error)
    parseExtension(top, config, fileName, error, warnings);
  if (!error)
    error = checkSizes(config, fileName);
  if (error)
    return llvm::createStringError(*error);

  top.ignore(kIgnoredKeys);
  top.warnUnknownKeys(warnings);
  return config;
}

llvm::Expected<ModelConfig>
moec::readModelConfig(StringRef path, std::vector<std::string> &warnings) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(
        path + ": cannot read: " + buffer.getError().message());
  return parseModelConfig((*buffer)->getBuffer(), path, warnings);
}

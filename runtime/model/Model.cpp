//===- Model.cpp - a compiled model with its weights bound ----------------===//

#include "runtime/model/Model.h"

#include <algorithm>

extern "C" const char moec_model_manifest[];
extern "C" void forward_packed(void **args);

using namespace moec::runtime;
namespace st = moec::safetensors;

std::unique_ptr<CompiledModel> CompiledModel::load(const std::string &path,
                                                   std::string &error) {
  std::unique_ptr<st::Checkpoint> file = st::Checkpoint::open(path, error);
  if (!file)
    return nullptr;
  std::unique_ptr<CompiledModel> model(new CompiledModel());
  model->manifest = nlohmann::json::parse(moec_model_manifest);
  model->vocab = model->manifest.at("vocab_size");

  // `{e}` in a name stands for the expert index of a stacked [E, ...]
  // parameter; every weight is converted to the compiled element type.
  const std::vector<st::DType> accepted{st::DType::F32, st::DType::BF16};
  for (const nlohmann::json &p : model->manifest.at("params")) {
    std::string name = p.at("name");
    std::vector<int64_t> shape = p.at("shape");
    ElementType type =
        p.at("dtype") == "BF16" ? ElementType::BF16 : ElementType::F32;
    HostTensor tensor(type, shape);
    size_t placeholder = name.find("{e}");
    if (placeholder == std::string::npos) {
      const st::TensorInfo *info =
          st::bindTensor(*file, name, accepted, shape, error);
      if (!info)
        return nullptr;
      tensor.fill(0, *info);
    } else {
      std::vector<int64_t> slice(shape.begin() + 1, shape.end());
      for (int64_t e = 0; e < shape[0]; ++e) {
        std::string expert = name;
        expert.replace(placeholder, 3, std::to_string(e));
        const st::TensorInfo *info =
            st::bindTensor(*file, expert, accepted, slice, error);
        if (!info)
          return nullptr;
        tensor.fill(e, *info);
      }
    }
    model->params.push_back(std::move(tensor));
  }
  return model;
}

CompiledModel::Outputs CompiledModel::forward(HostTensor &tokens) {
  // Results: the logits [B, T, V], then three vectors per MoE layer.
  std::vector<unsigned> ranks{3};
  ranks.insert(ranks.end(), 3 * manifest.at("stats").size(), 1);
  ResultPack results(ranks);
  std::vector<MemRefDescriptor> descriptors{tokens.descriptor()};
  for (HostTensor &p : params)
    descriptors.push_back(p.descriptor());
  std::vector<void *> args{results.data()};
  for (MemRefDescriptor &d : descriptors)
    args.push_back(d.data());

  forward_packed(args.data());
  Outputs out{HostTensor::adoptResult(results.result(0), ElementType::F32), {}};
  for (unsigned i = 1; i < ranks.size(); ++i)
    out.stats.push_back(
        HostTensor::adoptResult(results.result(i), ElementType::I32));
  return out;
}

nlohmann::json CompiledModel::statistics(const Outputs &outputs) const {
  // Per MoE layer: experts per (sub-)token, rows per expert, and each
  // token's ADR level (1 complex, 0 simple).
  const nlohmann::json &layers = manifest.at("stats");
  nlohmann::json out = {{"layers", nlohmann::json::array()}};
  for (size_t i = 0; i < layers.size(); ++i) {
    int64_t experts = layers[i].at("experts");
    const HostTensor &counts = outputs.stats[3 * i],
                     &load = outputs.stats[3 * i + 1],
                     &level = outputs.stats[3 * i + 2];
    auto *c = static_cast<const int32_t *>(counts.data());
    auto *l = static_cast<const int32_t *>(load.data());
    auto *v = static_cast<const int32_t *>(level.data());
    std::vector<int64_t> histogram(experts + 1, 0),
        tokensPerExpert(l, l + experts);
    double sum = 0;
    for (int64_t t = 0; t < counts.numElements(); ++t) {
      histogram[std::min<int64_t>(std::max(c[t], 0), experts)] += 1;
      sum += c[t];
    }
    int64_t simple = 0;
    for (int64_t t = 0; t < level.numElements(); ++t)
      simple += v[t] == 0;
    int64_t n = counts.numElements(), tokens = level.numElements();
    out["layers"].push_back(
        {{"layer", layers[i].at("layer")},
         {"experts", experts},
         {"tokens_per_expert", tokensPerExpert},
         {"experts_per_token_mean", n ? sum / n : 0.0},
         {"experts_per_token_histogram", histogram},
         {"simple_token_fraction",
          tokens ? static_cast<double>(simple) / tokens : 0.0}});
  }
  return out;
}

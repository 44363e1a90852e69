#include "worker/models/compiled_model.h"

#include <sstream>

#include <torch/script.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace trainerd {
namespace {

class CompiledModel : public Model {
 public:
  CompiledModel(std::unique_ptr<Model> eager, torch::jit::Module graph)
      : eager_(std::move(eager)), graph_(std::move(graph)) {}

  torch::Tensor Forward(const torch::Tensor& inputs) override { return graph_.forward({inputs}).toTensor(); }
  NamedTensors NamedParameters() const override { return eager_->NamedParameters(); }
  NamedTensors NamedBuffers() const override { return eager_->NamedBuffers(); }
  void SetTraining(bool training) override {
    eager_->SetTraining(training);
    graph_.train(training);
  }
  void To(const torch::Device& device) override {
    eager_->To(device);
    graph_.to(device);
  }
  void SaveTorchScript(std::ostream& out) const override { eager_->SaveTorchScript(out); }
  torch::Tensor InputEmbeddings(const torch::Tensor& ids) override { return eager_->InputEmbeddings(ids); }

 private:
  std::unique_ptr<Model> eager_;
  torch::jit::Module graph_;
};

}  // namespace

absl::Status CompileModel(std::unique_ptr<Model>* model, const torch::Device& device) {
  try {
    std::stringstream script;
    (*model)->SaveTorchScript(script);
    torch::jit::Module graph = torch::jit::load(script, device);
    // The exported module holds copies: point its parameters at the trained tensors.
    for (const auto& [name, p] : (*model)->NamedParameters()) {
      const std::string attribute = absl::StrReplaceAll(name, {{".", "_"}});
      if (!graph.hasattr(attribute)) {
        return absl::InvalidArgumentError(
            absl::StrCat("training_args.torch_compile: the compiled graph has no parameter ", name));
      }
      graph.register_parameter(attribute, p, /*is_buffer=*/false);
    }
    *model = std::make_unique<CompiledModel>(std::move(*model), std::move(graph));
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("training_args.torch_compile: cannot compile the model: ", e.what()));
  }
}

}  // namespace trainerd

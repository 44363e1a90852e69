#include "worker/models/builtin_net.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace trainerd {
namespace {

struct NetImpl : torch::nn::Module {
  NetImpl(const trainer::v1::ModelSpec& spec, const std::vector<int64_t>& input_shape,
          int64_t num_outputs)
      : activation(spec.activation()), dropout(spec.dropout()) {
    convs = register_module("convs", torch::nn::ModuleList());
    hidden = register_module("hidden", torch::nn::ModuleList());
    int64_t channels = input_shape.size() == 3 ? input_shape[0] : 1;
    int64_t height = input_shape.size() == 3 ? input_shape[1] : 0;
    int64_t width = input_shape.size() == 3 ? input_shape[2] : 0;
    int64_t features = 1;
    for (int64_t d : input_shape) features *= d;
    for (int64_t out : spec.conv_channels()) {
      convs->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1)));
      channels = out;
      height /= 2;
      width /= 2;
      features = channels * height * width;
    }
    for (int64_t width_out : spec.hidden_sizes()) {
      hidden->push_back(torch::nn::Linear(features, width_out));
      features = width_out;
    }
    head = register_module("head", torch::nn::Linear(features, num_outputs));
  }

  torch::Tensor Activate(const torch::Tensor& x) const {
    if (activation == "gelu") return torch::gelu(x);
    if (activation == "tanh") return torch::tanh(x);
    return torch::relu(x);
  }

  torch::Tensor forward(torch::Tensor x) {
    if (!convs->is_empty() && x.dim() == 3) x = x.unsqueeze(1);
    for (const auto& conv : *convs) {
      x = torch::max_pool2d(Activate(conv->as<torch::nn::Conv2d>()->forward(x)), 2);
    }
    x = x.flatten(1);
    for (const auto& layer : *hidden) {
      x = Activate(layer->as<torch::nn::Linear>()->forward(x));
      if (dropout > 0) x = torch::dropout(x, dropout, is_training());
    }
    return head->forward(x);
  }

  std::string activation;
  double dropout;
  torch::nn::ModuleList convs{nullptr};
  torch::nn::ModuleList hidden{nullptr};
  torch::nn::Linear head{nullptr};
};

std::string ScriptName(const std::string& dotted) { return absl::StrReplaceAll(dotted, {{".", "_"}}); }

class BuiltinNet : public Model {
 public:
  BuiltinNet(const trainer::v1::ModelSpec& spec, const std::vector<int64_t>& input_shape,
             int64_t num_outputs)
      : net_(std::make_shared<NetImpl>(spec, input_shape, num_outputs)) {}

  torch::Tensor Forward(const torch::Tensor& inputs) override { return net_->forward(inputs); }

  NamedTensors NamedParameters() const override {
    NamedTensors out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  NamedTensors NamedBuffers() const override {
    NamedTensors out;
    for (const auto& item : net_->named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
  }
  void SetTraining(bool training) override { net_->train(training); }
  void To(const torch::Device& device) override { net_->to(device); }

  // Exports the inference graph (dropout is the identity there) as TorchScript source
  // over the same weights, flattening dotted names into attribute names.
  void SaveTorchScript(std::ostream& out) const override {
    torch::jit::Module m("trainerd.BuiltinNet");
    for (const auto& [name, p] : NamedParameters()) {
      // CPU copies: the exported model loads anywhere.
      m.register_parameter(ScriptName(name), p.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true),
                           /*is_buffer=*/false);
    }
    const std::string act = net_->activation == "gelu"   ? "torch.gelu"
                            : net_->activation == "tanh" ? "torch.tanh"
                                                         : "torch.relu";
    std::string body = "def forward(self, x):\n";
    if (!net_->convs->is_empty()) body += "    if x.dim() == 3:\n        x = x.unsqueeze(1)\n";
    for (size_t i = 0; i < net_->convs->size(); ++i) {
      absl::StrAppend(&body, "    x = torch.max_pool2d(", act, "(torch.conv2d(x, self.convs_", i,
                      "_weight, self.convs_", i, "_bias, [1, 1], [1, 1])), [2, 2])\n");
    }
    body += "    x = torch.flatten(x, 1)\n";
    for (size_t i = 0; i < net_->hidden->size(); ++i) {
      absl::StrAppend(&body, "    x = ", act, "(torch.linear(x, self.hidden_", i,
                      "_weight, self.hidden_", i, "_bias))\n");
    }
    body += "    return torch.linear(x, self.head_weight, self.head_bias)\n";
    m.define(body);
    m.save(out);
  }

 private:
  std::shared_ptr<NetImpl> net_;
};

}  // namespace

std::unique_ptr<Model> CreateBuiltinNet(const trainer::v1::ModelSpec& spec,
                                        const std::vector<int64_t>& input_shape,
                                        int64_t num_outputs) {
  return std::make_unique<BuiltinNet>(spec, input_shape, num_outputs);
}

}  // namespace trainerd

#include "worker/checkpoint/optimizer_snapshot.h"

#include <sstream>
#include <typeinfo>

#include <torch/optim.h>
#include <torch/serialize.h>

#include "worker/optim/adafactor.h"
#include "worker/optim/galore.h"
#include "worker/optim/optimizer_factory.h"

namespace trainerd {
namespace {

using torch::optim::OptimizerParamState;

torch::Tensor Copy(const torch::Tensor& t) { return t.defined() ? t.clone() : t; }

// A deep copy of one parameter's state, for the state types CreateOptimizer produces.
std::unique_ptr<OptimizerParamState> DeepCopy(const OptimizerParamState& state) {
  if (auto* s = dynamic_cast<const torch::optim::AdamWParamState*>(&state)) {
    auto c = std::make_unique<torch::optim::AdamWParamState>(*s);
    c->exp_avg(Copy(s->exp_avg())).exp_avg_sq(Copy(s->exp_avg_sq())).max_exp_avg_sq(Copy(s->max_exp_avg_sq()));
    return c;
  }
  if (auto* s = dynamic_cast<const torch::optim::SGDParamState*>(&state)) {
    auto c = std::make_unique<torch::optim::SGDParamState>(*s);
    c->momentum_buffer(Copy(s->momentum_buffer()));
    return c;
  }
  if (auto* s = dynamic_cast<const torch::optim::AdagradParamState*>(&state)) {
    auto c = std::make_unique<torch::optim::AdagradParamState>(*s);
    c->sum(Copy(s->sum()));
    return c;
  }
  if (auto* s = dynamic_cast<const torch::optim::RMSpropParamState*>(&state)) {
    auto c = std::make_unique<torch::optim::RMSpropParamState>(*s);
    c->square_avg(Copy(s->square_avg())).momentum_buffer(Copy(s->momentum_buffer())).grad_avg(Copy(s->grad_avg()));
    return c;
  }
  if (auto* s = dynamic_cast<const AdafactorParamState*>(&state)) {
    auto c = std::make_unique<AdafactorParamState>(*s);
    c->exp_avg(Copy(s->exp_avg()))
        .exp_avg_sq_row(Copy(s->exp_avg_sq_row()))
        .exp_avg_sq_col(Copy(s->exp_avg_sq_col()))
        .exp_avg_sq(Copy(s->exp_avg_sq()));
    return c;
  }
  if (auto* s = dynamic_cast<const GaLoreParamState*>(&state)) {
    auto c = std::make_unique<GaLoreParamState>(*s);
    c->projection(Copy(s->projection()))
        .exp_avg(Copy(s->exp_avg()))
        .exp_avg_sq(Copy(s->exp_avg_sq()))
        .exp_avg_sq_row(Copy(s->exp_avg_sq_row()))
        .exp_avg_sq_col(Copy(s->exp_avg_sq_col()));
    return c;
  }
  return nullptr;
}

// An output buffer that only counts what is written to it.
class CountingBuffer : public std::streambuf {
 public:
  int64_t bytes() const { return bytes_; }

 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override {
    bytes_ += n;
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) ++bytes_;
    return traits_type::not_eof(c);
  }

 private:
  int64_t bytes_ = 0;
};

}  // namespace

std::unique_ptr<torch::optim::Optimizer> SnapshotOptimizer(const trainer::v1::TrainingArguments& args,
                                                           const NamedTensors& named_parameters,
                                                           const torch::optim::Optimizer& live) {
  auto created = CreateOptimizer(args, named_parameters);
  if (!created.ok()) return nullptr;
  std::unique_ptr<torch::optim::Optimizer> copy = std::move(*created);
  if (typeid(*copy) != typeid(live) || copy->param_groups().size() != live.param_groups().size()) return nullptr;
  for (size_t g = 0; g < live.param_groups().size(); ++g) {
    if (copy->param_groups()[g].params().size() != live.param_groups()[g].params().size()) return nullptr;
    copy->param_groups()[g].set_options(live.param_groups()[g].options().clone());
  }
  for (const auto& [key, state] : live.state()) {
    std::unique_ptr<OptimizerParamState> c = DeepCopy(*state);
    if (!c) return nullptr;
    copy->state()[key] = std::move(c);
  }
  return copy;
}

int64_t SerializedOptimizerBytes(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  CountingBuffer counter;
  std::ostream out(&counter);
  archive.save_to(out);
  return counter.bytes();
}

std::string SerializeOptimizer(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

}  // namespace trainerd

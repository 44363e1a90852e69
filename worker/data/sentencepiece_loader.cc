// Loads libtrainerd_sentencepiece.so (see sentencepiece_model.h) and forwards to it.
#include <dlfcn.h>

#include <filesystem>
#include <mutex>

#include "worker/data/sentencepiece_model.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;

constexpr char kModuleName[] = "libtrainerd_sentencepiece.so";

struct Module {
  SentencePieceFromSerializedFn from_serialized = nullptr;
  SentencePieceTrainFn train = nullptr;
  std::string error;
};

// Beside the running program (installed), else where the build put it.
const Module& LoadModule() {
  static Module module;
  static std::once_flag once;
  std::call_once(once, [] {
    std::error_code ec;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("TRAINERD_SENTENCEPIECE_MODULE")) candidates.push_back(env);
    candidates.push_back((fs::read_symlink("/proc/self/exe", ec).parent_path() / kModuleName).string());
#ifdef TRAINERD_SENTENCEPIECE_MODULE_PATH
    candidates.push_back(TRAINERD_SENTENCEPIECE_MODULE_PATH);
#endif
    void* handle = nullptr;
    for (const std::string& path : candidates) {
      if (!fs::exists(path)) continue;
      handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle != nullptr) break;
      module.error = dlerror();
    }
    if (handle == nullptr) {
      if (module.error.empty()) module.error = std::string(kModuleName) + " not found beside the program";
      return;
    }
    module.from_serialized =
        reinterpret_cast<SentencePieceFromSerializedFn>(dlsym(handle, "trainerd_sentencepiece_from_serialized"));
    module.train = reinterpret_cast<SentencePieceTrainFn>(dlsym(handle, "trainerd_sentencepiece_train"));
    if (module.from_serialized == nullptr || module.train == nullptr) module.error = "the tokenizer module is incomplete";
  });
  return module;
}

}  // namespace

std::unique_ptr<SentencePieceModel> SentencePieceModel::FromSerialized(const std::string& bytes, std::string* error) {
  const Module& m = LoadModule();
  if (!m.error.empty()) {
    *error = "cannot load the tokenizer library: " + m.error;
    return nullptr;
  }
  return std::unique_ptr<SentencePieceModel>(m.from_serialized(bytes, error));
}

std::unique_ptr<SentencePieceModel> SentencePieceModel::Train(const std::vector<std::string>& sentences,
                                                              int vocab_size, const std::string& model_type,
                                                              int num_threads, std::string* error) {
  const Module& m = LoadModule();
  if (!m.error.empty()) {
    *error = "cannot load the tokenizer library: " + m.error;
    return nullptr;
  }
  return std::unique_ptr<SentencePieceModel>(m.train(sentences, vocab_size, model_type, num_threads, error));
}

}  // namespace trainerd

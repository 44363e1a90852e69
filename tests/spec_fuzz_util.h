// Hostile job specs for fuzz tests: random values of the kinds attackers send (huge,
// negative, NaN, inf, subnormal, long strings, paths out of the roots, junk enums) on
// random fields anywhere in the message.
#ifndef TRAINERD_TESTS_SPEC_FUZZ_UTIL_H_
#define TRAINERD_TESTS_SPEC_FUZZ_UTIL_H_

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

namespace trainerd::testing {

using google::protobuf::FieldDescriptor;

// Sets a random value of a hostile kind on a random field, anywhere in `m`.
inline void SetRandomField(google::protobuf::Message* m, std::mt19937_64& rng, int depth) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  if (d->field_count() == 0) return;
  const FieldDescriptor* f = d->field(static_cast<int>(rng() % d->field_count()));
  static const double kNumbers[] = {0, -1, 1, 0.5, 1e300, -1e300, 1e-310, std::numeric_limits<double>::infinity(),
                                    std::nan(""), 3, 1e9, 4096, 65537};
  static const int64_t kInts[] = {0, -1, 1, 2, 7, 1 << 20, std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min(), 1'000'000'000'000'000};
  auto text = [&]() -> std::string {
    switch (rng() % 6) {
      case 0: return "";
      case 1: return std::string(5000, 'x');
      case 2: return "../../etc/passwd";
      case 3: return "/etc/shadow";
      case 4: return "((((a*)*)*)*";
      default: return "adamw_torch";
    }
  };
  const int count = f->is_repeated() ? static_cast<int>(rng() % 4) + (rng() % 50 == 0 ? 5000 : 0) : 1;
  for (int i = 0; i < count; ++i) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        const double v = kNumbers[rng() % std::size(kNumbers)];
        f->is_repeated() ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        const int64_t v = kInts[rng() % std::size(kInts)];
        f->is_repeated() ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT32: {
        const int32_t v = static_cast<int32_t>(kInts[rng() % std::size(kInts)]);
        f->is_repeated() ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        if (!f->is_repeated()) r->SetBool(m, f, rng() % 2);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        f->is_repeated() ? r->AddString(m, f, text()) : r->SetString(m, f, text());
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 6 && !f->is_map()) {
          SetRandomField(f->is_repeated() ? r->AddMessage(m, f) : r->MutableMessage(m, f), rng, depth + 1);
        }
        break;
      default: break;
    }
  }
}

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_SPEC_FUZZ_UTIL_H_
